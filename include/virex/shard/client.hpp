// The shard router's PostgreSQL side, one instance per worker: pools of libpq connections per endpoint (every
// shard primary and replica), driven by the worker's io_context (non-blocking connect, pipeline mode, queries of
// concurrent requests sharing round trips), replica choice (healthy, lag under max_lag, local region first,
// least outstanding) with the primary as fallback, and the periodic replica-lag probe. libpq stays behind this
// header. Worker thread only; configure() on snapshot install, close() on drain.
#pragma once

#include <virex/config/config.hpp>
#include <virex/core/runtime.hpp>
#include <virex/shard/value.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace virex::shard {

template <class T>
using Awaitable = core::Awaitable<T>;

enum class QueryErrc : std::uint8_t {
  none,
  unavailable,      // no connection could be opened (endpoint down or backing off)
  pool_timeout,     // every connection busy until acquire_timeout
  overloaded,       // the wait queue is full
  timeout,          // statement_timeout passed (the connection is reset)
  sql_error,        // the server refused the statement (message and SQLSTATE kept)
  connection_lost,  // the connection broke with the statement in flight
  too_many_rows,    // the result exceeds the route's max_rows
};
inline constexpr std::size_t kQueryErrcCount = 8;
std::string_view to_string(QueryErrc e) noexcept;

enum class Role : std::uint8_t { primary, replica };

struct QueryOutcome {
  QueryErrc error = QueryErrc::none;
  std::string message;    // the server's message (sql_error) or what failed
  std::string sqlstate;   // five characters with sql_error
  ResultSet rows;
  Role role = Role::primary;   // where it ran
  std::string_view endpoint;   // the endpoint's label (host:port), valid while the snapshot lives
  bool retried_on_primary = false;  // a read whose replica failed and that ran again on the primary
  std::uint64_t start_unix_ns = 0, end_unix_ns = 0;  // wall clock, for the request's trace span
};

// Per-endpoint figures for metrics (read on the worker thread by the metrics hook).
struct EndpointStats {
  std::size_t shard = 0;
  std::int64_t shard_id = 0;
  Role role = Role::primary;
  std::string label;         // host:port
  unsigned open = 0, in_use = 0, waiting = 0;
  std::uint64_t opened_total = 0, acquire_timeouts_total = 0, connect_failures_total = 0;
  std::uint64_t syncs_total = 0;           // segments sent (one Sync each; reads of a turn share one)
  std::uint64_t segment_retries_total = 0;  // requests run again because another's error aborted their segment
  std::uint64_t retired_total = 0;          // idle connections closed for max_lifetime or idle_timeout
  std::uint64_t health_failures_total = 0;  // idle connections that failed their probe (closed)
  double lag_seconds = -1;   // replicas: last measured (-1 unknown / unreachable)
  bool healthy = true;
};

// Called once per finished statement (metrics): shard, role, outcome, seconds, pipeline depth when sent.
using QueryObserver = std::function<void(std::int64_t shard_id, Role role, QueryErrc e, double seconds, unsigned depth)>;

class Databases {
 public:
  // `workers` / `worker_index`: this worker's share of the per-node pool sizes (max/min_per_endpoint).
  Databases(core::Executor ex, unsigned workers, unsigned worker_index, std::string local_region);
  ~Databases();
  Databases(const Databases&) = delete;
  Databases& operator=(const Databases&) = delete;

  // Installs the shard map and pool settings of a (re)loaded config. Endpoints are keyed by connection string
  // and keep their connections across reloads; endpoints no longer named close once idle.
  void configure(const config::Databases& cfg);

  // Runs `sql` ($1..$n bound to `params`, text format) on shard `shard` (an index into cfg.shards): `read` → a
  // qualifying replica, else (or when that replica fails before answering) the primary; a write → the primary.
  // Suspends until the result, an error, or statement_timeout. `sql` is prepared once per connection.
  // `max_rows` bounds the rows kept. The returned endpoint label lives as long as this object. A non-empty
  // `comment` (sqlcommenter, e.g. "/*traceparent='…'*/") is appended to the statement, which then runs unnamed
  // (a per-request text cannot be a prepared statement); sampled requests only, so the others stay prepared.
  Awaitable<QueryOutcome> query(std::size_t shard, bool read, std::string sql, std::vector<std::string> params,
                                std::size_t max_rows, std::string comment = {});

  // The same statement on every shard in parallel (fan-out); one outcome per shard, in shard-map order.
  // Suspends until every shard has answered or failed (each within its own deadlines).
  // `comments`: empty, or one per shard (see query()).
  Awaitable<std::vector<QueryOutcome>> query_all(bool read, std::string sql, std::vector<std::string> params,
                                                 std::size_t max_rows, std::vector<std::string> comments = {});
  std::size_t shard_count() const noexcept;

  // Closes every connection and stops the lag probe (drain); queries after it fail with `unavailable`.
  void close();

  void set_observer(QueryObserver o);
  std::vector<EndpointStats> stats() const;
  std::int64_t version() const noexcept;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace virex::shard
