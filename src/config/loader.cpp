// Turns YAML text into a validated config::Config, collecting every error with its key path and position.
// A Walker (walker.hpp) owns the error list and the source name; each section reader gets a Field (a node, the
// dotted key path that reached it and where it stood), so every message says where and what. The `upstreams:`,
// `proxy:` and route `upstream:` readers live in upstreams.cpp; `cache:`, `admin:` and a route's `cache:` in
// cache.cpp. Main thread only; never throws.
#include <virex/config/loader.hpp>

#include "cache.hpp"
#include "databases.hpp"
#include "tls.hpp"
#include "upstreams.hpp"
#include "walker.hpp"

#include <arpa/inet.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <sstream>
#include <unordered_set>

namespace virex::config {
namespace {

using namespace detail;  // Walker, Field, Unique and the character classes (walker.hpp)

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * kKiB;
constexpr std::array<std::string_view, 7> kLogLevels = {"trace", "debug",    "info", "warn",
                                                        "error", "critical", "off"};
constexpr std::size_t kMaxMethods = 32;
const std::string kExpectedCollector = "expected \"host:port\" of an OTLP/gRPC collector (e.g. \"127.0.0.1:4317\")";

// ---- sections ----------------------------------------------------------------------------------------------

void read_node(Walker& w, const Field& field, Node& node) {
  w.map(field, {
      // Both become metric label values: [A-Za-z0-9_.-]+ (valid UTF-8, no quotes).
      {"name",
       [&](const Field& f) {  // "" (the default) means the host name
         if (f.node.IsScalar() && f.node.Scalar().empty()) node.name.clear();
         else if (auto v = w.label(f)) node.name = *v;
       }},
      {"region", [&](const Field& f) { if (auto v = w.label(f)) node.region = *v; }},
      {"workers",
       [&](const Field& f) {
         if (f.node.IsScalar() && f.node.Scalar() == "auto") {
           node.workers = 0;
         } else if (const auto n = w.integer(f, 1, 1024)) {
           node.workers = static_cast<unsigned>(*n);
         }
       }},
  });
}

void read_limits(Walker& w, const Field& field, Limits& limits) {
  std::optional<Field> header_field;  // set when a valid value was given, for the cross-check below
  std::optional<Field> uri_field;
  w.map(field, {
      {"max_header_bytes",
       [&](const Field& f) {
         if (const auto n = w.size(f, kKiB, kMiB)) {
           limits.max_header_bytes = *n;
           header_field = f;
         }
       }},
      {"max_uri_bytes",
       [&](const Field& f) {
         if (const auto n = w.size(f, 64, kMiB)) {
           limits.max_uri_bytes = *n;
           uri_field = f;
         }
       }},
      {"max_body_bytes",
       [&](const Field& f) {
         if (const auto n = w.size(f, 1, kNoLimit)) limits.max_body_bytes = *n;
       }},
      {"header_timeout", w.into(limits.header_timeout)},
      {"idle_timeout", w.into(limits.idle_timeout)},
      {"drain_timeout", w.into(limits.drain_timeout)},
      {"http2", [&](const Field& f) { read_http2_limits(w, f, limits.http2); }},
  });
  // The request target is part of the header section, so it cannot be allowed to be longer.
  if (limits.max_uri_bytes <= limits.max_header_bytes) return;
  if (uri_field) {
    w.fail(*uri_field, "must not exceed max_header_bytes (" + std::to_string(limits.max_header_bytes) + ")");
  } else if (header_field) {
    w.fail(*header_field, "must be at least max_uri_bytes (" + std::to_string(limits.max_uri_bytes) + ")");
  }
}

// "a.b.c.d:port" or "[v6]:port": literal addresses only, a host name would need DNS at start-up.
// Stores host and port in `listener`; returns the canonical form (for spotting the same address twice) or
// nullopt after reporting why it is malformed.
std::optional<std::string> read_address(Walker& w, const Field& field, Listener& listener) {
  const auto text = w.string(field);
  if (!text) return std::nullopt;
  const auto bad = [&](std::string reason) -> std::optional<std::string> {
    w.fail(field, std::move(reason));
    return std::nullopt;
  };
  std::string_view rest = *text;
  std::string host;
  int family = AF_INET;
  if (!rest.empty() && rest.front() == '[') {
    const std::size_t close = rest.find(']');
    if (close == std::string_view::npos) return bad("missing \"]\" after the IPv6 address");
    host = rest.substr(1, close - 1);
    rest.remove_prefix(close + 1);
    family = AF_INET6;
  } else {
    const std::size_t colon = rest.find(':');
    if (colon != rest.rfind(':')) return bad("an IPv6 address needs brackets, e.g. \"[::1]:8080\"");
    host = rest.substr(0, colon);
    rest.remove_prefix(colon == std::string_view::npos ? rest.size() : colon);
  }
  if (rest.empty() || rest.front() != ':') return bad("expected \"ip:port\" (e.g. \"127.0.0.1:8080\")");
  rest.remove_prefix(1);

  std::array<unsigned char, 16> bytes{};
  // inet_pton reads a C string: a NUL inside the quoted YAML value would end the check early.
  if (has_control_char(host)) return bad("must not contain control characters");
  if (inet_pton(family, host.c_str(), bytes.data()) != 1) {
    return bad(quoted(host) + " is not a literal IP address (host names are not resolved)");
  }
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), port);
  if (ec != std::errc{} || end != rest.data() + rest.size() || rest.empty() || port < 1 || port > 65535) {
    return bad("the port must be between 1 and 65535");
  }
  listener.host = host;
  listener.port = static_cast<std::uint16_t>(port);

  std::array<char, INET6_ADDRSTRLEN> canonical{};
  inet_ntop(family, bytes.data(), canonical.data(), canonical.size());
  return (family == AF_INET6 ? "[" + std::string(canonical.data()) + "]" : std::string(canonical.data())) + ":" +
         std::to_string(port);
}

void read_listeners(Walker& w, const Field& field, std::vector<Listener>& listeners) {
  Unique names("listener name");
  Unique addresses("address");
  const bool ok = w.items(field, [&](const Field& item) {
    Listener& listener = listeners.emplace_back();
    listener.location = item.at;
    bool has_name = false;
    bool has_address = false;
    std::optional<Field> protocols;
    const bool is_map = w.map(item, {
        {"name",
         [&](const Field& f) {
           has_name = true;
           if (const auto name = w.label(f)) {
             listener.name = *name;
             names.check(w, f, *name);
           }
         }},
        {"address",
         [&](const Field& f) {
           has_address = true;
           if (const auto canonical = read_address(w, f, listener)) addresses.check(w, f, *canonical);
         }},
        {"admin", w.into(listener.admin)},
        {"protocols",
         [&](const Field& f) {
           protocols = f;
           read_protocols(w, f, listener.protocols);
         }},
        {"tls", [&](const Field& f) { read_listener_tls(w, f, listener.tls.emplace()); }},
    });
    if (!is_map) return;
    finish_listener_transport(w, item, protocols, listener);
    if (!has_name) w.fail(item.at, join(item.path, "name"), "is required");
    if (!has_address) w.fail(item.at, join(item.path, "address"), "is required");
  });
  if (ok && listeners.empty()) w.fail(field, "at least one listener is required");
}

// Checks a `path:` template such as /v1/customers/{customer_id:int64}/orders: every parameter is a whole
// segment `{name}` or `{name:type}`. Returns why it is malformed, or "" when it is well-formed.
std::string template_error(std::string_view path) {
  int depth = 0;
  for (char c : path) {
    if ((c == '{' && depth++ > 0) || (c == '}' && --depth < 0)) return "unbalanced braces in path template";
  }
  if (depth != 0) return "unbalanced braces in path template";

  std::vector<std::string_view> names;
  std::size_t start = 1;  // after the leading "/"
  while (start <= path.size()) {
    const std::size_t slash = std::min(path.find('/', start), path.size());
    const std::string_view segment = path.substr(start, slash - start);
    start = slash + 1;
    if (segment.find_first_of("{}") == std::string_view::npos) continue;
    if (segment.front() != '{' || segment.back() != '}' || segment.find('{', 1) != std::string_view::npos) {
      return "a parameter must be a whole path segment";
    }
    const std::string_view inner = segment.substr(1, segment.size() - 2);
    const std::size_t colon = inner.find(':');
    const std::string_view name = inner.substr(0, colon);
    const std::string_view type = colon == std::string_view::npos ? "str" : inner.substr(colon + 1);
    if (!is_param_name(name)) return "bad parameter name " + quoted(name) + " (expected [a-z_][a-z0-9_]*)";
    if (type != "str" && type != "int64" && type != "uint64") {
      return "unknown parameter type " + quoted(type) + " (expected str, int64 or uint64)";
    }
    if (std::find(names.begin(), names.end(), name) != names.end()) {
      return "duplicate parameter name " + quoted(name);
    }
    names.push_back(name);
  }
  return "";
}

void read_path(Walker& w, const Field& field, PathKind kind, RouteMatch& match) {
  const auto path = w.string(field);
  if (!path) return;
  if (path->empty() || path->front() != '/') return w.fail(field, "must start with \"/\"");
  if (path->find_first_of(" ?#") != std::string::npos || has_control_char(*path)) {
    return w.fail(field, "must not contain spaces, control characters, \"?\" or \"#\"");
  }
  const bool braces = path->find_first_of("{}") != std::string::npos;
  if (braces && kind == PathKind::prefix) return w.fail(field, "parameters ({name}) are only allowed in path");
  if (braces) {
    if (std::string why = template_error(*path); !why.empty()) return w.fail(field, std::move(why));
    kind = PathKind::template_;
  }
  match.kind = kind;
  match.path = *path;
}

void read_host(Walker& w, const Field& field, RouteMatch& match) {
  const auto text = w.string(field);
  if (!text) return;
  std::string host = lower(*text);
  std::string_view name = host;
  if (name.substr(0, 2) == "*.") name.remove_prefix(2);
  if (host != "*" && name.find(':') != std::string_view::npos) {
    return w.fail(field, "a host is matched without its port");
  }
  if (host != "*" && !is_host_name(name)) return w.fail(field, "expected \"*\", a host name or \"*.suffix\"");
  match.host = std::move(host);
}

// `method: GET` or `method: [GET, HEAD]`; names are stored upper-case.
void read_methods(Walker& w, const Field& field, std::vector<std::string>& methods) {
  const auto add = [&](const Field& f) {
    const auto text = w.string(f);
    if (!text) return;
    // RFC 9110 §9.1: a method is a token; the ones a route can name are letters only.
    if (!all_of(*text, is_alpha)) return w.fail(f, "expected an HTTP method such as GET or POST");
    std::string method = upper(*text);
    if (std::find(methods.begin(), methods.end(), method) != methods.end()) {
      return w.fail(f, "duplicate method " + method);
    }
    if (methods.size() >= kMaxMethods) return w.fail(f, "too many methods (at most 32)");
    methods.push_back(std::move(method));
  };
  if (!field.node.IsSequence()) return add(field);
  if (field.node.size() == 0) return w.fail(field, "expected at least one method (leave method out for any)");
  w.items(field, add);
}

void read_match(Walker& w, const Field& field, RouteMatch& match) {
  std::optional<Field> path;
  std::optional<Field> prefix;
  w.map(field, {
      {"host", [&](const Field& f) { read_host(w, f, match); }},
      {"path", [&](const Field& f) { path = f; }},
      {"prefix", [&](const Field& f) { prefix = f; }},
      {"method", [&](const Field& f) { read_methods(w, f, match.methods); }},
  });
  if (path && prefix) return w.fail(*prefix, "path and prefix are mutually exclusive");
  if (path) read_path(w, *path, PathKind::exact, match);
  if (prefix) read_path(w, *prefix, PathKind::prefix, match);
}

// Headers the server computes itself (framing, connection management, its own identity), and hop-by-hop
// ones that describe a connection, not a response (RFC 9110 §7.6.1).
bool is_set_by_server(std::string_view name) {
  static constexpr std::array<std::string_view, 10> kNames = {
      "content-length", "transfer-encoding", "connection", "date",          "server",
      "keep-alive",     "upgrade",           "te",         "trailer",       "proxy-connection"};
  return std::find(kNames.begin(), kNames.end(), lower(name)) != kNames.end();
}

void read_headers(Walker& w, const Field& field, std::vector<std::pair<std::string, std::string>>& headers) {
  std::unordered_set<std::string> seen;  // header names are case-insensitive (RFC 9110 §5.1)
  w.entries(field, [&](const Field& key, const Field& value) {
    const std::string& name = key.node.Scalar();
    if (!is_token(name)) return w.fail(key, "expected a header name (an RFC 9110 token)");
    if (is_set_by_server(name)) return w.fail(key, "set by the server");
    if (!seen.insert(lower(name)).second) return w.fail(key, "duplicate header (names are case-insensitive)");
    const auto text = w.string(value);
    if (!text) return;
    if (has_control_char(*text)) return w.fail(value, "must not contain CR, LF, NUL or other control characters");
    headers.emplace_back(name, *text);
  });
}

void read_respond(Walker& w, const Field& field, Respond& respond) {
  std::optional<Field> body;
  std::optional<Field> file;
  w.map(field, {
      {"status",
       [&](const Field& f) {
         if (const auto status = w.integer(f, 200, 599)) respond.status = static_cast<unsigned>(*status);
       }},
      {"headers", [&](const Field& f) { read_headers(w, f, respond.headers); }},
      {"body",
       [&](const Field& f) {
         body = f;
         w.into(respond.body)(f);
       }},
      {"file",
       [&](const Field& f) {
         file = f;
         const auto path = w.string(f);
         if (path && path->empty()) return w.fail(f, "must not be empty");
         if (path) {
           respond.file = *path;
           respond.file_location = f.at;
         }
       }},
  });
  if (body && file) w.fail(*file, "body and file are mutually exclusive");
  // RFC 9110 §15.3.5, §15.4.5: 204 and 304 carry no content.
  if ((respond.status == 204 || respond.status == 304) && (file || (body && !respond.body.empty())))
    w.fail(file ? *file : *body, "a " + std::to_string(respond.status) + " response has no body");
}

// `upstream_references` collects the cluster names routes use; they are resolved once the whole file is read.
void read_routes(Walker& w, const Field& field, std::vector<Route>& routes, std::vector<Field>& upstream_references,
                 std::vector<Field>& query_fields) {
  Unique names("route name");
  w.items(field, [&](const Field& item) {
    Route& route = routes.emplace_back();
    route.location = item.at;
    route.name = "route" + std::to_string(routes.size() - 1);
    Field name_field{item.node, join(item.path, "name"), item.at};  // where a defaulted name is reported
    bool name_ok = true;
    bool has_respond = false;
    bool match_ok = true;  // no error inside match: rewrite.strip_prefix may be checked against its path
    RouteUpstreamKeys upstream;
    std::optional<Field> cache;
    std::optional<Field> query, invalidate;
    const bool is_map = w.map(item, {
        {"name",
         [&](const Field& f) {
           name_field = f;
           const auto name = w.label(f);
           name_ok = name.has_value();
           if (name) route.name = *name;
         }},
        {"match",
         [&](const Field& f) {
           const std::size_t errors = w.error_count();
           read_match(w, f, route.match);
           match_ok = w.error_count() == errors;
         }},
        {"respond",
         [&](const Field& f) {
           has_respond = true;
           read_respond(w, f, route.respond);
         }},
        {"upstream", [&](const Field& f) { upstream.upstream = f; }},
        {"rewrite", [&](const Field& f) { upstream.rewrite = f; }},
        {"timeouts", [&](const Field& f) { upstream.timeouts = f; }},
        {"cache", [&](const Field& f) { cache = f; }},
        {"query", [&](const Field& f) { query = f; }},
        {"invalidate", [&](const Field& f) { invalidate = f; }},
    });
    if (!is_map) return;
    if (name_ok) names.check(w, name_field, route.name);
    if (has_respond && upstream.upstream) w.fail(*upstream.upstream, "respond and upstream are mutually exclusive");
    if (query && (has_respond || upstream.upstream)) w.fail(*query, "query, respond and upstream are mutually exclusive");
    if (!has_respond && !upstream.upstream && !query) w.fail(item, "a route needs an action (respond, upstream or query)");
    read_route_upstream(w, upstream, match_ok, route, upstream_references);
    read_route_query(w, query, invalidate, match_ok, route);
    if (query) query_fields.push_back(*query);
    read_route_cache(w, cache, upstream.upstream.has_value() || query.has_value(), match_ok, route);
    // An answer from SQL carries no lifetime of its own (a private route's lives in the regional tier only).
    if (query && route.cache && !route.cache->edge_ttl && route.cache->scope != CacheScope::private_)
      w.fail(*cache, "a query route's cache needs edge_ttl: its answers carry no lifetime of their own");
  });
}

// A fraction in [0, 1] written as a decimal number ("0.01", "1", "5e-3").
std::optional<double> read_ratio(Walker& w, const Field& field) {
  double value = 0;
  const std::string text = field.node.IsScalar() ? field.node.Scalar() : "";
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  // `!(0 <= value <= 1)` also refuses nan and inf, which from_chars accepts.
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || !(value >= 0 && value <= 1)) {
    w.fail(field, "expected a number between 0 and 1 (e.g. 0.01)");
    return std::nullopt;
  }
  return value;
}

void read_tracing(Walker& w, const Field& field, Tracing& tracing) {
  w.map(field, {
      {"otlp_endpoint",
       [&](const Field& v) {
         const auto text = w.string(v);
         if (!text) return;
         if (text->empty()) return tracing.otlp_endpoint.clear();  // export off
         std::string canonical;
         if (std::string why = parse_endpoint(*text, canonical); !why.empty()) {
           // The endpoint parser's own "expected …" names upstream examples; its other reasons fit as they are.
           if (why.starts_with("expected")) why = kExpectedCollector;
           return w.fail(v, std::move(why));
         }
         tracing.otlp_endpoint = std::move(canonical);
       }},
      {"sample_ratio",
       [&](const Field& v) {
         if (const auto ratio = read_ratio(w, v)) tracing.sample_ratio = *ratio;
       }},
      {"slow_threshold", w.into(tracing.slow_threshold)},
      {"service_name",
       [&](const Field& v) {
         const auto name = w.string(v);
         if (!name) return;
         if (name->empty()) return w.fail(v, "must not be empty");
         if (name->size() > 255) return w.fail(v, "must be at most 255 bytes");
         if (has_control_char(*name)) return w.fail(v, "must not contain control characters");
         tracing.service_name = *name;
       }},
      {"response_header",
       [&](const Field& v) {
         const auto name = w.string(v);
         if (!name) return;
         if (!name->empty() && !is_token(*name)) return w.fail(v, "expected a header name (an RFC 9110 token)");
         tracing.response_header = *name;
       }},
  });
}

void read_observability(Walker& w, const Field& field, Observability& observability) {
  AccessLog& log = observability.access_log;
  w.map(field, {
      {"access_log",
       [&](const Field& f) {
         w.map(f, {
             {"path", w.into(log.path)},
             {"format",
              [&](const Field& v) {
                constexpr std::array<std::string_view, 2> kFormats = {"combined", "json"};
                if (const auto i = w.choice(v, kFormats)) {
                  log.format = *i == 0 ? AccessLogFormat::combined : AccessLogFormat::json;
                }
              }},
         });
       }},
      {"log_level",
       [&](const Field& f) {
         if (const auto i = w.choice(f, kLogLevels)) observability.log_level = kLogLevels[*i];
       }},
      {"tracing", [&](const Field& f) { read_tracing(w, f, observability.tracing); }},
  });
}

// Remembers where each document of a stream starts; all other parser events are ignored.
class DocumentStarts final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { last = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    if (!alias) alias = mark;
  }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  YAML::Mark last = YAML::Mark::null_mark();
  std::optional<YAML::Mark> alias;  // the first alias (*name) seen
};

// What the event stream says before the document is walked: where a second document starts, and where the
// first alias is. Parses at most two documents: YAML::LoadAll would loop forever, allocating, on a stray ","
// at the top level (yaml-cpp 0.7, jbeder/yaml-cpp#1040). Aliases are refused: yaml-cpp shares an aliased
// node, but every use would be copied into Config, so a 1 MB file could expand to gigabytes.
struct StreamShape {
  std::optional<YAML::Mark> second_document;
  std::optional<YAML::Mark> alias;
};

StreamShape stream_shape(const std::string& yaml) {
  std::istringstream in(yaml);
  YAML::Parser parser(in);
  DocumentStarts starts;
  StreamShape shape;
  if (!parser.HandleNextDocument(starts)) return shape;
  shape.alias = starts.alias;
  if (parser.HandleNextDocument(starts)) shape.second_document = starts.last;
  return shape;
}

void read_config(Walker& w, const Field& root, Config& config) {
  if (root.node.IsNull()) return w.fail(root, "the document is empty (at least one listener is required)");
  if (!root.node.IsMap()) return w.fail(root, "expected a mapping at the top level");
  bool has_listeners = false;
  std::vector<Field> upstream_references;  // route `upstream:` values, resolved after the whole file
  std::vector<Field> query_fields;         // route `query:` blocks: they need `databases:`
  w.map(root, {
      {"node", [&](const Field& f) { read_node(w, f, config.node); }},
      {"limits", [&](const Field& f) { read_limits(w, f, config.limits); }},
      {"listeners",
       [&](const Field& f) {
         has_listeners = true;
         read_listeners(w, f, config.listeners);
       }},
      {"routes", [&](const Field& f) { read_routes(w, f, config.routes, upstream_references, query_fields); }},
      {"upstreams", [&](const Field& f) { read_upstreams(w, f, config.upstreams); }},
      {"proxy", [&](const Field& f) { read_proxy(w, f, config.proxy); }},
      {"observability", [&](const Field& f) { read_observability(w, f, config.observability); }},
      {"cache", [&](const Field& f) { read_cache(w, f, config.cache); }},
      {"admin", [&](const Field& f) { read_admin(w, f, config.admin); }},
      {"databases", [&](const Field& f) { read_databases(w, f, config.databases); }},
  });
  check_query_routes(w, config, query_fields);
  for (ShardConfig& s : config.databases.shards) {
    if (s.region.empty()) s.region = config.node.region;
    for (ReplicaConfig& r : s.replicas)
      if (r.region.empty()) r.region = s.region;
  }
  if (!has_listeners) w.fail(root.at, "listeners", "at least one listener is required");
  resolve_route_upstreams(w, upstream_references, config.upstreams);  // upstreams may follow the routes
  check_regional_routes(w, config);                                   // cache.regional may follow the routes
}

}  // namespace

LoadResult load(std::string_view yaml, std::string source) {
  LoadResult result;
  Walker w(source, result.errors);
  try {
    const std::string text(yaml);
    const StreamShape shape = stream_shape(text);
    const YAML::Node root = YAML::Load(text);
    if (shape.second_document) {
      w.fail(w.locate(*shape.second_document, w.start()), "", "expected a single YAML document (another one starts here)");
    } else if (shape.alias) {
      w.fail(w.locate(*shape.alias, w.start()), "", "YAML aliases (*name) are not supported: write the value out");
    } else {
      Config config;
      config.source = source;
      read_config(w, Field{root, "", w.locate(root, w.start())}, config);
      if (result.errors.empty()) result.config = std::move(config);
    }
  } catch (const YAML::Exception& e) {
    w.fail(w.locate(e.mark, w.start()), "", e.msg);
  } catch (const std::exception& e) {  // bad_alloc and the like: still a list of errors, never a throw
    w.fail(w.start(), "", e.what());
  }
  return result;
}

}  // namespace virex::config
