// Storage and freshness policy of the edge cache (RFC 9111 §3, §4.2, §5.2; RFC 5861; RFC 9213) and the
// conditional-request check (RFC 9110 §13). Pure functions: no I/O, no clock, any thread.
#include <virex/cache/freshness.hpp>

#include <virex/core/http_date.hpp>
#include <virex/http/text.hpp>

#include <algorithm>
#include <array>
#include <cstdint>

namespace virex::cache {
namespace {

using std::chrono::seconds;
using http::iequals;
using http::trim_ows;

// RFC 9111 §1.2.2: a delta-seconds too large to represent is read as 2^31.
constexpr std::int64_t kMaxDelta = std::int64_t{1} << 31;

bool is_tchar(char c) noexcept {
  const auto u = static_cast<unsigned char>(c);
  return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

// delta-seconds = 1*DIGIT (RFC 9111 §1.2.2). In a quoted argument, backslash escapes are undone first.
std::optional<seconds> parse_delta(std::string_view arg, bool quoted) noexcept {
  std::int64_t v = 0;
  bool any = false;
  for (std::size_t i = 0; i < arg.size(); ++i) {
    char c = arg[i];
    if (quoted && c == '\\' && i + 1 < arg.size()) c = arg[++i];
    if (c < '0' || c > '9') return std::nullopt;
    any = true;
    v = std::min(kMaxDelta, v * 10 + (c - '0'));
  }
  if (!any) return std::nullopt;
  return seconds(v);
}

// Which directives were met already: a repeated one keeps its first occurrence (RFC 9111 §4.2.1).
struct Seen {
  bool max_age = false, s_maxage = false, swr = false, sie = false;
};

void apply(CacheControl& cc, Seen& seen, std::string_view name, bool has_arg, std::string_view arg, bool quoted) {
  const auto lifetime = [&](bool& was_seen, std::optional<seconds>& out) {
    if (was_seen) return;
    was_seen = true;
    const auto v = has_arg ? parse_delta(arg, quoted) : std::nullopt;
    if (v) out = v;
    else cc.invalid_lifetime = true;  // §4.2.1: invalid freshness information → treat the response as stale
  };
  const auto stale_window = [&](bool& was_seen, std::optional<seconds>& out) {
    if (was_seen) return;
    was_seen = true;
    if (has_arg) out = parse_delta(arg, quoted);  // malformed: ignored (no stale serving granted)
  };
  if (iequals(name, "max-age")) lifetime(seen.max_age, cc.max_age);
  else if (iequals(name, "s-maxage")) lifetime(seen.s_maxage, cc.s_maxage);
  else if (iequals(name, "stale-while-revalidate")) stale_window(seen.swr, cc.stale_while_revalidate);
  else if (iequals(name, "stale-if-error")) stale_window(seen.sie, cc.stale_if_error);
  else if (iequals(name, "no-store")) cc.no_store = true;
  else if (iequals(name, "no-cache")) cc.no_cache = true;    // §5.2.2.4: a field list is treated as plain no-cache
  else if (iequals(name, "private")) cc.private_ = true;     // §5.2.2.7: likewise
  else if (iequals(name, "public")) cc.public_ = true;
  else if (iequals(name, "must-revalidate")) cc.must_revalidate = true;
  else if (iequals(name, "proxy-revalidate")) cc.proxy_revalidate = true;
  else if (iequals(name, "immutable")) cc.immutable = true;
  // anything else: an extension this cache does not implement (§5.2.3), ignored
}

// Skips to just after the next comma outside a quoted-string (or to the end), after a malformed directive.
std::size_t skip_member(std::string_view v, std::size_t i) noexcept {
  bool in_quotes = false;
  for (; i < v.size(); ++i) {
    const char c = v[i];
    if (in_quotes && c == '\\') ++i;
    else if (c == '"') in_quotes = !in_quotes;
    else if (c == ',' && !in_quotes) return i + 1;
  }
  return v.size();
}

// One field value: #( token [ "=" ( token / quoted-string ) ] ) (RFC 9111 §5.2).
void parse_value(std::string_view v, CacheControl& cc, Seen& seen) {
  std::size_t i = 0;
  while (i < v.size()) {
    while (i < v.size() && (is_ows(v[i]) || v[i] == ',')) ++i;
    if (i == v.size()) break;
    const std::size_t name_start = i;
    while (i < v.size() && is_tchar(v[i])) ++i;
    const std::string_view name = v.substr(name_start, i - name_start);
    bool has_arg = false, quoted = false, ok = !name.empty();
    std::string_view arg;
    if (ok && i < v.size() && v[i] == '=') {
      has_arg = true;
      ++i;
      if (i < v.size() && v[i] == '"') {
        quoted = true;
        const std::size_t start = ++i;
        while (i < v.size() && v[i] != '"') i += v[i] == '\\' ? 2 : 1;
        if (i >= v.size()) {
          ok = false;  // unterminated quoted-string
        } else {
          arg = v.substr(start, i - start);
          ++i;
        }
      } else {
        const std::size_t start = i;
        while (i < v.size() && is_tchar(v[i])) ++i;
        arg = v.substr(start, i - start);
      }
    }
    while (ok && i < v.size() && is_ows(v[i])) ++i;
    if (ok && i < v.size() && v[i] != ',') ok = false;
    if (!ok) {
      cc.syntax_error = true;
      i = skip_member(v, i);
      continue;
    }
    apply(cc, seen, name, has_arg, arg, quoted);
  }
}

// RFC 9110 §15.1: heuristically cacheable status codes (206 is left out: this cache stores no partial content).
bool cacheable_by_default(unsigned status) noexcept {
  static constexpr std::array<unsigned, 11> kStatuses = {200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501};
  return std::find(kStatuses.begin(), kStatuses.end(), status) != kStatuses.end();
}

template <typename Head>
bool has_header(const Head& h, std::string_view name) noexcept {
  return std::any_of(h.headers.begin(), h.headers.end(), [&](const http::Header& f) { return iequals(f.name, name); });
}

// Vary: * (RFC 9111 §4.1: never matches, so there is no point storing it).
bool vary_star(std::span<const http::Header> headers) noexcept {
  for (const http::Header& f : headers) {
    if (!iequals(f.name, "Vary")) continue;
    std::string_view v = f.value;
    while (!v.empty()) {
      const std::size_t comma = v.find(',');
      if (trim_ows(v.substr(0, comma)) == "*") return true;
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return false;
}

StoreDecision not_stored(std::string_view reason) {
  StoreDecision d;
  d.reason = reason;
  return d;
}

}  // namespace

CacheControl parse_cache_control(std::span<const http::Header> headers, std::string_view field_name) {
  CacheControl cc;
  Seen seen;
  for (const http::Header& f : headers) {
    if (!iequals(f.name, field_name)) continue;
    if (!trim_ows(f.value).empty()) cc.present = true;
    parse_value(f.value, cc, seen);
  }
  return cc;
}

StoreDecision decide(const http::RequestHead& req, const http::ResponseHead& resp, const RoutePolicy& p,
                     std::time_t now_unix) {
  // RFC 9111 §3: a method the cache understands and defines as cacheable. GET only: a HEAD answer has no body
  // and GET shares its key.
  if (req.method == http::Method::head) return not_stored("head");
  if (req.method != http::Method::get) return not_stored("method");
  // A final status the cache understands; no partial content, no 304 (that only updates a stored entry).
  if (resp.status == 206) return not_stored("partial");
  if (resp.status < 200 || resp.status == 304 || resp.status > 599) return not_stored("status");

  // §5.2.1.5: no-store in the request.
  if (parse_cache_control(req.headers, "Cache-Control").no_store) return not_stored("no_store");

  // RFC 9213 §2.2: a present, well-formed CDN-Cache-Control replaces Cache-Control and Expires for this cache.
  const CacheControl targeted = parse_cache_control(resp.headers, "CDN-Cache-Control");
  const bool use_targeted = targeted.present && !targeted.syntax_error;
  const CacheControl cc = use_targeted ? targeted : parse_cache_control(resp.headers, "Cache-Control");

  if (cc.no_store) return not_stored("no_store");   // §5.2.2.5
  if (cc.private_ && !p.per_user) return not_stored("private");  // §3: a shared cache never stores private
  if (p.private_scope) return not_stored("private_scope");
  // §3.5: a request with Authorization only with public, s-maxage or must-revalidate.
  if (has_header(req, "Authorization") && !cc.public_ && !cc.must_revalidate && !cc.s_maxage) {
    return not_stored("authorization");
  }
  if (!p.store_set_cookie && has_header(resp, "Set-Cookie")) return not_stored("set_cookie");
  if (vary_star(resp.headers)) return not_stored("vary_star");

  const std::optional<std::time_t> date = core::parse_http_date(resp.header("Date"), now_unix);

  // §4.2.1: s-maxage, then max-age, then Expires − Date. Invalid freshness information means already stale.
  std::optional<seconds> lifetime;
  if (cc.invalid_lifetime) {
    lifetime = seconds(0);
  } else if (cc.s_maxage) {
    lifetime = cc.s_maxage;
  } else if (cc.max_age) {
    lifetime = cc.max_age;
  } else if (!use_targeted && has_header(resp, "Expires")) {
    // §5.3: an invalid Expires (e.g. "0") is a time in the past. Without a valid Date, the receipt time stands in
    // for it (RFC 9110 §6.6.1).
    const auto expires = core::parse_http_date(resp.header("Expires"), now_unix);
    const std::time_t base = date.value_or(now_unix);
    lifetime = seconds(expires && *expires > base ? std::min<std::int64_t>(*expires - base, kMaxDelta) : 0);
  }

  // §3: a status that is not cacheable by default needs explicit freshness or `public`.
  if (!cacheable_by_default(resp.status) && !lifetime && !cc.public_) return not_stored("status");

  StoreDecision d;
  if (!lifetime && !cc.no_cache) {
    // No explicit lifetime: no heuristic freshness (§4.2.2); the route's TTLs stand in.
    if ((resp.status == 404 || resp.status == 410) && p.negative_ttl > seconds(0)) lifetime = p.negative_ttl;
    else if (p.edge_ttl) lifetime = p.edge_ttl;
    else return not_stored("no_lifetime");
  }

  // §4.2.3: corrected_initial_age = max(apparent_age, corrected_age_value); request and response time are both
  // now_unix here, so response_delay is 0.
  std::int64_t age_value = 0;
  if (const auto age = parse_delta(trim_ows(resp.header("Age")), false)) age_value = age->count();
  const std::int64_t apparent_age = date ? std::max<std::int64_t>(0, now_unix - *date) : 0;
  d.initial_age = seconds(std::min(kMaxDelta, std::max(apparent_age, age_value)));

  d.store = true;
  if (lifetime) {
    d.ttl = std::max(seconds(0), *lifetime - d.initial_age);
    if (p.edge_ttl) d.ttl = std::min(d.ttl, *p.edge_ttl);  // edge_ttl caps explicit lifetimes
  }
  const bool explicit_revalidate = cc.no_cache || cc.must_revalidate || cc.proxy_revalidate;
  d.must_revalidate = explicit_revalidate || cc.s_maxage.has_value();  // §5.2.2.10: s-maxage implies proxy-revalidate
  if (cc.no_cache) d.ttl = seconds(0);  // §5.2.2.4: stored, but every use is validated first
  if (!explicit_revalidate) {
    // RFC 5861: the response's own windows; the route's defaults only where no directive forbids stale use.
    d.swr = cc.stale_while_revalidate.value_or(d.must_revalidate ? seconds(0) : p.default_swr);
    d.sie = cc.stale_if_error.value_or(d.must_revalidate ? seconds(0) : p.default_sie);
  }
  return d;
}

seconds current_age(seconds initial_age, std::time_t stored_unix, std::time_t now_unix) {
  const std::int64_t resident = std::max<std::int64_t>(0, now_unix - stored_unix);
  return seconds(std::min(kMaxDelta, initial_age.count() + resident));
}

Usability usability(const StoreDecision& d, seconds elapsed) {
  if (elapsed < d.ttl) return Usability::fresh;
  const seconds past = elapsed - d.ttl;
  if (past < d.swr) return Usability::stale_while_revalidate;
  if (past < d.sie) return Usability::stale_if_error;
  return Usability::stale;
}

bool weak_etag_match(std::string_view a, std::string_view b) noexcept {
  a = trim_ows(a);
  b = trim_ows(b);
  if (a.starts_with("W/")) a.remove_prefix(2);
  if (b.starts_with("W/")) b.remove_prefix(2);
  return !a.empty() && a == b;
}

bool not_modified(const http::RequestHead& req, std::string_view etag, std::string_view last_modified,
                  std::time_t now_unix) {
  if (req.method != http::Method::get && req.method != http::Method::head) return false;

  // RFC 9110 §13.1.2: If-None-Match = "*" / #entity-tag; weak comparison. Opaque tags may hold commas, so the
  // list is read tag by tag rather than split on ",". A member that is not a quoted entity-tag is compared
  // as it stands (lenient with unquoted tags).
  bool none_match_present = false;
  for (const http::Header& f : req.headers) {
    if (!iequals(f.name, "If-None-Match")) continue;
    none_match_present = true;
    std::string_view v = f.value;
    std::size_t i = 0;
    while (i < v.size()) {
      while (i < v.size() && (is_ows(v[i]) || v[i] == ',')) ++i;
      if (i == v.size()) break;
      const std::size_t start = i;
      if (v.substr(i).starts_with("W/")) i += 2;
      std::string_view tag;
      if (i < v.size() && v[i] == '"') {
        const std::size_t close = v.find('"', i + 1);
        if (close == std::string_view::npos) break;  // unterminated: nothing more to read
        tag = v.substr(start, close + 1 - start);
        i = close + 1;
      } else {
        const std::size_t comma = std::min(v.find(',', i), v.size());
        tag = trim_ows(v.substr(start, comma - start));
        i = comma;
      }
      if (tag == "*") return true;  // any current representation: this one
      if (!etag.empty() && weak_etag_match(tag, etag)) return true;
    }
  }
  if (none_match_present) return false;  // §13.2.2: If-Modified-Since only without If-None-Match

  // §13.1.3: exactly one valid HTTP-date, and a known modification date.
  std::string_view since;
  int count = 0;
  for (const http::Header& f : req.headers) {
    if (iequals(f.name, "If-Modified-Since")) {
      since = f.value;
      ++count;
    }
  }
  if (count != 1) return false;
  const auto since_t = core::parse_http_date(since, now_unix);
  const auto modified = core::parse_http_date(last_modified, now_unix);
  return since_t && modified && *modified <= *since_t;
}

}  // namespace virex::cache
