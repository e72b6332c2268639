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

struct Limits {
  std::size_t max_header_bytes = 16 * 1024;   // default 16KiB: request line + header section → 431
  std::size_t max_uri_bytes = 8 * 1024;       // default 8KiB: request target → 414
  std::size_t max_body_bytes = 1024 * 1024;   // default 1MiB → 413
  Duration header_timeout = std::chrono::seconds(10);  // first byte → end of header section → 408
  Duration idle_timeout = std::chrono::seconds(60);    // keep-alive connection with no request → close
  Duration drain_timeout = std::chrono::seconds(30);   // SIGTERM → forced exit
};

struct Listener {
  std::string name;        // required, unique
  std::string host;        // from `address: "ip:port"`; IPv6 as "[::1]:8080" → host "::1"
  std::uint16_t port = 0;
  bool admin = false;      // default false: admin listeners serve /metrics, /healthz, /readyz only
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

struct Route {
  std::string name;        // default: "route<N>" (N = index); used as the metrics label
  RouteMatch match;
  Respond respond;         // the action when `upstream` is not set
  std::optional<RouteUpstream> upstream;   // `upstream:` action (exclusive with `respond:`)
  std::optional<RouteCache> cache;         // default none: not cached; only with `upstream:`
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
};

}  // namespace virex::config
