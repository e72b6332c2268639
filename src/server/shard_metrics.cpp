// The shard router's metrics (see shard_metrics.hpp).
#include "shard_metrics.hpp"

#include <array>

namespace virex::server {
namespace {
std::string role_name(shard::Role r) { return r == shard::Role::primary ? "primary" : "replica"; }
constexpr std::array<double, 8> kDepthBounds = {1, 2, 4, 8, 16, 32, 64, 128};
}  // namespace

void ShardMetrics::on_query(std::int64_t shard_id, shard::Role role, shard::QueryErrc e, double seconds,
                            unsigned depth) {
  const auto key = std::make_tuple(shard_id, static_cast<int>(role), static_cast<int>(e));
  auto it = queries_.find(key);
  if (it == queries_.end()) {
    it = queries_.emplace(key, shard_.counter(reg_.counter(
                                   "virex_shard_queries_total", "Statements run on shard endpoints, by outcome.",
                                   {{"shard", std::to_string(shard_id)}, {"role", role_name(role)},
                                    {"outcome", std::string(shard::to_string(e))}})))
             .first;
  }
  it->second.inc();
  const auto lkey = std::make_pair(shard_id, static_cast<int>(role));
  auto lt = latency_.find(lkey);
  if (lt == latency_.end()) {
    lt = latency_.emplace(lkey, shard_.histogram(reg_.histogram(
                                    "virex_shard_query_duration_seconds",
                                    "Statement time from pool acquire to its last result.",
                                    {{"shard", std::to_string(shard_id)}, {"role", role_name(role)}},
                                    observe::default_latency_buckets(), 1e-9)))
             .first;
  }
  lt->second.observe(static_cast<std::uint64_t>(seconds * 1e9));
  if (depth > 0) {
    if (!depth_.valid())
      depth_ = shard_.histogram(reg_.histogram("virex_shard_pipeline_depth",
                                               "Statements in flight on the connection when one was sent (itself included).",
                                               {}, kDepthBounds, 1));
    depth_.observe(depth);
  }
}

void ShardMetrics::on_fan_out(std::string_view route, std::size_t width, bool partial) {
  if (!width_.valid())
    width_ = shard_.histogram(reg_.histogram("virex_shard_fanout_width", "Shards a fan-out query went to.", {},
                                             kDepthBounds, 1));
  width_.observe(width);
  if (!partial) return;
  auto it = partials_.find(route);
  if (it == partials_.end()) {
    it = partials_.emplace(std::string(route), shard_.counter(reg_.counter(
                                                   "virex_shard_partial_responses_total",
                                                   "Fan-out answers given without some shards (fan_out.partial).",
                                                   {{"route", std::string(route)}})))
             .first;
  }
  it->second.inc();
}

void ShardMetrics::update(const std::vector<shard::EndpointStats>& stats, std::int64_t version) {
  for (const shard::EndpointStats& s : stats) {
    const auto key = std::make_tuple(s.shard_id, static_cast<int>(s.role), s.label);
    auto it = endpoints_.find(key);
    if (it == endpoints_.end()) {
      const observe::Labels l = {{"shard", std::to_string(s.shard_id)}, {"role", role_name(s.role)}, {"endpoint", s.label}};
      EndpointSeries e;
      observe::Labels busy = l, idle = l;
      busy.emplace_back("state", "in_use");
      idle.emplace_back("state", "idle");
      const char* conn_help = "Open connections to a shard endpoint by state (in_use: statements in flight).";
      e.in_use = shard_.gauge(reg_.gauge("virex_shard_pool_connections", conn_help, busy));
      e.idle = shard_.gauge(reg_.gauge("virex_shard_pool_connections", conn_help, idle));
      e.waiting = shard_.gauge(reg_.gauge("virex_shard_pool_waiting", "Requests waiting for a pool slot.", l));
      e.opened = shard_.counter(reg_.counter("virex_shard_connections_opened_total", "Connections opened (attempts).", l));
      e.timeouts = shard_.counter(reg_.counter("virex_shard_pool_acquire_timeouts_total",
                                               "Requests that waited acquire_timeout for a slot (answered 503).", l));
      e.failures = shard_.counter(reg_.counter("virex_shard_connect_failures_total", "Connection attempts that failed.", l));
      e.syncs = shard_.counter(reg_.counter("virex_shard_syncs_total",
                                            "Pipeline segments sent (one Sync each; the reads of one event-loop turn share one).", l));
      e.retries = shard_.counter(reg_.counter("virex_shard_segment_retries_total",
                                              "Statements run again alone because another request's error aborted their segment or their statement's Parse.", l));
      e.retired = shard_.counter(reg_.counter("virex_shard_connections_retired_total",
                                              "Idle connections closed for max_lifetime or idle_timeout.", l));
      e.unhealthy = shard_.counter(reg_.counter("virex_shard_health_check_failures_total",
                                                "Idle connections that failed their SELECT 1 probe (closed).", l));
      if (s.role == shard::Role::replica && worker_id_ == 0)
        e.lag = shard_.gauge(reg_.gauge("virex_shard_replica_lag_milliseconds",
                                        "Replica replay lag as last measured by worker 0 (-1: unknown or unreachable).", l));
      it = endpoints_.emplace(key, e).first;
    }
    EndpointSeries& e = it->second;
    const auto in_use = static_cast<std::int64_t>(s.in_use);
    const auto idle = static_cast<std::int64_t>(s.open - s.in_use);
    const auto waiting = static_cast<std::int64_t>(s.waiting);
    e.in_use.add(in_use - e.last_in_use), e.last_in_use = in_use;
    e.idle.add(idle - e.last_idle), e.last_idle = idle;
    e.waiting.add(waiting - e.last_waiting), e.last_waiting = waiting;
    e.opened.inc(s.opened_total - e.last_opened), e.last_opened = s.opened_total;
    e.timeouts.inc(s.acquire_timeouts_total - e.last_timeouts), e.last_timeouts = s.acquire_timeouts_total;
    e.failures.inc(s.connect_failures_total - e.last_failures), e.last_failures = s.connect_failures_total;
    e.syncs.inc(s.syncs_total - e.last_syncs), e.last_syncs = s.syncs_total;
    e.retries.inc(s.segment_retries_total - e.last_retries), e.last_retries = s.segment_retries_total;
    e.retired.inc(s.retired_total - e.last_retired), e.last_retired = s.retired_total;
    e.unhealthy.inc(s.health_failures_total - e.last_unhealthy), e.last_unhealthy = s.health_failures_total;
    if (e.lag.valid()) {
      const auto lag = s.lag_seconds < 0 ? -1 : static_cast<std::int64_t>(s.lag_seconds * 1000);
      e.lag.add(lag - e.last_lag), e.last_lag = lag;
    }
  }
  if (worker_id_ == 0) {
    if (!version_.valid())
      version_ = shard_.gauge(reg_.gauge("virex_shard_map_version", "The shard map's version (databases.version)."));
    version_.add(version - last_version_), last_version_ = version;
  }
}

}  // namespace virex::server
