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

}  // namespace

void read_cache(Walker& w, const Field& field, Cache& cache) {
  w.map(field, {
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
  });
}

}  // namespace detail
}  // namespace virex::config
