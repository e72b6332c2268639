// Cluster monitor (see monitor.hpp): DNS resolution and active health checks on the control thread.
#include <virex/upstream/monitor.hpp>

#include <virex/http/h1_response_parser.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/basic_resolver.hpp>
#include <boost/asio/write.hpp>

#include <spdlog/spdlog.h>

namespace virex::upstream {
namespace asio = boost::asio;
namespace {
constexpr auto token = asio::as_tuple(core::kUseAwaitable);
constexpr auto kGaugeInterval = std::chrono::seconds(1);
using Resolver = asio::ip::basic_resolver<core::tcp, core::Executor>;
}  // namespace

Monitor::Monitor(asio::io_context& ioc, std::shared_ptr<ClusterState> state, config::Upstream cfg,
                 observe::Registry& reg, observe::Shard shard)
    : ioc_(ioc), state_(std::move(state)), cfg_(std::move(cfg)) {
  series_.resize(state_->size());
  passes_.assign(state_->size(), 0);
  failures_.assign(state_->size(), 0);
  for (std::size_t i = 0; i < state_->size(); ++i) {
    EndpointState& e = state_->endpoint(i);
    boost::system::error_code ec;
    const auto ip = asio::ip::make_address(e.host, ec);
    if (!ec) e.set_address(ip.to_string());
    const observe::Labels l{{"cluster", cfg_.name}, {"endpoint", e.name}};
    Series& s = series_[i];
    s.healthy = shard.gauge(reg.gauge("virex_upstream_endpoint_healthy",
                                      "1 when the endpoint takes traffic: resolved, passing health checks, not ejected.", l));
    s.ejected = shard.gauge(reg.gauge("virex_upstream_endpoint_ejected", "1 while passive outlier detection ejects the endpoint.", l));
    observe::Labels lp = l, lf = l;
    lp.emplace_back("result", "pass");
    lf.emplace_back("result", "fail");
    s.pass = shard.counter(reg.counter("virex_upstream_health_checks_total", "Active health checks, by result.", lp));
    s.fail = shard.counter(reg.counter("virex_upstream_health_checks_total", "Active health checks, by result.", lf));
  }
}

Monitor::~Monitor() = default;

void Monitor::start() {
  auto self = shared_from_this();
  bool names = false;
  for (std::size_t i = 0; i < state_->size(); ++i) {
    boost::system::error_code ec;
    asio::ip::make_address(state_->endpoint(i).host, ec);
    names = names || ec;
  }
  if (names) asio::co_spawn(ioc_, resolve_loop(self), asio::detached);
  if (cfg_.health_check.enabled)
    for (std::size_t i = 0; i < state_->size(); ++i) asio::co_spawn(ioc_, check_loop(self, i), asio::detached);
  else
    for (std::size_t i = 0; i < state_->size(); ++i) state_->endpoint(i).healthy.store(true, std::memory_order_relaxed);
  asio::co_spawn(ioc_, gauge_loop(self), asio::detached);
  update_gauges();
}

void Monitor::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& t : timers_) t->cancel();
  for (Series& s : series_) {
    s.healthy.add(-s.healthy_value);
    s.ejected.add(-s.ejected_value);
    s.healthy_value = s.ejected_value = 0;
  }
}

void Monitor::update_gauges() {
  if (stopped_) return;
  const auto now = Clock::now();
  for (std::size_t i = 0; i < series_.size(); ++i) {
    Series& s = series_[i];
    const std::int64_t healthy = state_->endpoint(i).available(now) ? 1 : 0;
    const std::int64_t ejected = state_->endpoint(i).ejected(now) ? 1 : 0;
    s.healthy.add(healthy - s.healthy_value);
    s.ejected.add(ejected - s.ejected_value);
    s.healthy_value = healthy;
    s.ejected_value = ejected;
  }
}

core::Awaitable<void> Monitor::gauge_loop(std::shared_ptr<Monitor> self) {
  auto& timer = *timers_.emplace_back(std::make_unique<core::Timer>(ioc_.get_executor()));
  while (!stopped_) {
    update_gauges();
    timer.expires_after(kGaugeInterval);
    co_await timer.async_wait(token);
  }
}

core::Awaitable<void> Monitor::resolve_loop(std::shared_ptr<Monitor> self) {
  auto& timer = *timers_.emplace_back(std::make_unique<core::Timer>(ioc_.get_executor()));
  Resolver resolver(ioc_.get_executor());
  while (!stopped_) {
    for (std::size_t i = 0; i < state_->size() && !stopped_; ++i) {
      EndpointState& e = state_->endpoint(i);
      boost::system::error_code lit;
      asio::ip::make_address(e.host, lit);
      if (!lit) continue;
      // Asio runs getaddrinfo on its own resolver thread: the control thread never blocks on DNS.
      auto [ec, results] = co_await resolver.async_resolve(e.host, std::to_string(e.port), token);
      if (stopped_) break;
      if (ec || results.empty()) {
        spdlog::warn("upstream {}: cannot resolve {}: {}", cfg_.name, e.host, ec ? ec.message() : "no address");
        continue;  // keep the last good address
      }
      const std::string ip = results.begin()->endpoint().address().to_string();
      if (ip != e.address()) spdlog::info("upstream {}: {} resolves to {}", cfg_.name, e.name, ip);
      e.set_address(ip);
    }
    update_gauges();
    timer.expires_after(cfg_.resolve_interval);
    co_await timer.async_wait(token);
  }
}

core::Awaitable<bool> Monitor::check_once(std::size_t i) {
  using namespace asio::experimental::awaitable_operators;
  EndpointState& e = state_->endpoint(i);
  const std::string addr_text = e.address();
  if (addr_text.empty()) co_return false;
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(addr_text, ec);
  if (ec) co_return false;
  core::Socket sock(ioc_.get_executor());
  core::Timer deadline(ioc_.get_executor());
  deadline.expires_after(cfg_.health_check.timeout);
  const std::string host = cfg_.health_check.host.empty() ? e.host : cfg_.health_check.host;
  struct Probe {
    static core::Awaitable<bool> run(core::Socket& s, core::tcp::endpoint to, std::string request) {
      auto [cec] = co_await s.async_connect(to, token);
      if (cec) co_return false;
      auto [wec, wn] = co_await asio::async_write(s, asio::buffer(request), token);
      if (wec) co_return false;
      http::H1ResponseParser parser;
      std::string buf(4096, '\0');
      std::size_t have = 0, begin = 0;
      for (;;) {
        auto [rec, n] = co_await s.async_read_some(asio::buffer(buf.data() + have, buf.size() - have), token);
        if (rec) co_return false;
        have += n;
        for (;;) {
          const auto r = parser.feed(std::string_view(buf.data() + begin, have - begin));
          begin += r.consumed;
          if (r.event == http::H1ResponseParser::Event::head) {
            const unsigned status = parser.head().status;
            if (status < 200) continue;  // interim
            co_return status < 400;      // 2xx and 3xx pass
          }
          if (r.event == http::H1ResponseParser::Event::complete) {
            parser.next();
            continue;
          }
          if (r.event == http::H1ResponseParser::Event::error) co_return false;
          break;
        }
        if (have == buf.size()) co_return false;  // a head over 4 KiB: not a health endpoint's answer
      }
    }
  };
  std::string request = "GET " + cfg_.health_check.path + " HTTP/1.1\r\nHost: " + host +
                        "\r\nUser-Agent: virex-edge/health-check\r\nConnection: close\r\n\r\n";
  auto result = co_await (Probe::run(sock, core::tcp::endpoint(ip, e.port), std::move(request)) ||
                          deadline.async_wait(token));
  co_return result.index() == 0 && std::get<0>(result);
}

core::Awaitable<void> Monitor::check_loop(std::shared_ptr<Monitor> self, std::size_t i) {
  auto& timer = *timers_.emplace_back(std::make_unique<core::Timer>(ioc_.get_executor()));
  EndpointState& e = state_->endpoint(i);
  const auto& hc = cfg_.health_check;
  while (!stopped_) {
    const bool ok = co_await check_once(i);
    if (stopped_) break;
    (ok ? series_[i].pass : series_[i].fail).inc();
    if (ok) {
      failures_[i] = 0;
      if (++passes_[i] >= hc.healthy && !e.healthy.load(std::memory_order_relaxed)) {
        e.healthy.store(true, std::memory_order_relaxed);
        spdlog::info("upstream {}: {} is healthy again", cfg_.name, e.name);
      }
    } else {
      passes_[i] = 0;
      if (++failures_[i] >= hc.unhealthy && e.healthy.load(std::memory_order_relaxed)) {
        e.healthy.store(false, std::memory_order_relaxed);
        spdlog::warn("upstream {}: {} failed {} health checks; taken out", cfg_.name, e.name, failures_[i]);
      }
    }
    update_gauges();
    timer.expires_after(hc.interval);
    co_await timer.async_wait(token);
  }
}

}  // namespace virex::upstream
