// One worker's view of one upstream cluster: its keep-alive connections per endpoint (an idle LIFO stack),
// its balancer cursor and its metrics series. Worker thread only; created on first use and kept while the
// cluster exists. Connections never move between workers (each worker's io_context owns its sockets).
// Measured alternative (shared pool across workers) and the reuse figures: bench/RESULTS.md.
#pragma once

#include <virex/core/runtime.hpp>
#include <virex/observe/metrics.hpp>
#include <virex/upstream/balancer.hpp>
#include <virex/upstream/cluster.hpp>

#include <array>
#include <memory>
#include <string>
#include <vector>

namespace virex::upstream {

class WorkerPool;

// One upstream connection. Owned by the pool while idle and by the exchange while in use; its destructor
// closes the socket and gives its max_connections slot back.
struct UpstreamConn {
  UpstreamConn(WorkerPool& owner, std::uint32_t endpoint);
  ~UpstreamConn();
  UpstreamConn(const UpstreamConn&) = delete;
  UpstreamConn& operator=(const UpstreamConn&) = delete;

  WorkerPool& pool;
  core::Socket socket;
  std::uint32_t endpoint;
  std::uint32_t requests = 0;        // requests sent on it so far
  std::uint32_t address_version = 0; // of the endpoint's address when it connected (DNS changes retire it)
  Clock::time_point idle_since{};    // while pooled; zero while in use
};

struct EndpointSeries {
  observe::CounterRef requests, connections, active, idle, ejections;
  std::array<observe::CounterRef, 5> responses;  // 1xx … 5xx
};

struct ClusterSeries {
  observe::HistogramRef response_time;   // request sent → response head
  observe::CounterRef reused, retries, budget_exhausted;
  std::array<observe::CounterRef, 3> rejected;            // max_connections, max_pending, max_requests
  std::array<observe::CounterRef, kProxyErrcCount> errors;
};

class WorkerPool {
 public:
  WorkerPool(core::Executor ex, std::shared_ptr<ClusterState> state, observe::Registry& registry,
             observe::Shard shard, std::uint64_t seed);
  ~WorkerPool();

  ClusterState& state() noexcept { return *state_; }
  const std::shared_ptr<ClusterState>& state_ptr() const noexcept { return state_; }
  PickState& pick_state() noexcept { return pick_; }
  core::Executor executor() const noexcept { return ex_; }
  EndpointSeries& endpoint_series(std::uint32_t e) noexcept { return endpoints_[e].series; }
  ClusterSeries& series() noexcept { return series_; }
  std::size_t in_use() const noexcept { return in_use_; }

  // The most recently used idle connection to endpoint `e` that the peer has not closed (checked with one
  // non-blocking peek when it sat idle for a while), or null.
  std::unique_ptr<UpstreamConn> take_idle(std::uint32_t e, Clock::time_point now);
  // A new, unconnected connection to `e`, or null when max_connections is reached.
  std::unique_ptr<UpstreamConn> open(std::uint32_t e, std::uint32_t max_connections);
  // The endpoint's current resolved address; false while it is unresolved.
  bool address(std::uint32_t e, core::tcp::endpoint& out);
  // Takes a connection back after an exchange: kept idle when `reusable` and the pool has room, else closed.
  void release(std::unique_ptr<UpstreamConn> c, bool reusable, const config::UpstreamPool& cfg, Clock::time_point now);
  // Closes idle connections older than `idle_timeout` (the worker's tick).
  void sweep(Clock::time_point now, config::Duration idle_timeout);

 private:
  friend struct UpstreamConn;
  struct Endpoint {
    std::vector<std::unique_ptr<UpstreamConn>> idle;   // LIFO: back is the warmest
    std::uint32_t address_version = 0;
    core::tcp::endpoint address;
    EndpointSeries series;
  };
  void closed(UpstreamConn& c) noexcept;

  core::Executor ex_;
  std::shared_ptr<ClusterState> state_;
  std::vector<Endpoint> endpoints_;
  PickState pick_;
  ClusterSeries series_;
  std::size_t in_use_ = 0;     // connections handed out and not yet back (the pool outlives them)
};

}  // namespace virex::upstream
