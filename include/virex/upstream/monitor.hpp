// The control thread's watch over one upstream cluster: resolves DNS names off the workers (asynchronously,
// re-resolved every resolve_interval; IP literals need none), runs the active HTTP health checks, and keeps
// the per-endpoint health gauges. Its verdicts land in the shared ClusterState atomics that workers read.
// Runs on the control thread's io_context only; stop() before a reload replaces it (the state may outlive it).
#pragma once

#include <virex/config/config.hpp>
#include <virex/core/runtime.hpp>
#include <virex/observe/metrics.hpp>
#include <virex/upstream/cluster.hpp>

#include <memory>
#include <vector>

namespace virex::upstream {

class Monitor : public std::enable_shared_from_this<Monitor> {
 public:
  // `cfg` is copied (the snapshot that held it may go first). IP-literal endpoints are resolved here.
  Monitor(boost::asio::io_context& ioc, std::shared_ptr<ClusterState> state, config::Upstream cfg,
          observe::Registry& registry, observe::Shard shard);
  ~Monitor();

  void start();   // spawns the resolve, health-check and gauge loops
  void stop();    // ends them (they finish at their next step); withdraws this monitor's gauge values

 private:
  core::Awaitable<void> resolve_loop(std::shared_ptr<Monitor> self);
  core::Awaitable<void> check_loop(std::shared_ptr<Monitor> self, std::size_t endpoint);
  core::Awaitable<void> gauge_loop(std::shared_ptr<Monitor> self);
  core::Awaitable<bool> check_once(std::size_t endpoint);
  void update_gauges();

  boost::asio::io_context& ioc_;
  std::shared_ptr<ClusterState> state_;
  config::Upstream cfg_;
  bool stopped_ = false;
  std::vector<std::unique_ptr<core::Timer>> timers_;   // one per loop, cancelled by stop()
  struct Series {
    observe::CounterRef healthy, ejected, pass, fail;
    std::int64_t healthy_value = 0, ejected_value = 0;
  };
  std::vector<Series> series_;
  std::vector<unsigned> passes_, failures_;   // consecutive, per endpoint
};

}  // namespace virex::upstream
