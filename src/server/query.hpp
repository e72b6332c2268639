// A query route's exchange, whatever protocol the client speaks (HTTP/1.1: Connection::query(); HTTP/2:
// H2Connection::query()). QueryRequest holds what the statement needs from the request, copied so it outlives
// the request head; the steps below bind its parameters (400 naming one), run it on its shard (404 outside the
// map) or on every shard with the route's merge, and encode the rows (JSON, or protobuf for Accept:
// application/x-protobuf). The caller adds what its protocol supports around them (coalescing, the regional
// tier, the edge store, the write's invalidations). Worker thread only.
#pragma once

#include "worker.hpp"

#include <virex/cache/cache_status.hpp>
#include <virex/cache/store.hpp>
#include <virex/shard/value.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace virex::server {

struct QueryDbSpan {                       // one shard statement (a client span each, when traced)
  std::array<std::uint8_t, 8> span_id{};
  std::uint64_t start_ns = 0, end_ns = 0;  // unix ns
  std::int64_t shard = 0;
  bool replica = false;
  std::string_view endpoint, error;        // endpoint: the pool's label; error: a static outcome name
};

inline constexpr std::size_t kMaxQueryBody = 256 * 1024;  // a query route's JSON body; larger → 413

struct QueryRequest {
  std::shared_ptr<const pipeline::Snapshot> snapshot;  // keeps the route and the shard map alive
  const pipeline::CompiledRoute* route = nullptr;
  std::vector<std::pair<std::string, std::string>> captures;  // path captures (name, percent-encoded value)
  std::string query, host, path, accept, body;  // host lower-case; accept at most 256 bytes
  bool body_too_large = false;                  // over kMaxQueryBody: 413
  // Tracing: with `spans`, one client span per statement; `sampled` statements also carry the sqlcommenter
  // traceparent (trace id `trace_id`, 32 hex digits, and flags `trace_flags`).
  std::vector<QueryDbSpan>* spans = nullptr;
  const char* trace_id = nullptr;
  std::uint8_t trace_flags = 0;
  bool sampled = false;
};

struct QueryResponse {
  unsigned status = 0;
  std::string body;
  std::string extra;              // header lines, each ending CRLF
  std::string_view content_type;  // application/json or application/x-protobuf
  std::string_view error;         // access log: why it failed (empty when it did not)
  std::string shards;             // access log: "id:role" per shard statement
};

struct QueryPlan {
  std::vector<std::string> values;  // $1..$n as text, checked against their declared types
  std::int64_t offset = 0;          // a sorted fan-out's offset parameter
};

// Binds the parameters; false when the request is refused (`out` holds the 4xx answer).
bool plan_query(const QueryRequest& in, QueryPlan& plan, QueryResponse& out);

// The bound on running a plan: every shard's statement ends within acquire + statement + connect timeouts
// (twice: a read may run again on the primary), plus slack.
std::chrono::steady_clock::duration query_bound(const config::DatabasePool& pool);

// Runs the plan: its rows (and for a partial fan-out the shards that did not answer, in `missing`); false when
// it failed (`out` holds the error answer). Always fills out.shards.
Awaitable<bool> run_query(Worker& worker, const QueryRequest& in, QueryPlan plan, shard::ResultSet& rows,
                          std::string& missing, QueryResponse& out);

// A write's `invalidate:` items after commit, as (kind, value): tag, path or prefix, captures expanded.
std::vector<std::pair<std::string, std::string>> query_invalidations(const QueryRequest& in);
// Purges one of them from the node's edge cache.
void purge_edge(cache::Store& store, std::string_view kind, const std::string& value);
// Purges one of them in the regional tier and on every other node (the admin purge's script), waiting until
// Redis ran it (at most its command timeout); false when the tier is unavailable or did not confirm
// (regional_lookup.cpp).
Awaitable<bool> regional_purge_wait(Worker& worker, std::string kind, std::string what);

// The answer: rows encoded (by Accept), 200 for a read and 201 for a write, Virex-Missing-Shards for a partial
// fan-out.
void encode_rows(const QueryRequest& in, const shard::ResultSet& rows, bool read, const std::string& missing,
                 QueryResponse& out);

// An edge/regional entry for a complete answer to a cacheable GET (Vary: Accept; `variant_key` as the lookup
// computed it for this request). ttl: the route's edge_ttl (0 for a private route's regional-only copy).
std::shared_ptr<cache::Entry> query_entry(const QueryRequest& in, const QueryResponse& out, std::string cache_key,
                                          std::string variant_key);

}  // namespace virex::server
