// Node-wide cluster state (see cluster.hpp): circuit-breaker slots, retry budget, outlier ejection.
#include <virex/upstream/cluster.hpp>

#include <algorithm>

namespace virex::upstream {

std::string_view to_string(ProxyErrc e) noexcept {
  switch (e) {
    case ProxyErrc::none: return "none";
    case ProxyErrc::destination_unavailable: return "destination_unavailable";
    case ProxyErrc::connection_limit_reached: return "connection_limit_reached";
    case ProxyErrc::connection_refused: return "connection_refused";
    case ProxyErrc::connection_timeout: return "connection_timeout";
    case ProxyErrc::connection_terminated: return "connection_terminated";
    case ProxyErrc::http_response_timeout: return "http_response_timeout";
    case ProxyErrc::connection_read_timeout: return "connection_read_timeout";
    case ProxyErrc::http_protocol_error: return "http_protocol_error";
    case ProxyErrc::http_response_incomplete: return "http_response_incomplete";
    case ProxyErrc::http_request_error: return "http_request_error";
    case ProxyErrc::http_upgrade_failed: return "http_upgrade_failed";
  }
  return "unknown";
}

unsigned status_of(ProxyErrc e) noexcept {
  switch (e) {
    case ProxyErrc::destination_unavailable:
    case ProxyErrc::connection_limit_reached: return 503;
    case ProxyErrc::connection_timeout:
    case ProxyErrc::http_response_timeout:
    case ProxyErrc::connection_read_timeout: return 504;
    case ProxyErrc::http_request_error: return 400;
    default: return 502;
  }
}

std::string endpoint_name(std::string_view host, std::uint16_t port) {
  std::string n;
  if (host.find(':') != std::string_view::npos) n.append("[").append(host).append("]");
  else n.append(host);
  return n.append(":").append(std::to_string(port));
}

EndpointState::EndpointState(std::string host_, std::uint16_t port_)
    : host(std::move(host_)), port(port_), name(endpoint_name(host, port)) {}

std::string EndpointState::address() const {
  std::lock_guard lock(mu_);
  return address_;
}

void EndpointState::set_address(std::string ip) {
  std::lock_guard lock(mu_);
  if (ip == address_) return;
  address_ = std::move(ip);
  address_version.fetch_add(1, std::memory_order_release);
}

ClusterState::ClusterState(const config::Upstream& cfg) : name_(cfg.name) {
  for (const auto& e : cfg.endpoints) endpoints_.push_back(std::make_unique<EndpointState>(e.host, e.port));
}

bool ClusterState::same_endpoints(const config::Upstream& cfg) const {
  if (cfg.name != name_ || cfg.endpoints.size() != endpoints_.size()) return false;
  for (std::size_t i = 0; i < endpoints_.size(); ++i)
    if (cfg.endpoints[i].host != endpoints_[i]->host || cfg.endpoints[i].port != endpoints_[i]->port) return false;
  return true;
}

bool ClusterState::try_acquire(std::atomic<std::uint32_t>& counter, std::uint32_t limit) noexcept {
  std::uint32_t n = counter.load(std::memory_order_relaxed);
  do {
    if (n >= limit) return false;
  } while (!counter.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
  return true;
}

bool ClusterState::try_retry(const config::Retries& r) noexcept {
  const std::uint32_t active = requests.load(std::memory_order_relaxed);
  const std::uint32_t allowed = std::max<std::uint32_t>(r.min_concurrent, active * r.budget_percent / 100);
  return try_acquire(retries, allowed);
}

bool ClusterState::record(std::size_t i, Outcome o, const config::Outlier& cfg, Clock::time_point now) noexcept {
  EndpointState& e = *endpoints_[i];
  if (o == Outcome::success) {
    e.consecutive_5xx.store(0, std::memory_order_relaxed);
    e.consecutive_failures.store(0, std::memory_order_relaxed);
    // A success after the ejection ended: the next ejection starts from the base time again once the endpoint
    // has stayed in for as long as it was last out (a flapping endpoint keeps its growing interval).
    const std::int64_t until = e.ejected_until.load(std::memory_order_relaxed);
    if (e.ejections.load(std::memory_order_relaxed) != 0 && until != 0) {
      const std::int64_t out_for = std::chrono::nanoseconds(cfg.base_ejection).count() *
                                   (1LL << std::min<std::uint32_t>(e.ejections.load(std::memory_order_relaxed) - 1, 20));
      if (now.time_since_epoch().count() > until + out_for) e.ejections.store(0, std::memory_order_relaxed);
    }
    return false;
  }
  std::uint32_t threshold, count;
  if (o == Outcome::status_5xx) {
    threshold = cfg.consecutive_5xx;
    count = e.consecutive_5xx.fetch_add(1, std::memory_order_relaxed) + 1;
  } else {
    threshold = cfg.consecutive_failures;
    count = e.consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1;
  }
  if (threshold == 0 || count < threshold || e.ejected(now)) return false;
  // Never eject more than max_ejected_percent of the cluster, and never the last available endpoint.
  std::size_t ejected = 0, available = 0;
  for (const auto& p : endpoints_) {
    if (p->ejected(now)) ++ejected;
    else if (p->available(now)) ++available;
  }
  if ((ejected + 1) * 100 > endpoints_.size() * cfg.max_ejected_percent) return false;
  if (available <= 1) return false;
  const std::uint32_t n = e.ejections.fetch_add(1, std::memory_order_relaxed);
  auto span = cfg.base_ejection * (1LL << std::min<std::uint32_t>(n, 20));
  if (span > cfg.max_ejection) span = cfg.max_ejection;
  e.ejected_until.store((now + span).time_since_epoch().count(), std::memory_order_relaxed);
  e.consecutive_5xx.store(0, std::memory_order_relaxed);
  e.consecutive_failures.store(0, std::memory_order_relaxed);
  return true;
}

}  // namespace virex::upstream
