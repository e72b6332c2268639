// Readers for `upstreams:`, `proxy:` and a route's `upstream:` action (declared in upstreams.hpp). Like the other
// sections they report every problem through the Walker as file:line:col: key: reason and leave the default in
// place of a bad value. Main thread only; nothing throws on bad input.
#include "upstreams.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>

namespace virex::config::detail {
namespace {

constexpr std::int64_t kMaxCount = 1'000'000;  // limits.max_*, min_concurrent, max_requests_per_connection
constexpr std::size_t kListedNames = 10;       // cluster names an "unknown upstream" message lists at most
constexpr std::array<std::string_view, 3> kBalances = {"round_robin", "least_request", "consistent_hash"};
constexpr std::array<Balance, 3> kBalanceValues = {Balance::round_robin, Balance::least_request,
                                                   Balance::consistent_hash};

// 250ms, 5s, 5m, 1h, 1d: the largest unit that divides `d`, for messages that quote another key's value.
std::string format_duration(Duration d) {
  struct Unit {
    std::int64_t ms;
    const char* suffix;
  };
  static constexpr std::array<Unit, 4> kUnits = {{{86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1'000, "s"}}};
  const std::int64_t ms = d.count();
  for (const Unit& unit : kUnits) {
    if (ms != 0 && ms % unit.ms == 0) return std::to_string(ms / unit.ms) + unit.suffix;
  }
  return std::to_string(ms) + "ms";
}

// A plain decimal number: digits only, no sign, no spaces, no overflow.
bool parse_unsigned(std::string_view text, unsigned& value) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return !text.empty() && ec == std::errc{} && end == text.data() + text.size();
}

// A reader storing an integer in [min, max] into `out`.
Reader count(Walker& w, unsigned& out, std::int64_t min, std::int64_t max) {
  return [&w, &out, min, max](const Field& f) {
    if (const auto n = w.integer(f, min, max)) out = static_cast<unsigned>(*n);
  };
}

// A reader storing a duration (> 0, ≤ 1d) into an optional that stays empty otherwise.
Reader optional_timeout(Walker& w, std::optional<Duration>& out) {
  return [&w, &out](const Field& f) {
    if (const auto d = w.timeout(f)) out = *d;
  };
}

// A reader storing a duration into `out` and remembering its field when valid, for a cross-check afterwards.
Reader timeout_at(Walker& w, Duration& out, std::optional<Field>& at) {
  return [&w, &out, &at](const Field& f) {
    if (const auto d = w.timeout(f)) {
      out = *d;
      at = f;
    }
  };
}

// `low_name` ≤ `high_name`: reported at whichever of the two the file gave (`low` first), as limits does for
// max_uri_bytes and max_header_bytes. A field is set only when its value was valid.
void check_order(Walker& w, Duration low, const std::optional<Field>& low_at, std::string_view low_name,
                 Duration high, const std::optional<Field>& high_at, std::string_view high_name) {
  if (low <= high) return;
  if (low_at) {
    w.fail(*low_at, "must not exceed " + std::string(high_name) + " (" + format_duration(high) + ")");
  } else if (high_at) {
    w.fail(*high_at, "must be at least " + std::string(low_name) + " (" + format_duration(low) + ")");
  }
}

// A path the server puts into a request line: RFC 9112 §3.2.1 origin-form, visible ASCII starting with "/";
// no fragment (RFC 9110 §7.1), no query unless `allow_query`. Returns why it is not, or "".
std::string request_path_error(std::string_view path, bool allow_query) {
  if (path.empty() || path.front() != '/') return "must start with \"/\"";
  const bool bad = std::any_of(path.begin(), path.end(), [&](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u >= 0x7f || c == '#' || (c == '?' && !allow_query);
  });
  if (!bad) return "";
  return allow_query ? "must not contain spaces, control characters, non-ASCII bytes or \"#\""
                     : "must not contain spaces, control characters, non-ASCII bytes, \"?\" or \"#\"";
}

// ---- host:port -----------------------------------------------------------------------------------------------

struct HostPort {
  std::string host;       // lower-cased; an IPv6 address without its brackets
  unsigned port = 0;      // 0 when the text had none
  std::string canonical;  // "host:port" with IPv6 in inet_ntop form and bracketed: the same endpoint, one spelling
};

const std::string kExpectedEndpoint =
    "expected \"host:port\" (e.g. \"10.0.0.7:9000\", \"[::1]:9000\" or \"origin.internal:9000\")";

// Parses "host[:port]": host an IPv4 address, a bracketed IPv6 address or a DNS name (is_host_name, compared
// lower-case); port 1..65535, required when `port_required`. Returns why `text` is malformed, or "" with `out`
// filled.
std::string parse_host_port(std::string_view text, bool port_required, HostPort& out) {
  std::string_view host;
  std::string_view rest;  // ":port" or ""
  bool bracketed = false;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) return "missing \"]\" after the IPv6 address";
    host = text.substr(1, close - 1);
    rest = text.substr(close + 1);
    bracketed = true;
  } else {
    const std::size_t colon = text.find(':');
    if (colon != text.rfind(':')) return "an IPv6 address needs brackets, e.g. \"[::1]:9000\"";
    host = text.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view() : text.substr(colon);
  }
  const std::string expected =
      port_required ? kExpectedEndpoint : "expected a host name or an IP address, optionally with \":port\"";
  if ((!rest.empty() && rest.front() != ':') || (rest.empty() && port_required) || host.empty()) return expected;
  unsigned port = 0;
  if (!rest.empty()) {
    rest.remove_prefix(1);
    if (!parse_unsigned(rest, port) || port < 1 || port > 65535) return "the port must be between 1 and 65535";
  }

  std::string name = lower(host);
  std::string canonical = name;
  if (bracketed) {
    // Only hex digits, ':' and '.': inet_pton reads a C string, so an embedded NUL must not cut it short.
    std::array<unsigned char, 16> bytes{};
    if (name.find_first_not_of("0123456789abcdef:.") != std::string::npos ||
        inet_pton(AF_INET6, name.c_str(), bytes.data()) != 1) {
      return quoted(host) + " is not an IPv6 address";
    }
    std::array<char, INET6_ADDRSTRLEN> text6{};
    inet_ntop(AF_INET6, bytes.data(), text6.data(), text6.size());
    canonical = "[" + std::string(text6.data()) + "]";
  } else if (name.find_first_not_of("0123456789.") == std::string::npos) {
    // All digits and dots: meant as an IPv4 address (a DNS name never has an all-numeric top label).
    std::array<unsigned char, 4> bytes{};
    if (inet_pton(AF_INET, name.c_str(), bytes.data()) != 1) return quoted(host) + " is not a valid IPv4 address";
  } else if (!is_host_name(name)) {
    return quoted(host) + " is neither an IP address nor a host name";
  }
  out.host = std::move(name);
  out.port = port;
  out.canonical = canonical + ":" + std::to_string(port);
  return "";
}

// `host_header` and `health_check.host`: "" (the default) or a Host value, host[:port]; stored lower-cased.
void read_host_value(Walker& w, const Field& field, std::string& out) {
  const auto text = w.string(field);
  if (!text) return;
  if (text->empty()) return out.clear();
  HostPort parsed;
  if (std::string why = parse_host_port(*text, false, parsed); !why.empty()) return w.fail(field, std::move(why));
  out = lower(*text);
}

// ---- one cluster -----------------------------------------------------------------------------------------------

void read_endpoints(Walker& w, const Field& field, std::vector<UpstreamEndpoint>& endpoints) {
  Unique seen("endpoint");
  std::size_t items = 0;
  const bool ok = w.items(field, [&](const Field& item) {
    ++items;
    const auto text = w.string(item);
    if (!text) return;
    HostPort parsed;
    if (std::string why = parse_host_port(*text, true, parsed); !why.empty()) return w.fail(item, std::move(why));
    seen.check(w, item, parsed.canonical);
    endpoints.push_back({parsed.host, static_cast<std::uint16_t>(parsed.port), item.at});
  });
  if (ok && items == 0) w.fail(field, "at least one endpoint is required");
}

// `hash_on: path | header:NAME | cookie:NAME`. Returns whether it was valid.
bool read_hash_on(Walker& w, const Field& field, Upstream& upstream) {
  const auto text = w.string(field);
  if (!text) return false;
  if (*text == "path") {
    upstream.hash_on = HashOn::path;
    upstream.hash_key.clear();
    return true;
  }
  const std::size_t colon = text->find(':');
  const std::string_view kind = std::string_view(*text).substr(0, colon);
  if (colon == std::string::npos || (kind != "header" && kind != "cookie")) {
    w.fail(field, "expected path, header:NAME or cookie:NAME");
    return false;
  }
  // RFC 9110 §5.1: a field name is a token; RFC 6265 §4.1.1: so is a cookie name.
  const std::string name = text->substr(colon + 1);
  if (!is_token(name)) {
    const std::string what(kind);
    w.fail(field, "expected a " + what + " name (an RFC 9110 token) after \"" + what + ":\"");
    return false;
  }
  upstream.hash_on = kind == "header" ? HashOn::header : HashOn::cookie;
  upstream.hash_key = name;
  return true;
}

void read_health_check(Walker& w, const Field& field, HealthCheck& check) {
  check.enabled = true;  // `health_check:` present, even empty, turns active checks on
  w.map(field, {
      {"path",
       [&](const Field& f) {
         const auto path = w.string(f);
         if (!path) return;
         if (std::string why = request_path_error(*path, true); !why.empty()) return w.fail(f, std::move(why));
         check.path = *path;
       }},
      {"host", [&](const Field& f) { read_host_value(w, f, check.host); }},
      {"interval", w.into(check.interval)},
      {"timeout", w.into(check.timeout)},
      {"healthy", count(w, check.healthy, 1, 100)},
      {"unhealthy", count(w, check.unhealthy, 1, 100)},
  });
}

void read_timeouts(Walker& w, const Field& field, UpstreamTimeouts& timeouts) {
  w.map(field, {
      {"connect", w.into(timeouts.connect)},
      {"first_byte", w.into(timeouts.first_byte)},
      {"idle", w.into(timeouts.idle)},
      {"request", optional_timeout(w, timeouts.request)},
  });
}

void read_retries(Walker& w, const Field& field, Retries& retries) {
  std::optional<Field> backoff;
  std::optional<Field> max_backoff;
  w.map(field, {
      {"attempts", count(w, retries.attempts, 0, 10)},
      {"budget",
       [&](const Field& f) {  // "20%" or 20
         std::string_view text = f.node.IsScalar() ? std::string_view(f.node.Scalar()) : std::string_view();
         if (!text.empty() && text.back() == '%') text.remove_suffix(1);
         unsigned percent = 0;
         if (!parse_unsigned(text, percent)) return w.fail(f, "expected a percentage such as 20% or 20");
         if (percent > 100) return w.fail(f, "must be between 0% and 100%");
         retries.budget_percent = percent;
       }},
      {"min_concurrent", count(w, retries.min_concurrent, 0, kMaxCount)},
      {"backoff", timeout_at(w, retries.backoff, backoff)},
      {"max_backoff", timeout_at(w, retries.max_backoff, max_backoff)},
  });
  check_order(w, retries.backoff, backoff, "backoff", retries.max_backoff, max_backoff, "max_backoff");
}

void read_limits(Walker& w, const Field& field, UpstreamLimits& limits) {
  w.map(field, {
      {"max_connections", count(w, limits.max_connections, 1, kMaxCount)},
      {"max_pending", count(w, limits.max_pending, 1, kMaxCount)},
      {"max_requests", count(w, limits.max_requests, 1, kMaxCount)},
  });
}

void read_pool(Walker& w, const Field& field, UpstreamPool& pool) {
  w.map(field, {
      {"max_idle", count(w, pool.max_idle, 0, 10'000)},
      {"idle_timeout", w.into(pool.idle_timeout)},
      {"max_requests_per_connection", count(w, pool.max_requests_per_connection, 0, kMaxCount)},  // 0 = unlimited
  });
}

void read_outlier(Walker& w, const Field& field, Outlier& outlier) {
  std::optional<Field> base;
  std::optional<Field> max;
  w.map(field, {
      {"consecutive_5xx", count(w, outlier.consecutive_5xx, 0, 1000)},
      {"consecutive_failures", count(w, outlier.consecutive_failures, 0, 1000)},
      {"base_ejection", timeout_at(w, outlier.base_ejection, base)},
      {"max_ejection", timeout_at(w, outlier.max_ejection, max)},
      {"max_ejected_percent", count(w, outlier.max_ejected_percent, 0, 100)},
  });
  check_order(w, outlier.base_ejection, base, "base_ejection", outlier.max_ejection, max, "max_ejection");
}

void read_upstream(Walker& w, const Field& field, Upstream& upstream) {
  bool has_endpoints = false;
  bool balance_ok = true;
  std::optional<Field> hash_on;  // set when valid
  const bool is_map = w.map(field, {
      {"endpoints",
       [&](const Field& f) {
         has_endpoints = true;
         read_endpoints(w, f, upstream.endpoints);
       }},
      {"balance",
       [&](const Field& f) {
         const auto i = w.choice(f, kBalances);
         balance_ok = i.has_value();
         if (i) upstream.balance = kBalanceValues[*i];
       }},
      {"hash_on",
       [&](const Field& f) {
         if (read_hash_on(w, f, upstream)) hash_on = f;
       }},
      {"host_header", [&](const Field& f) { read_host_value(w, f, upstream.host_header); }},
      {"resolve_interval", w.into(upstream.resolve_interval)},
      {"health_check", [&](const Field& f) { read_health_check(w, f, upstream.health_check); }},
      {"timeouts", [&](const Field& f) { read_timeouts(w, f, upstream.timeouts); }},
      {"retries", [&](const Field& f) { read_retries(w, f, upstream.retries); }},
      {"limits", [&](const Field& f) { read_limits(w, f, upstream.limits); }},
      {"pool", [&](const Field& f) { read_pool(w, f, upstream.pool); }},
      {"outlier", [&](const Field& f) { read_outlier(w, f, upstream.outlier); }},
  });
  if (!is_map) return;
  if (!has_endpoints) w.fail(field.at, join(field.path, "endpoints"), "is required");
  if (hash_on && balance_ok && upstream.balance != Balance::consistent_hash) {
    w.fail(*hash_on, "hash_on needs balance: consistent_hash");
  }
}

// ---- trusted proxies -------------------------------------------------------------------------------------------

// "a.b.c.d", "a.b.c.d/n" (n ≤ 32), "v6" or "v6/n" (n ≤ 128). IPv4 is stored IPv4-mapped (::ffff:a.b.c.d) with
// its prefix counted on 128 bits. Returns why `text` is malformed, or "" with `out` set.
std::string parse_cidr(std::string_view text, Cidr& out) {
  const std::size_t slash = text.find('/');
  const std::string address(text.substr(0, slash));
  const bool v6 = address.find(':') != std::string::npos;
  // inet_pton reads a C string: refuse anything but address characters first, so a NUL cannot cut it short.
  const char* allowed = v6 ? "0123456789abcdefABCDEF:." : "0123456789.";
  Cidr cidr;
  bool ok = address.find_first_not_of(allowed) == std::string::npos;
  if (ok && v6) {
    ok = inet_pton(AF_INET6, address.c_str(), cidr.bytes.data()) == 1;
  } else if (ok) {
    cidr.bytes[10] = cidr.bytes[11] = 0xff;  // RFC 4291 §2.5.5.2
    ok = inet_pton(AF_INET, address.c_str(), cidr.bytes.data() + 12) == 1;
  }
  if (!ok) {
    return quoted(address) +
           " is not an IP address (expected e.g. \"10.0.0.0/8\", \"192.168.1.7\" or \"2001:db8::/32\")";
  }
  const unsigned max = v6 ? 128 : 32;
  unsigned prefix = max;
  if (slash != std::string_view::npos && (!parse_unsigned(text.substr(slash + 1), prefix) || prefix > max)) {
    return "the prefix length after \"/\" must be between 0 and " + std::to_string(max);
  }
  cidr.prefix = v6 ? prefix : prefix + 96;
  // Bits past the prefix are most likely a typo (10.1.0.0/8): name the range the entry would stand for.
  Cidr masked = cidr;
  for (unsigned bit = masked.prefix; bit < 128; ++bit) {
    masked.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  }
  if (masked.bytes != cidr.bytes) {
    std::array<char, INET6_ADDRSTRLEN> start{};
    inet_ntop(v6 ? AF_INET6 : AF_INET, masked.bytes.data() + (v6 ? 0 : 12), start.data(), start.size());
    return quoted(text) + " has address bits set after its /" + std::to_string(prefix) + " prefix (did you mean " +
           quoted(std::string(start.data()) + "/" + std::to_string(prefix)) + "?)";
  }
  out = cidr;
  return "";
}

}  // namespace

void read_upstreams(Walker& w, const Field& field, std::vector<Upstream>& upstreams) {
  w.entries(field, [&](const Field& key, const Field& value) {
    Upstream& upstream = upstreams.emplace_back();
    upstream.name = key.node.Scalar();  // kept even when invalid: routes naming it get no second error
    upstream.location = key.at;
    w.label(key);  // names are metric labels: [A-Za-z0-9_.-]+
    read_upstream(w, value, upstream);
  });
}

void read_route_upstream(Walker& w, const RouteUpstreamKeys& keys, bool match_ok, Route& route,
                         std::vector<Field>& references) {
  if (!keys.upstream) {
    if (keys.rewrite) w.fail(*keys.rewrite, "only allowed with upstream");
    if (keys.timeouts) w.fail(*keys.timeouts, "only allowed with upstream");
    return;
  }
  RouteUpstream& upstream = route.upstream.emplace();
  if (const auto cluster = w.string(*keys.upstream)) {
    upstream.cluster = *cluster;
    references.push_back(*keys.upstream);
  }
  std::optional<Field> strip;  // set when valid and not empty
  const auto prefix = [&](std::string& out, std::optional<Field>* at) {
    return [&w, &out, at](const Field& f) {
      const auto text = w.string(f);
      if (!text) return;
      if (text->empty()) return out.clear();  // "" is the default: nothing stripped or added
      if (std::string why = request_path_error(*text, false); !why.empty()) return w.fail(f, std::move(why));
      out = *text;
      if (at) *at = f;
    };
  };
  if (keys.rewrite) {
    w.map(*keys.rewrite, {
        {"strip_prefix", prefix(upstream.strip_prefix, &strip)},
        {"add_prefix", prefix(upstream.add_prefix, nullptr)},
    });
  }
  if (keys.timeouts) {
    w.map(*keys.timeouts, {
        {"first_byte", optional_timeout(w, upstream.first_byte)},
        {"idle", optional_timeout(w, upstream.idle)},
        {"request", optional_timeout(w, upstream.request)},
    });
  }
  // Every path this route matches starts with (prefix) or is (exact) match.path, so strip_prefix must be a
  // prefix of it to apply to every request; a template's paths vary and are not checked.
  const RouteMatch& match = route.match;
  if (strip && match_ok && match.kind != PathKind::template_ && !match.path.starts_with(upstream.strip_prefix)) {
    w.fail(*strip, "strip_prefix " + upstream.strip_prefix + " is not a prefix of the route's path " + match.path);
  }
}

void resolve_route_upstreams(Walker& w, const std::vector<Field>& references, const std::vector<Upstream>& upstreams) {
  if (references.empty()) return;
  std::unordered_set<std::string_view> names;  // a set: 10k routes × 10k clusters must not cost 10⁸ compares
  for (const Upstream& upstream : upstreams) names.insert(upstream.name);
  std::string defined;
  for (std::size_t i = 0; i < upstreams.size() && i < kListedNames; ++i) {
    defined += (i == 0 ? "" : ", ") + upstreams[i].name;
  }
  if (upstreams.empty()) defined = "none";
  if (upstreams.size() > kListedNames) defined += " and " + std::to_string(upstreams.size() - kListedNames) + " more";
  for (const Field& reference : references) {
    const std::string& name = reference.node.Scalar();
    if (!names.contains(name)) w.fail(reference, "unknown upstream " + quoted(name) + " (defined: " + defined + ")");
  }
}

void read_proxy(Walker& w, const Field& field, Proxy& proxy) {
  w.map(field, {
      {"trusted_proxies",
       [&](const Field& f) {
         w.items(f, [&](const Field& item) {
           const auto text = w.string(item);
           if (!text) return;
           Cidr cidr;
           if (std::string why = parse_cidr(*text, cidr); !why.empty()) return w.fail(item, std::move(why));
           proxy.trusted_proxies.push_back(cidr);
         });
       }},
      {"via", w.into(proxy.via)},
  });
}

std::string parse_endpoint(std::string_view text, std::string& canonical) {
  HostPort parsed;
  std::string why = parse_host_port(text, true, parsed);
  if (why.empty()) canonical = std::move(parsed.canonical);
  return why;
}

}  // namespace virex::config::detail
