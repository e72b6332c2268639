// Typed, validated configuration of the daemon: what YAML becomes after config::load().
// Plain value structs, immutable once loaded; every field documents its default where it is declared.
// Built on the main (control) thread; shared read-only with workers inside a snapshot.
#pragma once

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

struct Route {
  std::string name;        // default: "route<N>" (N = index); used as the metrics label
  RouteMatch match;
  Respond respond;         // the route action; later issues add upstream/query as alternatives
  Location location;
};

enum class AccessLogFormat { combined, json };

struct AccessLog {
  std::string path;                               // default "": off; "-" = stdout
  AccessLogFormat format = AccessLogFormat::combined;
};

struct Tracing {
  // default "": none. A response header (e.g. X-Trace-Id) carrying the request's W3C trace id — the one of an
  // incoming valid `traceparent`, else a new random one; the same id is in the access log line.
  std::string response_header;
};

struct Observability {
  AccessLog access_log;
  std::string log_level = "info";   // default info: trace|debug|info|warn|error|critical|off
  Tracing tracing;
};

struct Config {
  std::string source;      // the file it was loaded from
  Node node;
  Limits limits;
  std::vector<Listener> listeners;   // at least one
  std::vector<Route> routes;
  Observability observability;
};

}  // namespace virex::config
