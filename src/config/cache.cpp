// Readers for `cache:`, `admin:` and a route's `cache:` block (declared in cache.hpp). Like the other sections
// they report every problem through the Walker as file:line:col: key: reason and leave the default in place of a
// bad value. Main thread only; nothing throws on bad input.
#include "cache.hpp"

#include <algorithm>
#include <array>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace virex::config {

std::string admin_token_error(std::string_view token) {
  // RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
  const std::size_t body = token.find_last_not_of('=') + 1;
  const bool ok = body > 0 && std::all_of(token.begin(), token.begin() + static_cast<std::ptrdiff_t>(body), [](char c) {
    return detail::is_alpha(c) || detail::is_digit(c) || std::string_view("-._~+/").find(c) != std::string_view::npos;
  });
  if (!ok) return "expected a bearer token: letters, digits and - . _ ~ + /, then optional \"=\" padding";
  if (token.size() < 16) return "must be at least 16 characters";
  return "";
}

namespace detail {
namespace {

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * kKiB;
constexpr std::size_t kMaxListed = 32;   // key headers, query params, cookies, tags
constexpr std::size_t kMaxTagBytes = 128;
constexpr std::array<std::string_view, 2> kScopes = {"public", "private"};

// A duration in whole seconds within [min, max]; `range` names the bounds in the message.
std::optional<Duration> whole_seconds(Walker& w, const Field& f, Duration min, Duration max, std::string_view range) {
  const auto value = f.node.IsScalar() ? parse_duration(f.node.Scalar()) : std::nullopt;
  if (!value) {
    w.fail(f, "expected a duration such as 10s, 5m or 1h");
    return std::nullopt;
  }
  if (value->count() % 1000 != 0) {
    w.fail(f, "must be a whole number of seconds");
    return std::nullopt;
  }
  if (*value < min || *value > max) {
    w.fail(f, "must be between " + std::string(range));
    return std::nullopt;
  }
  return value;
}

Reader seconds_into(Walker& w, Duration& out, Duration min, Duration max, std::string_view range) {
  return [&w, &out, min, max, range](const Field& f) {
    if (const auto d = whole_seconds(w, f, min, max, range)) out = *d;
  };
}

// A list of names with a per-item check; `fold` compares (and stores) them lower-cased.
void read_names(Walker& w, const Field& field, std::vector<std::string>& out, bool fold,
                const std::function<std::string(const std::string&)>& check) {
  std::unordered_set<std::string> seen;
  w.items(field, [&](const Field& item) {
    const auto text = w.string(item);
    if (!text) return;
    if (std::string why = check(*text); !why.empty()) return w.fail(item, std::move(why));
    std::string name = fold ? lower(*text) : *text;
    if (!seen.insert(name).second) {
      return w.fail(item, "duplicate " + quoted(*text) + (fold ? " (names are case-insensitive)" : ""));
    }
    if (out.size() >= kMaxListed) return w.fail(item, "too many entries (at most 32)");
    out.push_back(std::move(name));
  });
}

std::string header_name_error(const std::string& name) {
  if (!is_token(name)) return "expected a header name (an RFC 9110 token)";
  if (lower(name) == "host") return "the host is always part of the key";
  if (lower(name) == "cookie") return "list cookies under key.cookies";
  return "";
}

std::string query_name_error(const std::string& name) {
  if (name.empty()) return "must not be empty";
  if (name.find_first_of("&=#? ") != std::string::npos || has_control_char(name)) {
    return "a query parameter name has no \"&\", \"=\", \"#\", \"?\", spaces or control characters";
  }
  return "";
}

std::string cookie_name_error(const std::string& name) {
  return is_token(name) ? "" : "expected a cookie name (an RFC 9110 token)";
}

void read_key(Walker& w, const Field& field, RouteCacheKey& key) {
  std::optional<Field> query;
  std::optional<Field> ignore;
  w.map(field, {
      {"headers", [&](const Field& f) { read_names(w, f, key.headers, true, header_name_error); }},
      {"query",
       [&](const Field& f) {
         query = f;
         read_names(w, f, key.query, false, query_name_error);
       }},
      {"ignore_query",
       [&](const Field& f) {
         if (const auto v = w.boolean(f)) {
           key.ignore_query = *v;
           ignore = f;
         }
       }},
      {"cookies", [&](const Field& f) { read_names(w, f, key.cookies, false, cookie_name_error); }},
  });
  if (ignore && key.ignore_query && !key.query.empty()) {
    w.fail(*ignore, "ignore_query: true leaves out the query that key.query selects from");
  }
}

// The capture names of a path template (`{name}` or `{name:type}` segments); the template is already valid.
std::vector<std::string> captures(const RouteMatch& match) {
  std::vector<std::string> names;
  if (match.kind != PathKind::template_) return names;
  std::string_view path = match.path;
  while (true) {
    const std::size_t open = path.find('{');
    if (open == std::string_view::npos) break;
    const std::size_t close = path.find('}', open);
    if (close == std::string_view::npos) break;
    const std::string_view inner = path.substr(open + 1, close - open - 1);
    names.emplace_back(inner.substr(0, inner.find(':')));
    path.remove_prefix(close + 1);
  }
  return names;
}

// Why `tag` is not a valid template for a route with these captures ("" when it is). `check_captures`: the
// route's match is valid, so references can be resolved.
std::string tag_error(std::string_view tag, const std::vector<std::string>& names, bool check_captures,
                      const std::string& path) {
  if (tag.empty()) return "must not be empty";
  if (tag.size() > kMaxTagBytes) return "must be at most 128 bytes";
  for (std::size_t i = 0; i < tag.size(); ++i) {
    const auto u = static_cast<unsigned char>(tag[i]);
    if (u <= 0x20 || u >= 0x7f || tag[i] == ',' || tag[i] == '"' || tag[i] == '\\') {
      return "a tag is visible ASCII without spaces, commas, quotes or backslashes";
    }
    if (tag[i] == '}') return "unbalanced braces in tag template";
    if (tag[i] != '{') continue;
    const std::size_t close = tag.find('}', i);
    const std::size_t reopen = tag.find('{', i + 1);
    if (close == std::string_view::npos || reopen < close) return "unbalanced braces in tag template";
    const std::string name(tag.substr(i + 1, close - i - 1));
    if (!is_param_name(name)) return "bad capture name " + quoted(name) + " (expected [a-z_][a-z0-9_]*)";
    if (check_captures && std::find(names.begin(), names.end(), name) == names.end()) {
      return "{" + name + "} is not a capture of the route's path " + path;
    }
    i = close;
  }
  return "";
}

void read_tags(Walker& w, const Field& field, const Route& route, bool match_ok, std::vector<std::string>& tags) {
  const std::vector<std::string> names = captures(route.match);
  std::unordered_set<std::string> seen;
  w.items(field, [&](const Field& item) {
    const auto text = w.string(item);
    if (!text) return;
    if (std::string why = tag_error(*text, names, match_ok, route.match.path); !why.empty()) {
      return w.fail(item, std::move(why));
    }
    if (!seen.insert(*text).second) return w.fail(item, "duplicate tag " + quoted(*text));
    if (tags.size() >= kMaxListed) return w.fail(item, "too many tags (at most 32)");
    tags.push_back(*text);
  });
}

// One "host:port" (IPv4, [IPv6] or a DNS name) or "unix:/absolute/path" into `out`; false after reporting why not.
bool read_one_redis_address(Walker& w, const Field& f, RegionalCache::Fallback& out, std::string& text_out) {
  const auto text = w.string(f);
  if (!text) return false;
  if (text->starts_with("unix:")) {
    const std::string path = text->substr(5);
    if (path.empty() || path[0] != '/') return w.fail(f, "expected unix:/absolute/path"), false;
    if (path.size() > 107 || has_control_char(path))
      return w.fail(f, "a unix socket path is at most 107 bytes, no control characters"), false;
    out = {"", 0, path};
    text_out = *text;
    return true;
  }
  const std::size_t colon = text->rfind(':');
  const std::string bad = "expected host:port (an IPv4 address, [IPv6 address] or DNS name) or unix:/path";
  if (colon == std::string::npos || colon == 0) return w.fail(f, bad), false;
  std::string host = text->substr(0, colon);
  const std::string port = text->substr(colon + 1);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return w.fail(f, bad), false;
    host = host.substr(1, host.size() - 2);
    if (host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos) return w.fail(f, bad), false;
  } else if (host.find(':') != std::string::npos || !is_host_name(host)) {
    return w.fail(f, bad), false;
  }
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), is_digit)) return w.fail(f, bad), false;
  const long n = std::stol(port);
  if (n < 1 || n > 65535) return w.fail(f, "the port must be between 1 and 65535"), false;
  out = {host, static_cast<std::uint16_t>(n), ""};
  text_out = *text;
  return true;
}

// `address:` a string, or a list of 1..8 strings (the first used, the others after a failed connect).
void read_redis_address(Walker& w, const Field& f, RegionalCache& r) {
  std::vector<RegionalCache::Fallback> all;
  std::vector<std::string> texts;
  auto one = [&](const Field& item) {
    RegionalCache::Fallback a;
    std::string text;
    if (!read_one_redis_address(w, item, a, text)) return;
    if (all.size() >= 8) return w.fail(item, "at most 8 addresses");
    all.push_back(std::move(a));
    texts.push_back(std::move(text));
  };
  if (f.node.IsSequence()) {
    if (f.node.size() == 0) return w.fail(f, "expected at least one address");
    w.items(f, one);
  } else {
    one(f);
  }
  if (all.empty()) return;
  r.host = all[0].host;
  r.port = all[0].port;
  r.unix_path = all[0].unix_path;
  r.fallbacks.assign(all.begin() + 1, all.end());
  r.address.clear();
  for (const auto& t : texts) r.address.append(r.address.empty() ? "" : ", ").append(t);
}

void read_regional(Walker& w, const Field& field, RegionalCache& r) {
  r.location = field.at;
  bool has_redis = false;
  w.map(field, {
      {"redis",
       [&](const Field& f) {
         has_redis = true;
         w.map(f, {
             {"address", [&](const Field& v) { read_redis_address(w, v, r); }},
             {"pool",
              [&](const Field& v) {
                if (const auto n = w.integer(v, 1, 16)) r.pool = static_cast<unsigned>(*n);
              }},
             {"timeout", w.into(r.timeout)},
             {"connect_timeout", w.into(r.connect_timeout)},
             {"prefix",
              [&](const Field& v) {
                const auto text = w.string(v);
                if (!text) return;
                if (text->size() > 64 || has_control_char(*text) || text->find(' ') != std::string::npos)
                  return w.fail(v, "at most 64 characters, no spaces or control characters");
                r.prefix = *text;
              }},
             {"max_in_flight",
              [&](const Field& v) {
                if (const auto n = w.integer(v, 1, 1000000)) r.max_in_flight = static_cast<std::size_t>(*n);
              }},
             {"max_value_bytes",
              [&](const Field& v) {
                if (const auto n = w.size(v, kKiB, 512 * kMiB)) r.max_value_bytes = *n;
              }},
         });
       }},
      {"breaker",
       [&](const Field& f) {
         w.map(f, {
             {"failures",
              [&](const Field& v) {
                if (const auto n = w.integer(v, 1, 1000)) r.breaker_failures = static_cast<unsigned>(*n);
              }},
             {"open_for", w.into(r.breaker_open)},
         });
       }},
      {"tag_ttl", seconds_into(w, r.tag_ttl, std::chrono::minutes(1), std::chrono::hours(24), "1m and 1d")},
  });
  if (!has_redis) return w.fail(field, "needs redis: {address: ...}");
  r.enabled = true;
}

}  // namespace

void check_regional_routes(Walker& w, const Config& config) {
  for (std::size_t i = 0; i < config.routes.size(); ++i) {
    const auto& c = config.routes[i].cache;
    if (!c || !c->regional_ttl || config.cache.regional.enabled) continue;
    w.fail(c->regional_ttl_location, "routes[" + std::to_string(i) + "].cache.regional_ttl",
           "needs cache.regional.redis (no regional tier is configured)");
  }
}

void read_cache(Walker& w, const Field& field, Cache& cache) {
  w.map(field, {
      {"regional", [&](const Field& f) { read_regional(w, f, cache.regional); }},
      {"edge",
       [&](const Field& f) {
         EdgeCache& edge = cache.edge;
         std::optional<Field> max_bytes;
         std::optional<Field> max_object;
         w.map(f, {
             {"max_bytes",
              [&](const Field& v) {
                const auto n = w.size(v, 1, kNoLimit);
                if (n && *n < kMiB) return w.fail(v, "must be at least 1MiB");
                if (n) {
                  edge.max_bytes = *n;
                  max_bytes = v;
                }
              }},
             {"max_object_bytes",
              [&](const Field& v) {
                const auto n = w.size(v, 1, kNoLimit);
                if (n && *n < kKiB) return w.fail(v, "must be at least 1KiB");
                if (n) {
                  edge.max_object_bytes = *n;
                  max_object = v;
                }
              }},
             {"shards",
              [&](const Field& v) {
                if (v.node.IsScalar() && v.node.Scalar() == "auto") edge.shards = 0;
                else if (const auto n = w.integer(v, 0, 1024)) edge.shards = static_cast<unsigned>(*n);
              }},
         });
         if (edge.max_object_bytes <= edge.max_bytes) return;
         if (max_object) {
           w.fail(*max_object, "must not exceed max_bytes (" + std::to_string(edge.max_bytes) + ")");
         } else if (max_bytes) {
           w.fail(*max_bytes, "must be at least max_object_bytes (" + std::to_string(edge.max_object_bytes) + ")");
         }
       }},
  });
}

void read_admin(Walker& w, const Field& field, Admin& admin) {
  std::optional<Field> token;
  std::optional<Field> token_file;
  w.map(field, {
      {"token",
       [&](const Field& f) {
         token = f;
         const auto text = w.string(f);
         if (!text) return;
         if (std::string why = admin_token_error(*text); !why.empty()) return w.fail(f, std::move(why));
         admin.token = *text;
       }},
      {"token_file",
       [&](const Field& f) {
         token_file = f;
         const auto path = w.string(f);
         if (!path) return;
         if (path->empty()) return w.fail(f, "must not be empty");
         if (has_control_char(*path)) return w.fail(f, "must not contain control characters");
         admin.token_file = *path;
         admin.token_file_location = f.at;
       }},
  });
  if (token && token_file) w.fail(*token_file, "token and token_file are mutually exclusive");
}

void read_route_cache(Walker& w, const std::optional<Field>& field, bool has_upstream, bool match_ok, Route& route) {
  if (!field) return;
  if (!has_upstream) return w.fail(*field, "only allowed with upstream or query");
  RouteCache& cache = route.cache.emplace();
  cache.location = field->at;
  std::optional<Field> regional_ttl;
  std::optional<Field> identity;
  w.map(*field, {
      {"edge_ttl",
       [&](const Field& f) {
         if (const auto d = whole_seconds(w, f, std::chrono::seconds(1), std::chrono::hours(1), "1s and 1h")) {
           cache.edge_ttl = *d;
         }
       }},
      {"key", [&](const Field& f) { read_key(w, f, cache.key); }},
      {"tags", [&](const Field& f) { read_tags(w, f, route, match_ok, cache.tags); }},
      {"scope",
       [&](const Field& f) {
         if (const auto i = w.choice(f, kScopes)) cache.scope = *i == 0 ? CacheScope::public_ : CacheScope::private_;
       }},
      {"store_set_cookie", w.into(cache.store_set_cookie)},
      {"negative_ttl", seconds_into(w, cache.negative_ttl, Duration::zero(), std::chrono::hours(1), "0s and 1h")},
      {"stale_while_revalidate",
       seconds_into(w, cache.stale_while_revalidate, Duration::zero(), std::chrono::hours(24), "0s and 1d")},
      {"stale_if_error", seconds_into(w, cache.stale_if_error, Duration::zero(), std::chrono::hours(24), "0s and 1d")},
      {"regional_ttl", [&](const Field& f) { regional_ttl = f; }},
      {"regional_ttl_override", [&](const Field& f) {
         if (const auto v = w.boolean(f)) cache.regional_ttl_override = *v;
       }},
      {"identity",
       [&](const Field& f) {
         identity = f;
         bool one = false;
         const std::size_t errors = w.error_count();
         w.map(f, {
             {"header",
              [&](const Field& v) {
                const auto text = w.string(v);
                if (!text) return;
                if (!is_token(*text)) return w.fail(v, "expected a header name (an RFC 9110 token)");
                cache.identity_from = RouteCache::IdentityFrom::header;
                cache.identity_name = lower(*text);
                if (one) w.fail(v, "header and cookie are mutually exclusive");
                one = true;
              }},
             {"cookie",
              [&](const Field& v) {
                const auto text = w.string(v);
                if (!text) return;
                if (!is_token(*text)) return w.fail(v, "expected a cookie name (an RFC 9110 token)");
                cache.identity_from = RouteCache::IdentityFrom::cookie;
                cache.identity_name = *text;
                if (one) w.fail(v, "header and cookie are mutually exclusive");
                one = true;
              }},
         });
         if (!one && f.node.IsMap() && w.error_count() == errors) w.fail(f, "expected {header: NAME} or {cookie: NAME}");
       }},
  });
  // regional_ttl after the loop: its bound depends on regional_ttl_override, wherever that stands.
  if (regional_ttl) {
    cache.regional_ttl_location = regional_ttl->at;
    if (cache.regional_ttl_override) {
      if (const auto d = whole_seconds(w, *regional_ttl, std::chrono::seconds(1), std::chrono::hours(24), "1s and 1d"))
        cache.regional_ttl = *d;
    } else if (const auto d = whole_seconds(w, *regional_ttl, std::chrono::minutes(5), std::chrono::minutes(15),
                                            "5m and 15m (set regional_ttl_override: true for other values)")) {
      cache.regional_ttl = *d;
    }
  }
  const bool private_regional = cache.scope == CacheScope::private_ && regional_ttl;
  if (private_regional && cache.identity_from == RouteCache::IdentityFrom::none && !identity) {
    w.fail(*regional_ttl, "a private route cached regionally needs identity: {header: NAME} or {cookie: NAME}");
  }
  if (identity && !private_regional && cache.identity_from != RouteCache::IdentityFrom::none) {
    w.fail(*identity, "only with scope: private and regional_ttl (the per-user regional key)");
  }
}

}  // namespace detail
}  // namespace virex::config
