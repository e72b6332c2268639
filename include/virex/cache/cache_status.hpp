// RFC 9211 `Cache-Status` field values for responses through a caching route, e.g.
// `virex-edge; hit; ttl=42`, `virex-edge; fwd=miss; stored`, `virex-edge; fwd=stale; fwd-status=304; ttl=0`.
// Pure, any thread; appends to a caller-owned buffer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace virex::cache {

// RFC 9211 §2.2: why the request went forward.
enum class Forward : std::uint8_t {
  none,       // a hit (or nothing was forwarded)
  bypass,     // the cache was configured not to handle this request (e.g. a private-scope route)
  method,     // the method is not cacheable
  uri_miss,   // nothing stored for the key
  vary_miss,  // stored for the key, but no variant matches the request's Vary headers
  miss,       // a miss without a more precise reason
  request,    // the request asked for it (no-cache, max-age=0)
  stale,      // the stored response was stale and had to be revalidated or refetched
  partial,    // only part of the response was stored
};
std::string_view to_string(Forward f) noexcept;   // "uri-miss", …; "" for none

struct CacheStatus {
  bool hit = false;                    // served from the cache without going forward (§2.1)
  Forward fwd = Forward::none;         // ignored when hit
  unsigned fwd_status = 0;             // §2.3: status of the forwarded response; 0 = left out
  std::optional<std::int64_t> ttl;     // §2.4: remaining freshness in seconds (negative when served stale)
  bool stored = false;                 // §2.5: the forwarded response was stored
  bool collapsed = false;              // §2.6: the request waited on another one for the same key
  std::string_view detail;             // §2.8: free text: a token as is, anything else as a quoted string
};

// Appends `cache_name; params…` (one list member, RFC 8941) to `out`. The name and the detail are written as
// sf-tokens when they are ones, otherwise as sf-strings with `"` and `\` escaped and bytes outside
// printable ASCII replaced by `?`.
void append_cache_status(std::string& out, const CacheStatus& s, std::string_view cache_name = "virex-edge");

}  // namespace virex::cache
