// The edge cache's storage and freshness policy (RFC 9111, RFC 5861 stale-*, RFC 9213 CDN-Cache-Control) and the
// conditional-request check (RFC 9110 §13): pure functions of a request head, a response head, the route's policy
// and the current time. No I/O, no locks, no clock reads: any thread may call them. Returned views point into the
// arguments (or are static labels).
#pragma once

#include <virex/http/h1_response_parser.hpp>
#include <virex/http/request.hpp>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <optional>
#include <span>
#include <string_view>

namespace virex::cache {

// The directives of every field named `field_name` (RFC 9111 §5.2), as one list.
struct CacheControl {
  bool present = false;            // at least one field of this name with a non-empty value
  bool syntax_error = false;       // a directive that is not `token [= token / quoted-string]` (skipped)
  bool invalid_lifetime = false;   // max-age or s-maxage with a malformed argument: the response is stale (§4.2.1)
  std::optional<std::chrono::seconds> max_age;    // first valid occurrence; values past 2^31 read as 2^31 (§1.2.2)
  std::optional<std::chrono::seconds> s_maxage;
  std::optional<std::chrono::seconds> stale_while_revalidate;  // RFC 5861 §3; malformed → ignored
  std::optional<std::chrono::seconds> stale_if_error;          // RFC 5861 §4; malformed → ignored
  bool no_store = false;
  bool no_cache = false;           // with or without a field list (§5.2.2.4: both treated as no-cache)
  bool private_ = false;           // with or without a field list (§5.2.2.7: both keep it out of a shared cache)
  bool public_ = false;
  bool must_revalidate = false;
  bool proxy_revalidate = false;
  bool immutable = false;          // RFC 8246
};

// Parses all fields named `field_name` (case-insensitive) in order, as if joined with ", ". Directive names
// are case-insensitive; arguments may be tokens or quoted-strings (§5.2: recipients accept both); unknown
// directives are ignored; a repeated directive keeps its first occurrence (§4.2.1).
CacheControl parse_cache_control(std::span<const http::Header> headers, std::string_view field_name);

// What a route's `cache:` block says, in the units the policy works in.
struct RoutePolicy {
  // Caps explicit lifetimes (s-maxage, max-age, Expires) and is the lifetime of responses that have none.
  // Unset: origin lifetimes are used as they are and responses without one are not stored (no heuristic
  // freshness, RFC 9111 §4.2.2).
  std::optional<std::chrono::seconds> edge_ttl;
  bool private_scope = false;     // route `scope: private`: nothing is stored in the shared edge cache
  // A per-user store (a private route's regional copy, keyed by the user's identity): `Cache-Control: private`
  // responses may be stored there (RFC 9111 §5.2.2.7: a private cache may store them).
  bool per_user = false;
  bool store_set_cookie = false;  // store responses carrying Set-Cookie (they are not stored otherwise)
  std::chrono::seconds negative_ttl{10};  // 404/410 without an explicit lifetime (0: not stored); capped by edge_ttl
  std::chrono::seconds default_swr{0};    // stale-while-revalidate when the response gives none
  std::chrono::seconds default_sie{0};    // stale-if-error when the response gives none
};

// decide(): whether to store a response in the shared edge cache, and for how long.
struct StoreDecision {
  bool store = false;
  // Remaining freshness from now: the freshness lifetime (§4.2.1, capped by edge_ttl) minus the corrected
  // initial age (§4.2.3), never negative. 0 for no-cache and for responses stored already stale.
  std::chrono::seconds ttl{0};
  // Windows after ttl during which the stale entry may be served while one background refresh runs (swr) or
  // when the origin fails (sie). They are the only stale serving allowed.
  std::chrono::seconds swr{0};
  std::chrono::seconds sie{0};
  // An explicit directive (no-cache, must-revalidate, proxy-revalidate, s-maxage §5.2.2.10) forbids serving
  // the entry stale beyond what the response's own stale-while-revalidate / stale-if-error grant; route
  // defaults then do not apply (§4.2.4). no-cache, must-revalidate and proxy-revalidate also zero the windows.
  bool must_revalidate = false;
  // The corrected initial age (§4.2.3) when stored: current_age() adds the time spent in the cache to it.
  std::chrono::seconds initial_age{0};
  // Why it is not stored: a bounded label for metrics and the access log ("" when stored): method, status,
  // partial, no_store, private, private_scope, authorization, set_cookie, vary_star, no_lifetime.
  std::string_view reason;
};

// RFC 9111 §3 for a shared cache, with CDN-Cache-Control (RFC 9213 §2.2: when present and well-formed it is used
// instead of Cache-Control, and Expires is ignored). `now_unix` is when the response arrived (it stands for
// both request_time and response_time of §4.2.3). A response to HEAD is never stored: GET and HEAD share a key
// and a stored HEAD answer has no body to serve a GET with.
StoreDecision decide(const http::RequestHead& req, const http::ResponseHead& resp, const RoutePolicy& p,
                     std::time_t now_unix);

// The Age to send with a hit (RFC 9111 §4.2.3): the stored initial age plus the time since it was stored (a
// clock going backwards counts as 0), capped at 2^31 seconds (§1.2.2).
std::chrono::seconds current_age(std::chrono::seconds initial_age, std::time_t stored_unix, std::time_t now_unix);

// What a stored entry may be used for, `elapsed` after it was stored with `d`.
enum class Usability : std::uint8_t {
  fresh,                   // elapsed < ttl: serve
  stale_while_revalidate,  // within swr after ttl: serve, refresh once in the background
  stale_if_error,          // within sie after ttl (and past swr): serve only if the origin fails
  stale,                   // revalidate or refetch before use
};
Usability usability(const StoreDecision& d, std::chrono::seconds elapsed);

// RFC 9110 §13.1.1–§13.1.3, §13.2.2 for a GET or HEAD answered from the cache: true when it should be a 304.
// If-None-Match (all fields, a list or "*") is compared weakly with `etag` (the stored ETag, "" if none; "*"
// matches any stored representation); only without If-None-Match is If-Modified-Since compared with
// `last_modified` (the stored Last-Modified, or its Date when it has none, RFC 9111 §4.3.2). An invalid or
// repeated If-Modified-Since, or an unparsable `last_modified`, is ignored. `now_unix` resolves RFC 850
// two-digit years. Other methods: false.
bool not_modified(const http::RequestHead& req, std::string_view etag, std::string_view last_modified,
                  std::time_t now_unix);

// RFC 9110 §8.8.3.2 weak comparison of two entity-tags (W/ prefixes ignored, opaque-tags compared bytewise).
bool weak_etag_match(std::string_view a, std::string_view b) noexcept;

}  // namespace virex::cache
