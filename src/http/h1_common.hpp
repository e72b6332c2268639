// Private helpers shared by the HTTP/1.1 request and response codecs (src/http only): ASCII
// case-insensitive compare, OWS trim, the fixed header array size, and the resumable pre-scan of a header
// section for what Beast tolerates but RFC 9112 and smuggling safety do not. Pure functions, any thread.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <virex/http/text.hpp>

namespace virex::http::detail {

using http::iequals;
inline std::string_view trim(std::string_view s) noexcept { return trim_ows(s); }

// Header views per message live in a fixed array of this size; limits above it are capped to it.
constexpr std::size_t kMaxHeaderArray = 128;

// Where the header section ends and whether its bytes are acceptable (RFC 9112 §2.2, §5.2). The scan is
// resumable: `st` keeps its position across feeds of a growing buffer, so a dripped head costs O(n).
struct HeadScanState {
  std::size_t pos = 0;
  std::size_t line_start = 0;
  bool first_line = true;
};

struct HeadScan {
  enum Kind { need_more, ok, error } kind;
  std::size_t end = 0;  // bytes up to and including the final CRLFCRLF
  enum class Fault { none, bad_chars, obs_fold, first_line_too_long, too_large } fault = Fault::none;
};

// The first index in [i, end) whose byte is ≤ CR (0x0D: NUL, TAB, LF, CR and the other low controls), or
// `end`. With SSE2 (every x86-64), 16 bytes per step: a head is mostly printable, and the byte-at-a-time loop
// was ~10 % of a proxied request's instructions (callgrind).
inline std::size_t find_at_most_cr(const char* p, std::size_t i, std::size_t end) noexcept {
#if defined(__SSE2__)
  const __m128i cr = _mm_set1_epi8(0x0D);
  while (i + 16 <= end) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    // Unsigned v <= 0x0D ⇔ min(v, 0x0D) == v (bytes ≥ 0x80, obs-text, are not flagged).
    const unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(v, cr), v)));
    if (mask) return i + static_cast<std::size_t>(__builtin_ctz(mask));
    i += 16;
  }
#endif
  while (i < end && static_cast<unsigned char>(p[i]) > '\r') ++i;
  return i;
}

// `d` starts at the message's first byte. The start line may be at most `first_line_cap` bytes (CRLF
// included) and the whole section at most `max_header_bytes`.
inline HeadScan scan_head(std::string_view d, std::size_t max_header_bytes, std::size_t first_line_cap,
                          HeadScanState& st) noexcept {
  using Fault = HeadScan::Fault;
  const std::size_t limit = std::min(d.size(), max_header_bytes);
  const char* p = d.data();
  std::size_t i = st.pos;
  // Resuming at the first byte of a header line: it decides obs-fold (RFC 9112 §5.2).
  if (!st.first_line && i == st.line_start && i < d.size() && (p[i] == ' ' || p[i] == '\t'))
    return {HeadScan::error, 0, Fault::obs_fold};
  for (; i < limit; ++i) {
    i = find_at_most_cr(p, i, limit);  // fast path: skip printable bytes 16 at a time
    if (i >= limit) break;
    const unsigned char c = static_cast<unsigned char>(p[i]);
    if (c == 0) return {HeadScan::error, 0, Fault::bad_chars};
    if (c == '\r') {
      if (i + 1 >= d.size()) break;  // look again once the next byte is here
      if (p[i + 1] != '\n') return {HeadScan::error, 0, Fault::bad_chars};
      continue;
    }
    if (c != '\n') continue;
    if (i == 0 || p[i - 1] != '\r') return {HeadScan::error, 0, Fault::bad_chars};
    if (st.first_line) {
      st.first_line = false;
      if (i + 1 > first_line_cap) return {HeadScan::error, 0, Fault::first_line_too_long};
    } else if (i - st.line_start == 1) {
      return {HeadScan::ok, i + 1};  // empty line: end of the header section
    }
    st.line_start = i + 1;
    if (i + 1 >= d.size()) { ++i; break; }  // the next line's first byte decides obs-fold
    if (p[i + 1] == ' ' || p[i + 1] == '\t') return {HeadScan::error, 0, Fault::obs_fold};
  }
  st.pos = i;
  if (st.first_line && i > first_line_cap) return {HeadScan::error, 0, Fault::first_line_too_long};
  if (d.size() >= max_header_bytes) return {HeadScan::error, 0, Fault::too_large};
  return {HeadScan::need_more};
}

// Beast 1.81 asserts (debug builds only) that a resumed last-chunk has at least 5 bytes, yet it stalls
// there with 3 ("0\r\n"), so "0\r\n" then one more byte aborts (fixed upstream in boostorg/beast#2861).
// After Beast stalls on `pending`, a codec asks whether that is the last-chunk line and, if so, offers
// Beast nothing shorter than kMinLastChunk: no last-chunk plus trailer section is (RFC 9112 §7.1).
constexpr std::size_t kMinLastChunk = 5;  // "0" CRLF CRLF
inline bool is_last_chunk_line(std::string_view pending) noexcept {
  if (pending.substr(0, 2) == "\r\n") pending.remove_prefix(2);  // the CRLF ending the previous chunk
  std::size_t i = 0;
  while (i < pending.size() && pending[i] == '0') ++i;
  if (i == 0) return false;
  if (i < pending.size()) {
    const char c = static_cast<char>(pending[i] | 0x20);
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) return false;  // a non-zero chunk size
  }
  return pending.find("\r\n", i) != std::string_view::npos;  // Beast has seen the whole line
}

}  // namespace virex::http::detail
