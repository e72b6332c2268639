// Per-worker upstream connection pool (see pool.hpp).
#include <virex/upstream/pool.hpp>

#include <sys/socket.h>

#include <cerrno>

namespace virex::upstream {
namespace {
constexpr auto kPeekAfter = std::chrono::milliseconds(100);
}

UpstreamConn::UpstreamConn(WorkerPool& owner, std::uint32_t e) : pool(owner), socket(owner.ex_), endpoint(e) {
  ++pool.in_use_;
}

UpstreamConn::~UpstreamConn() { pool.closed(*this); }

void WorkerPool::closed(UpstreamConn& c) noexcept {
  boost::system::error_code ec;
  if (c.socket.is_open()) {
    c.socket.close(ec);
    state_->connections.fetch_sub(1, std::memory_order_relaxed);
  }
  if (c.idle_since == Clock::time_point{}) {
    --in_use_;
    endpoints_[c.endpoint].series.active.add(-1);
  } else {
    endpoints_[c.endpoint].series.idle.add(-1);
  }
}

WorkerPool::WorkerPool(core::Executor ex, std::shared_ptr<ClusterState> state, observe::Registry& reg,
                       observe::Shard shard, std::uint64_t seed)
    : ex_(ex), state_(std::move(state)), endpoints_(state_->size()) {
  pick_.rng ^= seed * 0x9e3779b97f4a7c15ULL;
  pick_.cursor = seed;
  const std::string& cluster = state_->name();
  static constexpr std::string_view kClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
  for (std::size_t i = 0; i < endpoints_.size(); ++i) {
    const observe::Labels l{{"cluster", cluster}, {"endpoint", state_->endpoint(i).name}};
    EndpointSeries& s = endpoints_[i].series;
    s.requests = shard.counter(reg.counter("virex_upstream_requests_total", "Requests sent to an upstream endpoint (each try).", l));
    s.connections = shard.counter(reg.counter("virex_upstream_connections_total", "Upstream connections opened.", l));
    s.active = shard.gauge(reg.gauge("virex_upstream_connections_active", "Upstream connections carrying a request.", l));
    s.idle = shard.gauge(reg.gauge("virex_upstream_connections_idle", "Idle pooled upstream connections.", l));
    s.ejections = shard.counter(reg.counter("virex_upstream_ejections_total", "Passive outlier ejections of an endpoint.", l));
    for (std::size_t c = 0; c < 5; ++c) {
      observe::Labels lc = l;
      lc.emplace_back("status_class", std::string(kClasses[c]));
      s.responses[c] = shard.counter(reg.counter("virex_upstream_responses_total", "Upstream responses by status class.", lc));
    }
  }
  const observe::Labels l{{"cluster", cluster}};
  series_.response_time = shard.histogram(reg.histogram(
      "virex_upstream_response_duration_seconds", "Time from sending a request upstream to its response head.", l,
      observe::default_latency_buckets(), 1e-9));
  series_.reused = shard.counter(reg.counter("virex_upstream_connections_reused_total",
                                             "Requests sent on a pooled keep-alive connection.", l));
  series_.retries = shard.counter(reg.counter("virex_upstream_retries_total", "Retries of upstream requests.", l));
  series_.budget_exhausted = shard.counter(reg.counter(
      "virex_upstream_retry_budget_exhausted_total", "Retries not made because the retry budget was spent.", l));
  static constexpr std::string_view kLimits[] = {"max_connections", "max_pending", "max_requests"};
  for (std::size_t i = 0; i < 3; ++i)
    series_.rejected[i] = shard.counter(reg.counter("virex_upstream_rejected_total",
                                                    "Requests failed fast by the circuit breaker, by limit.",
                                                    {{"cluster", cluster}, {"limit", std::string(kLimits[i])}}));
  for (std::size_t i = 1; i < kProxyErrcCount; ++i)
    series_.errors[i] = shard.counter(reg.counter(
        "virex_upstream_errors_total", "Failed upstream tries, by RFC 9209 error type.",
        {{"cluster", cluster}, {"error", std::string(to_string(static_cast<ProxyErrc>(i)))}}));
}

WorkerPool::~WorkerPool() {
  for (auto& e : endpoints_) e.idle.clear();
}

std::unique_ptr<UpstreamConn> WorkerPool::take_idle(std::uint32_t e, Clock::time_point now) {
  auto& idle = endpoints_[e].idle;
  while (!idle.empty()) {
    std::unique_ptr<UpstreamConn> c = std::move(idle.back());
    idle.pop_back();
    endpoints_[e].series.idle.add(-1);
    const Clock::time_point since = c->idle_since;
    const bool moved = c->address_version != state_->endpoint(e).address_version.load(std::memory_order_relaxed);
    c->idle_since = {};
    ++in_use_;
    endpoints_[e].series.active.add(1);
    // The peer may have closed it while it sat idle (EOF queued) or sent something unsolicited: either way
    // it must not carry a request. EAGAIN is the only answer that means "alive and quiet". Servers close idle
    // keep-alive connections after seconds, not milliseconds: one idle for less than kPeekAfter is taken as is
    // (under load, that is nearly every one; the peek would be a syscall per request), and the rare loss is
    // covered by the stale-connection retry of idempotent requests.
    if (moved) continue;  // DNS now points elsewhere: retire connections to the old address (closes here)
    if (now - since < kPeekAfter) return c;
    char byte;
    const ssize_t n = ::recv(c->socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return c;
    // Destroying `c` closes it and accounts for it.
  }
  return nullptr;
}

std::unique_ptr<UpstreamConn> WorkerPool::open(std::uint32_t e, std::uint32_t max_connections) {
  auto c = std::make_unique<UpstreamConn>(*this, e);
  endpoints_[e].series.active.add(1);  // balanced by ~UpstreamConn, whatever happens below
  if (!state_->try_acquire(state_->connections, max_connections)) return nullptr;
  boost::system::error_code ec;
  c->socket.open(endpoints_[e].address.protocol(), ec);
  if (ec) {
    state_->connections.fetch_sub(1, std::memory_order_relaxed);  // the closed socket gives nothing back
    return nullptr;
  }
  endpoints_[e].series.connections.inc();
  c->address_version = endpoints_[e].address_version;
  return c;
}

bool WorkerPool::address(std::uint32_t e, core::tcp::endpoint& out) {
  Endpoint& ep = endpoints_[e];
  EndpointState& st = state_->endpoint(e);
  const std::uint32_t v = st.address_version.load(std::memory_order_acquire);
  if (v == 0) return false;
  if (v != ep.address_version) {
    boost::system::error_code ec;
    const auto ip = boost::asio::ip::make_address(st.address(), ec);
    if (ec) return false;
    ep.address = core::tcp::endpoint(ip, st.port);
    ep.address_version = v;
  }
  out = ep.address;
  return true;
}

void WorkerPool::release(std::unique_ptr<UpstreamConn> c, bool reusable, const config::UpstreamPool& cfg,
                         Clock::time_point now) {
  Endpoint& ep = endpoints_[c->endpoint];
  if (!reusable || !c->socket.is_open() || ep.idle.size() >= cfg.max_idle ||
      (cfg.max_requests_per_connection && c->requests >= cfg.max_requests_per_connection))
    return;  // `c` closes here
  --in_use_;
  ep.series.active.add(-1);
  ep.series.idle.add(1);
  c->idle_since = now;
  ep.idle.push_back(std::move(c));
}

void WorkerPool::sweep(Clock::time_point now, config::Duration idle_timeout) {
  for (auto& ep : endpoints_) {
    // Oldest first (the front of the LIFO stack).
    std::size_t expired = 0;
    while (expired < ep.idle.size() && now - ep.idle[expired]->idle_since >= idle_timeout) ++expired;
    if (expired) ep.idle.erase(ep.idle.begin(), ep.idle.begin() + static_cast<std::ptrdiff_t>(expired));
  }
}

}  // namespace virex::upstream
