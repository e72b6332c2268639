// The node-wide state of one upstream cluster, shared by every worker and the control thread: per endpoint
// the requests in flight, the active health-check verdict, passive outlier ejection and the resolved address;
// per cluster the circuit-breaker counts and the retry budget. Everything mutable is an atomic (no lock on
// the request path; the resolved address is read under a mutex only when a worker opens a connection).
// Built on the control thread; kept across reloads while the cluster's endpoint list is unchanged.
#pragma once

#include <virex/config/config.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace virex::upstream {

using Clock = std::chrono::steady_clock;

// Why a proxied request failed: RFC 9209 Proxy-Status error types (the ones this proxy produces). The one
// function status_of() maps each to the status sent to the client.
enum class ProxyErrc : std::uint8_t {
  none,
  destination_unavailable,   // 503: no endpoint resolved, healthy and not ejected
  connection_limit_reached,  // 503: circuit breaker (max_connections / max_pending / max_requests)
  connection_refused,        // 502
  connection_timeout,        // 504: connect deadline
  connection_terminated,     // 502: closed or reset before a complete response head
  http_response_timeout,     // 504: no response head within first_byte
  connection_read_timeout,   // 504: idle deadline between bytes, or the request deadline
  http_protocol_error,       // 502: the upstream's response could not be parsed
  http_response_incomplete,  // the upstream closed mid-body (the client connection is closed, no status)
  http_request_error,        // the client's request body failed (client closed or timed out): nothing sent
  http_upgrade_failed,       // 502: WebSocket upgrade refused by a non-101 answer is relayed; this is a bad 101
};
inline constexpr std::size_t kProxyErrcCount = static_cast<std::size_t>(ProxyErrc::http_upgrade_failed) + 1;

std::string_view to_string(ProxyErrc e) noexcept;
unsigned status_of(ProxyErrc e) noexcept;

struct EndpointState {
  EndpointState(std::string host_, std::uint16_t port_);

  const std::string host;
  const std::uint16_t port;
  const std::string name;                         // "host:port" (IPv6 bracketed): the metrics label

  std::atomic<std::uint32_t> active{0};           // requests in flight (least_request)
  std::atomic<bool> healthy{true};                // active health checks' verdict; true without checks
  std::atomic<std::int64_t> ejected_until{0};     // Clock ns; passive outlier ejection
  std::atomic<std::uint32_t> consecutive_5xx{0};
  std::atomic<std::uint32_t> consecutive_failures{0};
  std::atomic<std::uint32_t> ejections{0};        // how many times in a row (the ejection time doubles)
  std::atomic<std::uint32_t> address_version{0};  // bumped when the resolved address changes; 0 = unresolved

  // The resolved address as text ("10.0.0.1", "::1"); the control thread writes it, a worker reads it when it
  // opens a connection and its cached version differs.
  std::string address() const;
  void set_address(std::string ip);

  bool ejected(Clock::time_point now) const noexcept {
    return ejected_until.load(std::memory_order_relaxed) > now.time_since_epoch().count();
  }
  bool available(Clock::time_point now) const noexcept {
    return address_version.load(std::memory_order_relaxed) != 0 && healthy.load(std::memory_order_relaxed) &&
           !ejected(now);
  }

 private:
  mutable std::mutex mu_;
  std::string address_;
};

class ClusterState {
 public:
  explicit ClusterState(const config::Upstream& cfg);

  const std::string& name() const noexcept { return name_; }
  std::size_t size() const noexcept { return endpoints_.size(); }
  EndpointState& endpoint(std::size_t i) noexcept { return *endpoints_[i]; }
  const EndpointState& endpoint(std::size_t i) const noexcept { return *endpoints_[i]; }
  // Whether a cluster configured as `cfg` may keep this state across a reload (same name and endpoints).
  bool same_endpoints(const config::Upstream& cfg) const;

  // Circuit breaking: each try_* takes a slot if below `limit` and returns whether it did.
  bool try_acquire(std::atomic<std::uint32_t>& counter, std::uint32_t limit) noexcept;
  std::atomic<std::uint32_t> requests{0};         // in flight (max_requests)
  std::atomic<std::uint32_t> pending{0};          // waiting for a connection (max_pending)
  std::atomic<std::uint32_t> connections{0};      // open upstream connections (max_connections)
  std::atomic<std::uint32_t> retries{0};          // retries in flight (the retry budget)

  // Retry budget (Envoy-style): a retry may start while retries in flight stay ≤ budget% of requests in
  // flight, or below min_concurrent. Takes a slot when it returns true; release with retries.fetch_sub(1).
  bool try_retry(const config::Retries& r) noexcept;

  // Passive outlier detection: record one outcome of a try on endpoint `i`. Returns true when this outcome
  // ejected the endpoint (the caller counts it). Never ejects beyond max_ejected_percent, nor the last
  // available endpoint.
  enum class Outcome { success, status_5xx, failure };
  bool record(std::size_t i, Outcome o, const config::Outlier& cfg, Clock::time_point now) noexcept;

 private:
  std::string name_;
  std::vector<std::unique_ptr<EndpointState>> endpoints_;
};

// "host:port", IPv6 hosts bracketed.
std::string endpoint_name(std::string_view host, std::uint16_t port);

}  // namespace virex::upstream
