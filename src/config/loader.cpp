// Turns YAML text into a validated config::Config, collecting every error with its key path and position.
// A Walker owns the error list and the source name; each section reader gets a Field (a node, the dotted key
// path that reached it and where it stood), so every message says where and what. Main thread only; never throws.
#include <virex/config/loader.hpp>

#include <arpa/inet.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <sstream>
#include <unordered_set>

namespace virex::config {
namespace {

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * kKiB;
constexpr std::size_t kNoLimit = std::numeric_limits<std::size_t>::max();
constexpr std::array<std::string_view, 7> kLogLevels = {"trace", "debug",    "info", "warn",
                                                        "error", "critical", "off"};

// ---- character classes -------------------------------------------------------------------------------------

bool is_lower_alpha(char c) { return c >= 'a' && c <= 'z'; }
bool is_alpha(char c) { return is_lower_alpha(c) || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

template <typename Pred>
bool all_of(std::string_view text, Pred pred) {
  return !text.empty() && std::all_of(text.begin(), text.end(), pred);
}

// RFC 9110 §5.6.2: token = 1*tchar.
bool is_token(std::string_view text) {
  return all_of(text, [](char c) {
    return is_alpha(c) || is_digit(c) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

constexpr Duration kMaxTimeout = std::chrono::hours(24);
constexpr std::size_t kMaxMethods = 32;

// Names of listeners and routes end up as metric labels and in logs: keep them to [A-Za-z0-9_.-]+.
bool is_label(std::string_view text) {
  return all_of(text, [](char c) { return is_alpha(c) || is_digit(c) || c == '_' || c == '.' || c == '-'; });
}

// Path template parameter names: [a-z_][a-z0-9_]*.
bool is_param_name(std::string_view text) {
  return !text.empty() && !is_digit(text.front()) &&
         all_of(text, [](char c) { return is_lower_alpha(c) || is_digit(c) || c == '_'; });
}

// A lower-cased DNS name or IPv4 literal: dot-separated labels of [a-z0-9_-], 1..63 bytes each (RFC 1035 §2.3.4).
bool is_host_name(std::string_view text) {
  if (text.empty() || text.size() > 253) return false;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = text.find('.', start);
    const std::string_view label = text.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (label.size() > 63 || !all_of(label, [](char c) {
          return is_lower_alpha(c) || is_digit(c) || c == '-' || c == '_';
        })) {
      return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// RFC 9110 §5.5: a field value is visible characters, spaces and tabs; CR, LF and NUL would split or cut a header.
bool has_control_char(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return (u < 0x20 && c != '\t') || u == 0x7f;
  });
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (is_lower_alpha(c)) c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

std::string quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

std::string join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

// ---- walking the YAML tree ---------------------------------------------------------------------------------

// A YAML node, the dotted key path that reached it and where it stood.
struct Field {
  Field(YAML::Node node_, std::string path_, Location at_)
      : node(std::move(node_)), path(std::move(path_)), at(std::move(at_)) {}
  Field(const Field&) = default;
  // YAML::Node::operator= writes through into the document it refers to; reset() only rebinds the handle.
  Field& operator=(const Field& other) {
    node.reset(other.node);
    path = other.path;
    at = other.at;
    return *this;
  }

  YAML::Node node;
  std::string path;
  Location at;
};

using Reader = std::function<void(const Field&)>;
using KeyReader = std::pair<std::string_view, Reader>;

// Walks YAML nodes for the section readers below: reports type errors, unknown and repeated keys, and keeps
// every error (it never stops at the first).
class Walker {
 public:
  Walker(std::string source, std::vector<Error>& errors) : source_(std::move(source)), errors_(errors) {}

  Location start() const { return {source_, 1, 1}; }

  // Where `node` stood; `fallback` when yaml-cpp has no mark or the node is null (a null value is marked at the
  // next token, often on the next line, so its key is the better place to point at).
  Location locate(const YAML::Node& node, const Location& fallback) const {
    return node.IsNull() ? fallback : locate(node.Mark(), fallback);
  }
  Location locate(const YAML::Mark& mark, const Location& fallback) const {
    if (mark.is_null()) return fallback;
    return {source_, mark.line + 1, mark.column + 1};  // yaml-cpp marks are 0-based
  }

  void fail(Location at, std::string key, std::string reason) {
    errors_.push_back({std::move(at), std::move(key), std::move(reason)});
  }
  void fail(const Field& field, std::string reason) { fail(field.at, field.path, std::move(reason)); }

  // Calls `each(key, value)` for every entry of the mapping `field`; keys that are not strings or repeat are
  // errors. A null value is an empty mapping. Returns false (after an error) when `field` is no mapping.
  template <typename Fn>
  bool entries(const Field& field, Fn each) {
    if (!has_shape(field, field.node.IsMap(), "expected a mapping")) return false;
    std::unordered_set<std::string> seen;  // a set: a hostile file with 100k keys must not cost O(n²)
    for (auto it = field.node.begin(); it != field.node.end(); ++it) {
      Field key{it->first, field.path, locate(it->first, field.at)};
      if (!key.node.IsScalar()) {
        fail(key, "expected a string key");
        continue;
      }
      key.path = join(field.path, key.node.Scalar());
      if (!seen.insert(key.node.Scalar()).second) {
        fail(key, "duplicate key");
        continue;
      }
      const Field value{it->second, key.path, locate(it->second, key.at)};
      each(key, value);
    }
    return true;
  }

  // Reads the mapping `field` with one reader per known key; any other key is an error.
  bool map(const Field& field, std::initializer_list<KeyReader> readers) {
    return entries(field, [&](const Field& key, const Field& value) {
      const auto reader = std::find_if(readers.begin(), readers.end(),
                                       [&](const KeyReader& r) { return r.first == key.node.Scalar(); });
      if (reader == readers.end()) return fail(key, "unknown key");
      reader->second(value);
    });
  }

  // Calls `each(item)` for every item of the sequence `field`, named `path[i]`. A null value is empty.
  template <typename Fn>
  bool items(const Field& field, Fn each) {
    if (!has_shape(field, field.node.IsSequence(), "expected a sequence")) return false;
    std::size_t index = 0;
    for (auto it = field.node.begin(); it != field.node.end(); ++it, ++index) {
      const std::string path = field.path + "[" + std::to_string(index) + "]";
      each(Field{*it, path, locate(*it, field.at)});
    }
    return true;
  }

  std::optional<std::string> string(const Field& field) {
    if (!field.node.IsScalar()) {
      fail(field, "expected a string");
      return std::nullopt;
    }
    return field.node.Scalar();
  }

  // A name used as a label: [A-Za-z0-9_.-]+.
  std::optional<std::string> label(const Field& field) {
    auto text = string(field);
    if (text && !is_label(*text)) {
      fail(field, "must match [A-Za-z0-9_.-]+");
      return std::nullopt;
    }
    return text;
  }

  std::optional<std::int64_t> integer(const Field& field, std::int64_t min, std::int64_t max) {
    std::int64_t value = 0;
    if (!field.node.IsScalar() || !parse_whole(field.node.Scalar(), value)) {
      fail(field, "expected an integer");
      return std::nullopt;
    }
    if (value < min || value > max) {
      fail(field, "must be between " + std::to_string(min) + " and " + std::to_string(max));
      return std::nullopt;
    }
    return value;
  }

  std::optional<bool> boolean(const Field& field) {
    const std::string text = field.node.IsScalar() ? lower(field.node.Scalar()) : "";
    if (text == "true") return true;
    if (text == "false") return false;
    fail(field, "expected a boolean (true or false)");
    return std::nullopt;
  }

  // One of `choices`; returns its index.
  template <std::size_t N>
  std::optional<std::size_t> choice(const Field& field, const std::array<std::string_view, N>& choices) {
    if (field.node.IsScalar()) {
      const auto it = std::find(choices.begin(), choices.end(), field.node.Scalar());
      if (it != choices.end()) return static_cast<std::size_t>(it - choices.begin());
    }
    std::string reason = "expected one of";
    for (std::string_view c : choices) reason += (c == choices.front() ? ": " : ", ") + std::string(c);
    fail(field, std::move(reason));
    return std::nullopt;
  }

  // A duration greater than zero.
  std::optional<Duration> timeout(const Field& field) {
    const auto value = field.node.IsScalar() ? parse_duration(field.node.Scalar()) : std::nullopt;
    if (!value) {
      fail(field, "expected a duration such as 250ms, 5s, 10m, 1h or 1d");
      return std::nullopt;
    }
    if (*value <= Duration::zero()) {
      fail(field, "must be greater than 0");
      return std::nullopt;
    }
    if (*value > kMaxTimeout) {  // deadlines are steady_clock time points: keep far from overflow
      fail(field, "must be at most 1d");
      return std::nullopt;
    }
    return value;
  }

  // A size in bytes within [min, max]; plain integers are bytes.
  std::optional<std::size_t> size(const Field& field, std::size_t min, std::size_t max) {
    const auto value = field.node.IsScalar() ? parse_size(field.node.Scalar()) : std::nullopt;
    if (!value) {
      fail(field, "expected a size such as 512, 16KiB, 1MiB or 1MB");
      return std::nullopt;
    }
    if (*value < min || *value > max) {
      fail(field, max == kNoLimit ? "must be greater than 0"
                                  : "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                                        " bytes");
      return std::nullopt;
    }
    return value;
  }

  // Readers that store a valid value in `out` and leave the default otherwise.
  Reader into(std::string& out) {
    return [this, &out](const Field& f) { assign(out, string(f)); };
  }
  Reader into(bool& out) {
    return [this, &out](const Field& f) { assign(out, boolean(f)); };
  }
  Reader into(Duration& out) {
    return [this, &out](const Field& f) { assign(out, timeout(f)); };
  }

 private:
  // True when `field` is the collection a reader wants or null (iterating a null node visits nothing);
  // otherwise reports `expected`.
  bool has_shape(const Field& field, bool wanted, const char* expected) {
    if (wanted || field.node.IsNull()) return true;
    fail(field, expected);
    return false;
  }

  template <typename T, typename U>
  static void assign(T& out, const std::optional<U>& value) {
    if (value) out = *value;
  }

  static bool parse_whole(std::string_view text, std::int64_t& value) {
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    return ec == std::errc{} && end == text.data() + text.size() && !text.empty();
  }

  std::string source_;
  std::vector<Error>& errors_;
};

// Remembers the values already taken in one list (listener names, addresses, route names) and reports a repeat
// together with the line of the first one.
class Unique {
 public:
  explicit Unique(std::string what) : what_(std::move(what)) {}

  void check(Walker& w, const Field& field, const std::string& value) {
    const auto [first, inserted] = seen_.emplace(value, field.at.line);
    if (!inserted) {
      w.fail(field, "duplicate " + what_ + " " + quoted(value) + " (first at line " +
                        std::to_string(first->second) + ")");
    }
  }

 private:
  std::string what_;
  std::map<std::string, int> seen_;
};

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
    });
    if (!is_map) return;
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

void read_routes(Walker& w, const Field& field, std::vector<Route>& routes) {
  Unique names("route name");
  w.items(field, [&](const Field& item) {
    Route& route = routes.emplace_back();
    route.location = item.at;
    route.name = "route" + std::to_string(routes.size() - 1);
    Field name_field{item.node, join(item.path, "name"), item.at};  // where a defaulted name is reported
    bool name_ok = true;
    bool has_respond = false;
    const bool is_map = w.map(item, {
        {"name",
         [&](const Field& f) {
           name_field = f;
           const auto name = w.label(f);
           name_ok = name.has_value();
           if (name) route.name = *name;
         }},
        {"match", [&](const Field& f) { read_match(w, f, route.match); }},
        {"respond",
         [&](const Field& f) {
           has_respond = true;
           read_respond(w, f, route.respond);
         }},
    });
    if (!is_map) return;
    if (name_ok) names.check(w, name_field, route.name);
    if (!has_respond) w.fail(item, "a route needs an action (respond)");
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
      {"tracing",
       [&](const Field& f) {
         w.map(f, {
             {"response_header",
              [&](const Field& v) {
                const auto name = w.string(v);
                if (!name) return;
                if (!name->empty() && !is_token(*name)) return w.fail(v, "expected a header name (an RFC 9110 token)");
                observability.tracing.response_header = *name;
              }},
         });
       }},
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
  w.map(root, {
      {"node", [&](const Field& f) { read_node(w, f, config.node); }},
      {"limits", [&](const Field& f) { read_limits(w, f, config.limits); }},
      {"listeners",
       [&](const Field& f) {
         has_listeners = true;
         read_listeners(w, f, config.listeners);
       }},
      {"routes", [&](const Field& f) { read_routes(w, f, config.routes); }},
      {"observability", [&](const Field& f) { read_observability(w, f, config.observability); }},
  });
  if (!has_listeners) w.fail(root.at, "listeners", "at least one listener is required");
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
