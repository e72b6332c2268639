// The shard router's series of one worker: statements by shard/role/outcome, their latency and the pipeline
// depth they were sent at (from the pools' observer), pool gauges refreshed on the worker tick (connections in
// use / idle, waiting requests, acquire timeouts, connections opened, replica lag — lag and the map version from
// worker 0 only, since gauges add up across workers), fan-out width and partial answers. Worker thread only;
// series are registered on first use (names and labels bounded by the config).
#pragma once

#include <virex/observe/metrics.hpp>
#include <virex/shard/client.hpp>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>

namespace virex::server {

class ShardMetrics {
 public:
  ShardMetrics(observe::Registry& reg, observe::Shard shard, unsigned worker_id)
      : reg_(reg), shard_(shard), worker_id_(worker_id) {}

  // The pools' per-statement hook.
  void on_query(std::int64_t shard_id, shard::Role role, shard::QueryErrc e, double seconds, unsigned depth);
  // Pool gauges from the pools' current figures (worker tick).
  void update(const std::vector<shard::EndpointStats>& stats, std::int64_t version);
  void on_fan_out(std::string_view route, std::size_t width, bool partial);

 private:
  struct EndpointSeries {
    observe::CounterRef in_use, idle, waiting, lag, opened, timeouts, failures, syncs, retries, retired, unhealthy;
    std::int64_t last_in_use = 0, last_idle = 0, last_waiting = 0, last_lag = 0;
    std::uint64_t last_opened = 0, last_timeouts = 0, last_failures = 0, last_syncs = 0, last_retries = 0;
    std::uint64_t last_retired = 0, last_unhealthy = 0;
  };
  observe::Registry& reg_;
  observe::Shard shard_;
  unsigned worker_id_;
  std::map<std::tuple<std::int64_t, int, int>, observe::CounterRef> queries_;
  std::map<std::pair<std::int64_t, int>, observe::HistogramRef> latency_;
  observe::HistogramRef depth_, width_;
  std::map<std::string, observe::CounterRef, std::less<>> partials_;
  std::map<std::tuple<std::int64_t, int, std::string>, EndpointSeries> endpoints_;
  observe::CounterRef version_;
  std::int64_t last_version_ = 0;
};

}  // namespace virex::server
