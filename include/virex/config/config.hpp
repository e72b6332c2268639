// Typed, validated configuration of the daemon: what YAML becomes after config::load().
// Plain value structs, immutable once loaded; every field documents its default where it is declared.
// Built on the main (control) thread; shared read-only with workers inside a snapshot.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace virex::config {

using Duration = std::chrono::milliseconds;

// Where a key stood in the YAML file (1-based line and column), for messages about it after loading
// (e.g. a `respond.file` that cannot be read when the server builds its snapshot).
struct Location {
  std::string file;
  int line = 0;
  int column = 0;
};

struct Node {
  std::string name;              // default: "" (the server uses the host name)
  std::string region = "default";
  unsigned workers = 0;          // default: 0 = auto (one per core); `workers: auto | N`
};

// A resource budget per HTTP/2 connection (`limits.http2:`). Breaching one sends GOAWAY (ENHANCE_YOUR_CALM, or
// PROTOCOL_ERROR for a malformed header block), closes the connection and counts it by reason. The rates are
// token buckets: a one-second burst of the rate, refilled continuously.
struct Http2Limits {
  unsigned max_concurrent_streams = 100;       // default 100 (1..10000): SETTINGS_MAX_CONCURRENT_STREAMS
  std::size_t max_header_list_size = 64 * 1024;  // default 64KiB (1KiB..1MiB): decoded header block (RFC 9113
                                               //   §6.5.2 accounting: name + value + 32 each); also SETTINGS
  unsigned max_header_count = 128;             // default 128 (1..10000): fields per header block
  std::size_t hpack_table_size = 4096;         // default 4096 (0..64KiB): our decoder's dynamic table
                                               //   (SETTINGS_HEADER_TABLE_SIZE) and our encoder's cap
  unsigned max_continuation_frames = 8;        // default 8 (0..1000): CONTINUATION frames per header block
  std::size_t max_stalled_bytes = 1024 * 1024;  // default 1MiB (16KiB..1GiB): response bytes the connection holds
                                               //   for streams whose flow-control window is closed
  unsigned max_resets_per_second = 100;        // default 100 (1..100000): RST_STREAM from the client (rapid reset)
  unsigned max_pings_per_second = 10;          // default 10 (1..100000): PING frames
  unsigned max_settings_per_second = 10;       // default 10 (1..100000): SETTINGS frames
  unsigned max_empty_data_per_second = 100;    // default 100 (1..100000): DATA frames without payload or END_STREAM
};

struct Limits {
  std::size_t max_header_bytes = 16 * 1024;   // default 16KiB: request line + header section → 431
  std::size_t max_uri_bytes = 8 * 1024;       // default 8KiB: request target → 414
  std::size_t max_body_bytes = 1024 * 1024;   // default 1MiB → 413
  Duration header_timeout = std::chrono::seconds(10);  // first byte → end of header section → 408
  Duration idle_timeout = std::chrono::seconds(60);    // keep-alive connection with no request → close
  Duration drain_timeout = std::chrono::seconds(30);   // SIGTERM → forced exit
  Http2Limits http2;                                    // `limits.http2:`
};

// ---- TLS and protocols on a listener (`protocols:`, `tls:`) -------------------------------------------------

// `protocols:` values. http1 = HTTP/1.1; h2c = HTTP/2 in cleartext with prior knowledge (the connection preface
// is detected); h2 = HTTP/2 over TLS, offered by ALPN (only with `tls:`).
enum class Protocol : std::uint8_t { http1, h2c, h2 };
enum class TlsVersion : std::uint8_t { tls12, tls13 };

struct TlsCertificate {
  std::string cert;                        // required: PEM certificate chain (leaf first); relative to the config dir
  std::string key;                         // required: PEM private key matching the leaf
  std::optional<std::string> ocsp_staple;  // default none: a DER OCSP response stapled for this certificate
  Location cert_location, key_location, ocsp_location;
};

struct ListenerTls {
  // required, at least one, at most 64: the certificate whose names match the SNI host name is used; the first
  // one when none matches or the client sends no SNI. Read at start-up and on every reload (SIGHUP).
  std::vector<TlsCertificate> certificates;
  TlsVersion min_version = TlsVersion::tls12;  // default "1.2": `min_version: "1.2" | "1.3"`
  bool session_tickets = true;                 // default true: RFC 5077/8446 tickets, keys rotated hourly
  // default none: a DER OCSP response file stapled for the first certificate (when it has no ocsp_staple of its own)
  std::optional<std::string> ocsp_staple;
  Location ocsp_location;
  Location location;
};

struct Listener {
  std::string name;        // required, unique
  std::string host;        // from `address: "ip:port"`; IPv6 as "[::1]:8080" → host "::1"
  std::uint16_t port = 0;
  bool admin = false;      // default false: admin listeners serve /metrics, /healthz, /readyz only
  // default [http1]; h2 needs `tls:`, h2c needs no `tls:`. Reloadable (new connections).
  std::vector<Protocol> protocols;
  std::optional<ListenerTls> tls;  // default none: cleartext
  Location location;
};

enum class PathKind { exact, prefix, template_ };

struct RouteMatch {
  std::string host = "*";                  // default "*": any host; else exact (lower-cased) or "*.suffix"
  PathKind kind = PathKind::prefix;        // `path:` → exact (template_ when it holds `{name}`), `prefix:`
  std::string path = "/";                  // default: prefix "/"
  std::vector<std::string> methods;        // default: empty = any method; `method: GET` or `[GET, HEAD]`
};

struct Respond {
  unsigned status = 200;                                   // default 200 (100–599 minus 1xx)
  std::vector<std::pair<std::string, std::string>> headers;  // default none; order kept
  std::string body;                                        // default "": inline body
  std::optional<std::string> file;                         // body read from this file at (re)load
  Location file_location;                                  // where `file:` stood
};

// A route's `upstream:` action: `upstream: NAME`, with optional `rewrite:` and `timeouts:` beside it.
struct RouteUpstream {
  std::string cluster;                 // required: a key of `upstreams:`
  std::string strip_prefix;            // default "": `rewrite.strip_prefix` removed from the path's front
  std::string add_prefix;              // default "": `rewrite.add_prefix` put in front of the (stripped) path
  std::optional<Duration> first_byte;  // default: the cluster's; `timeouts.first_byte` of the route
  std::optional<Duration> idle;        // default: the cluster's
  std::optional<Duration> request;     // default: the cluster's
};

// ---- edge cache: a route's `cache:` block -----------------------------------------------------------------

enum class CacheScope { public_, private_ };

// What a route adds to the cache key beyond method class (GET = HEAD), host and path (see cache/key.hpp).
struct RouteCacheKey {
  std::vector<std::string> headers;  // default none: request headers whose values vary the key; tokens, stored
                                     //   lower-case, unique, at most 32; not Host (always in) nor Cookie (use cookies)
  std::vector<std::string> query;    // default none = every parameter; else only these (exact names), at most 32
  bool ignore_query = false;         // default false: true leaves the query out (exclusive with `query`)
  std::vector<std::string> cookies;  // default none: cookies whose values vary the key; tokens, unique, at most 32
};

// `cache:` on a route with `upstream:` (only there). Durations are whole seconds.
struct RouteCache {
  // default none: origin lifetimes only, responses without one are not stored. Set (1s..1h; the tiers use
  // 1s..60s): caps explicit lifetimes (s-maxage, max-age, Expires) and is the lifetime of responses without one.
  std::optional<Duration> edge_ttl;
  RouteCacheKey key;
  // default none: purge tags given to every stored response (beside its Surrogate-Key / Cache-Tag ones), at most
  // 32, unique. A template: `{name}` is replaced by the route's path capture of that name (it must exist in
  // match.path); other characters are visible ASCII without spaces, commas or quotes. e.g. "customer:{customer_id}".
  std::vector<std::string> tags;
  CacheScope scope = CacheScope::public_;   // default public; private: nothing stored in the shared edge cache
  bool store_set_cookie = false;            // default false: responses with Set-Cookie are not stored
  Duration negative_ttl = std::chrono::seconds(10);          // default 10s (0..1h): 404/410 without a lifetime
  Duration stale_while_revalidate = std::chrono::seconds(0);  // default 0s (0..1d): when the response gives none
  Duration stale_if_error = std::chrono::seconds(0);          // default 0s (0..1d): when the response gives none
  // default none: not stored in the regional tier. Set: the lifetime of the regional (Redis) copy, 5m..15m
  // (whole seconds) unless `regional_ttl_override: true` (then 1s..1d); each write gets ±10% jitter. Needs
  // `cache.regional`.
  std::optional<Duration> regional_ttl;
  bool regional_ttl_override = false;      // default false: true lifts regional_ttl's 5m..15m bound
  // Private scope with regional_ttl: responses are cached regionally only, per user, keyed by a hash of this
  // request header or cookie (a request without it bypasses the tier). Required there; not allowed otherwise.
  enum class IdentityFrom : std::uint8_t { none, header, cookie };
  IdentityFrom identity_from = IdentityFrom::none;   // default none
  std::string identity_name;                         // `identity: {header: X-User}` or `{cookie: session}`
  Location regional_ttl_location;                    // where `regional_ttl:` stood
  Location location;                                          // where `cache:` stood
};

// ---- shard router: a route's `query:` action and `invalidate:` list ---------------------------------------------

enum class QueryParamType : std::uint8_t { int64, text, boolean, timestamp, numeric };
// Where a parameter's value comes from: `NAME` is a path capture of that name, else the query string;
// `query.NAME`, `body.NAME` (a member of the JSON request body; dots go deeper) say it explicitly;
// `fan_out.fetch` is the row count each shard is asked for (fan_out.limit + the offset).
enum class QueryParamSource : std::uint8_t { path, query, body, fetch };

struct QueryParam {
  std::string name;                 // "customer_id", "total_cents" (without the source prefix); body: "a.b"
  QueryParamSource source = QueryParamSource::query;
  QueryParamType type = QueryParamType::text;
  std::string spec;                 // as written ("body.total_cents:int64"), for messages
};

enum class Merge : std::uint8_t { concat, sorted, aggregate };
enum class AggregateFn : std::uint8_t { count, sum, min, max, avg };

struct SortKey {
  std::string column;
  bool descending = false;          // "col desc"; default ascending
};

struct Aggregate {
  std::string column;               // the output column
  AggregateFn fn = AggregateFn::count;
  std::string sum_column, count_column;  // avg: {avg: [SUM_COLUMN, COUNT_COLUMN]} (columns of the shard rows)
};

// `fan_out:` — how the rows of every shard are merged. Present on routes without `shard_by` (the default
// {merge: concat}).
struct FanOut {
  Merge merge = Merge::concat;                // default concat
  std::vector<SortKey> order_by;              // sorted: required; "total_cents desc, id"
  std::optional<std::int64_t> limit;          // sorted: default none (all rows); 1..max_rows
  std::string offset;                         // sorted: default "" (none): a query-string parameter (int64 ≥ 0)
                                              //   skipping that many merged rows; each shard is asked limit+offset
  std::vector<Aggregate> aggregates;          // aggregate: required; output column → fn
  std::vector<std::string> group_by;          // aggregate: default none (one row)
  bool partial = false;                       // default false: a failing shard fails the request (503); true:
                                              //   answer with the others and name the missing ones in a header
};

struct RouteQuery {
  std::string sql;                            // required: one statement, $1..$n bound from `params`
  std::vector<QueryParam> params;             // default none; $i is params[i-1]
  std::optional<std::size_t> shard_by;        // default none (fan out): index into params of the int64 key
  FanOut fan_out;                             // used when shard_by is not set
  std::optional<bool> read_only;              // default: true for GET/HEAD-only routes, false otherwise
  bool reads() const noexcept { return read_only.value_or(false); }
  std::size_t max_rows = 10000;               // default 10000 (1..1000000): rows held for one response
  Location location;
};

struct Route {
  std::string name;        // default: "route<N>" (N = index); used as the metrics label
  RouteMatch match;
  Respond respond;         // the action when `upstream` is not set
  std::optional<RouteUpstream> upstream;   // `upstream:` action (exclusive with `respond:`)
  std::optional<RouteQuery> query;         // `query:` action (exclusive with `respond:` and `upstream:`)
  // default none: after a successful write, purge these from the edge cache: "tag:T", "path:/p" (exact),
  // "prefix:/p"; `{name}` takes the path capture of that name. Only on `query:` routes that write.
  std::vector<std::string> invalidate;
  std::optional<RouteCache> cache;         // default none: not cached; only with `upstream:` or `query:`
  Location location;
};

// ---- upstream clusters (`upstreams:`) ----------------------------------------------------------------------

struct UpstreamEndpoint {
  std::string host;          // IP literal or DNS name (resolved off the workers, re-resolved periodically)
  std::uint16_t port = 0;
  Location location;
};

enum class Balance { round_robin, least_request, consistent_hash };
enum class HashOn { path, header, cookie };

struct HealthCheck {
  bool enabled = false;                                   // true when `health_check:` is present
  std::string path = "/health";                           // default /health: GET, healthy on 2xx/3xx
  std::string host;                                       // default "": the endpoint's host
  Duration interval = std::chrono::seconds(5);            // default 5s
  Duration timeout = std::chrono::seconds(1);             // default 1s
  unsigned healthy = 2;                                   // default 2 consecutive passes to become healthy
  unsigned unhealthy = 3;                                 // default 3 consecutive failures to become unhealthy
};

struct UpstreamTimeouts {
  Duration connect = std::chrono::seconds(2);             // default 2s: TCP connect
  Duration first_byte = std::chrono::seconds(30);         // default 30s: request sent → first response byte
  Duration idle = std::chrono::seconds(60);               // default 60s: between bytes, either direction
  std::optional<Duration> request;                        // default none: whole exchange incl. body streaming
};

struct Retries {
  unsigned attempts = 1;                                  // default 1 retry (0 = off) after the first try
  unsigned budget_percent = 20;                           // default 20: retries ≤ 20% of active requests
  unsigned min_concurrent = 3;                            // default 3: retries always allowed up to this many
  Duration backoff = std::chrono::milliseconds(25);       // default 25ms base; doubled per retry, full jitter
  Duration max_backoff = std::chrono::milliseconds(250);  // default 250ms
};

struct UpstreamLimits {            // circuit breaking, per cluster and node; excess fails fast with 503
  unsigned max_connections = 1024;  // default 1024 open upstream connections
  unsigned max_pending = 1024;      // default 1024 requests waiting for a connection
  unsigned max_requests = 1024;     // default 1024 requests in flight
};

struct UpstreamPool {
  unsigned max_idle = 32;                                 // default 32 idle keep-alive connections per endpoint per worker
  Duration idle_timeout = std::chrono::seconds(30);       // default 30s: an idle pooled connection is closed
  unsigned max_requests_per_connection = 0;               // default 0 = unlimited
};

struct Outlier {                   // passive ejection
  unsigned consecutive_5xx = 5;                           // default 5 (0 = off)
  unsigned consecutive_failures = 3;                      // default 3 connect failures/resets (0 = off)
  Duration base_ejection = std::chrono::seconds(10);      // default 10s; ×2 per repeated ejection
  Duration max_ejection = std::chrono::seconds(300);      // default 300s
  unsigned max_ejected_percent = 50;                      // default 50: never eject more (and never all)
};

struct Upstream {
  std::string name;                         // the key under `upstreams:`; a metrics label
  std::vector<UpstreamEndpoint> endpoints;  // required, at least one, "host:port"
  Balance balance = Balance::round_robin;   // default round_robin
  HashOn hash_on = HashOn::path;            // default path; `hash_on: path | header:NAME | cookie:NAME`
  std::string hash_key;                     // the header or cookie name
  std::string host_header;                  // default "": pass the client's Host; else send this Host
  Duration resolve_interval = std::chrono::seconds(30);   // default 30s: DNS names re-resolved
  HealthCheck health_check;
  UpstreamTimeouts timeouts;
  Retries retries;
  UpstreamLimits limits;
  UpstreamPool pool;
  Outlier outlier;
  Location location;
};

// An address range in `proxy.trusted_proxies`: "10.0.0.0/8", "::1" (a single address), IPv4 or IPv6.
struct Cidr {
  std::array<std::uint8_t, 16> bytes{};   // IPv4 as ::ffff:a.b.c.d (mapped), prefix counted on 128 bits
  unsigned prefix = 128;
};

struct Proxy {
  // default none: X-Forwarded-For from a client is replaced by the client address; from a trusted proxy it
  // is kept and the client address appended.
  std::vector<Cidr> trusted_proxies;
  bool via = true;                          // default true: add `Via: 1.1 <node.name>` both ways
};

enum class AccessLogFormat { combined, json };

struct AccessLog {
  std::string path;                               // default "": off; "-" = stdout
  AccessLogFormat format = AccessLogFormat::combined;
};

struct Tracing {
  // default "": export off. "host:port" of an OTLP/gRPC collector (e.g. "127.0.0.1:4317"): an IPv4 address,
  // "[IPv6]" or a DNS name (resolved by gRPC's own threads, never a worker). Read at start-up.
  std::string otlp_endpoint;
  // default 0.01 (0..1): head sampling of traces without a sampled caller, decided from the trace id's random
  // low bits, so every node picks the same traces. Reloadable.
  double sample_ratio = 0.01;
  // default 500ms (> 0): a request at least this slow is exported whatever the ratio (tail rule; so are
  // errors: status >= 500). Reloadable.
  Duration slow_threshold = std::chrono::milliseconds(500);
  // default "virex-edge": the exported resource's service.name. Read at start-up.
  std::string service_name = "virex-edge";
  // default "": none. A response header (e.g. X-Trace-Id) carrying the request's W3C trace id — the one of an
  // incoming valid `traceparent`, else a new random one; the same id is in the access log line.
  std::string response_header;
};

struct Observability {
  AccessLog access_log;
  std::string log_level = "info";   // default info: trace|debug|info|warn|error|critical|off
  Tracing tracing;
};

// ---- edge cache (`cache:`) and the admin API (`admin:`) -----------------------------------------------------

struct EdgeCache {
  std::size_t max_bytes = 512 * 1024 * 1024;       // default 512MiB (>= 1MiB): all entries, headers + body + key
                                                   //   + overhead. Read at start-up
  std::size_t max_object_bytes = 8 * 1024 * 1024;  // default 8MiB (1KiB..max_bytes): larger responses not stored
  unsigned shards = 0;                             // default 0 = auto (the store picks); else 1..1024. Start-up
};

// `cache.regional`: the regional tier, a Redis shared by the region's edge nodes. Read at start-up (not
// reloadable). Absent: no regional tier (`enabled` false).
struct RegionalCache {
  bool enabled = false;                        // true when `cache.regional.redis` is present
  // redis:
  std::string address = "127.0.0.1:6379";      // default 127.0.0.1:6379: "host:port" (IPv4, [IPv6] or a DNS name,
  std::string host = "127.0.0.1";              //   resolved off the workers) or "unix:/path"; split into these.
  std::uint16_t port = 6379;                   //   Or a list of up to 8: the first is used, the others in turn
  std::string unix_path;                       //   after a failed connect (`address` then joins them with ", ")
  struct Fallback {
    std::string host;
    std::uint16_t port = 6379;
    std::string unix_path;
  };
  std::vector<Fallback> fallbacks;             // default none: the list's 2nd.. entries
  unsigned pool = 1;                           // default 1 (1..16): connections per worker (pipelined)
  Duration timeout = std::chrono::milliseconds(50);           // default 50ms: per command (a GET waits at most this)
  Duration connect_timeout = std::chrono::milliseconds(250);  // default 250ms: resolve + connect
  std::string prefix = "virex:";               // default "virex:": every key and the invalidation channel
  std::size_t max_in_flight = 4096;            // default 4096 (1..1000000): commands waiting per connection
  std::size_t max_value_bytes = 1024 * 1024;   // default 1MiB (1KiB..512MiB): larger entries are not stored
  // breaker:
  unsigned breaker_failures = 5;               // default 5 (1..1000): consecutive failures that open it
  Duration breaker_open = std::chrono::seconds(1);  // default 1s: open this long, then one probe
  Duration tag_ttl = std::chrono::minutes(20);  // default 20m (>= the longest regional_ttl): tag → keys index
  Location location;                           // where `regional:` stood
};

struct Cache {
  EdgeCache edge;
  RegionalCache regional;
};

// Credentials of the admin API (`POST /cache/purge` on admin listeners, `Authorization: Bearer <token>`).
// Default: neither set, and every purge request is refused with 401.
struct Admin {
  std::string token;                       // default "": `token:`, at least 16 characters of [A-Za-z0-9-._~+/] and
                                           //   trailing "=" (RFC 6750 b64token)
  std::optional<std::string> token_file;   // default none: `token_file:` (exclusive with token), read by the server
                                           //   at start-up and reload; the same rules apply to its contents
  Location token_file_location;            // where `token_file:` stood
};

// ---- sharded PostgreSQL (`databases:`) -------------------------------------------------------------------------

struct DatabasePool {
  // default 8 (1..1000): connections to one endpoint (primary or replica) from this node, split over the
  // workers (worker i gets max/workers, plus one for i < max % workers; at least 1, so with fewer connections
  // than workers each worker still keeps one). Requests share them through pipelining.
  unsigned max_per_endpoint = 8;
  // default 1 (0..max_per_endpoint): connections kept open to each endpoint from this node, split like
  // max_per_endpoint (worker i gets min/workers, plus one for i < min % workers): opened at start and on reload,
  // reopened in the background when lost, never closed for being idle.
  unsigned min_per_endpoint = 1;
  Duration idle_timeout = std::chrono::minutes(10);    // default 10m: an idle connection above the minimum closes
  Duration max_lifetime = std::chrono::hours(1);       // default 1h (at most 1d): an older connection closes once idle
  Duration health_interval = std::chrono::seconds(10);  // default 10s: idle connections are probed (SELECT 1)
                                                        //   this often; also the pool maintenance period
  Duration acquire_timeout = std::chrono::milliseconds(200);  // default 200ms: waiting for a slot → 503
  Duration statement_timeout = std::chrono::seconds(5);       // default 5s: server-side and client-side deadline
  unsigned max_pipeline = 16;          // default 16 (1..1024): queries in flight on one connection
  unsigned max_waiting = 1024;         // default 1024 (1..100000): requests waiting for a slot per endpoint
  Duration connect_timeout = std::chrono::seconds(2);          // default 2s
};

struct ReplicaConfig {
  std::string dsn;                     // a libpq keyword/value string
  std::string region;                  // default: the shard's region (`{dsn: "…", region: us}` sets it)
};

struct ShardConfig {
  std::int64_t id = 0;                 // required, unique; a metrics label
  std::int64_t lo = 0, hi = 0;         // `customers: [lo, hi]` (inclusive; required)
  std::string primary;                 // required: a libpq keyword/value string ("host=… port=… dbname=… user=…")
  std::vector<ReplicaConfig> replicas;  // default none; "dsn" or {dsn, region}
  std::string region;                  // default: node.region
  Location location;
};

struct Databases {
  DatabasePool pool;
  std::vector<ShardConfig> shards;     // sorted by range; ranges cover [first.lo, last.hi] without gap or overlap
  Duration max_lag = std::chrono::seconds(5);         // default 5s: replicas further behind are skipped
  Duration lag_interval = std::chrono::seconds(1);    // default 1s: how often replica lag is measured
  std::int64_t version = 0;            // default 0: the shard map's version (reported; bump it on changes)
  bool present = false;                // `databases:` was given
};

struct Config {
  std::string source;      // the file it was loaded from
  Node node;
  Limits limits;
  std::vector<Listener> listeners;   // at least one
  std::vector<Route> routes;
  std::vector<Upstream> upstreams;   // order of the YAML mapping
  Proxy proxy;
  Observability observability;
  Cache cache;
  Admin admin;
  Databases databases;
};

}  // namespace virex::config
