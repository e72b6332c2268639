// HTTP/1.1 response codec, hand-written, sans-IO and allocation-free. One strict pass parses the status line
// and the fields into views in a fixed array (RFC 9112 §4, §5), decides the framing (RFC 9112 §6.3) and
// refuses ambiguous framing (response smuggling, RFC 9112 §11.1); a head that is not whole in one feed, or
// that is faulty, first goes through the shared resumable pre-scan (h1_common.hpp). The body is counted
// (Content-Length), decoded (chunked, RFC 9112 §7.1; trailer fields checked and kept, copied, for trailers())
// or read until close, and handed out as views into the fed data. One instance per upstream exchange, one worker thread.
#include <virex/http/h1_response_parser.hpp>

#include "h1_common.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace virex::http {
namespace {

using detail::iequals;
using detail::kMaxHeaderArray;
using detail::trim;
using HeaderArray = std::array<Header, kMaxHeaderArray + 1>;
constexpr std::size_t npos = std::string_view::npos;

// tchar (RFC 9110 §5.6.2).
constexpr std::array<bool, 256> kTchar = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = t[c - 'a' + 'A'] = true;
  for (const char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();
bool is_tchar(char c) noexcept { return kTchar[static_cast<unsigned char>(c)]; }
bool is_token(std::string_view s) noexcept {
  for (const char c : s)
    if (!is_tchar(c)) return false;
  return !s.empty();
}
bool is_ctl(char c) noexcept { return static_cast<unsigned char>(c) < 0x20 || c == 0x7F; }  // CTL and DEL
bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

#if defined(__SSE2__)
// Per byte of `v`, 0xFF where it is a letter, digit or '-': what field names nearly always consist of.
inline __m128i name_bytes(__m128i v) noexcept {
  // x in [lo, lo + n) ⇔ (signed) (x + 0x80 - lo) < -0x80 + n, all bytes wrapping.
  const auto in_range = [](__m128i x, char lo, char n) {
    return _mm_cmplt_epi8(_mm_add_epi8(x, _mm_set1_epi8(static_cast<char>(0x80 - lo))),
                          _mm_set1_epi8(static_cast<char>(-0x80 + n)));
  };
  return _mm_or_si128(_mm_or_si128(in_range(_mm_or_si128(v, _mm_set1_epi8(0x20)), 'a', 26), in_range(v, '0', 10)),
                      _mm_cmpeq_epi8(v, _mm_set1_epi8('-')));
}
// Per byte of `v`, 0xFF where it is a control (below 0x20: TAB, CR, LF, ...) or DEL; not obs-text (0x80-0xFF).
inline __m128i ctl_bytes(__m128i v) noexcept {
  // Unsigned v <= 0x1F ⇔ min(v, 0x1F) == v.
  return _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1F)), v), _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7F)));
}
inline unsigned mask(__m128i v) noexcept { return static_cast<unsigned>(_mm_movemask_epi8(v)); }
inline __m128i load16(const char* p) noexcept { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
#endif

// The scans below stop at the end of their line at the latest (its CR is a control byte, and not a tchar),
// or at `end`, the end of the fed data; SSE2 loads stay below `end`.

// The first index in [i, end) whose byte is a control (TAB, CR, LF and the rest below 0x20) or DEL, or `end`.
// Field values and the reason phrase are mostly printable: with SSE2, 16 bytes a step.
[[gnu::always_inline]] inline std::size_t find_ctl(const char* p, std::size_t i, std::size_t end) noexcept {
#if defined(__SSE2__)
  for (; i + 16 <= end; i += 16)
    if (const unsigned m = mask(ctl_bytes(load16(p + i)))) return i + static_cast<std::size_t>(__builtin_ctz(m));
#endif
  while (i < end && !is_ctl(p[i])) ++i;
  return i;
}

// The first index from i whose byte is not a tchar (RFC 9110 §5.6.2): letters, digits and '-' go 16 a step
// with SSE2, the rarer tchars byte by byte.
[[gnu::always_inline]] inline std::size_t find_non_tchar(const char* p, std::size_t i, std::size_t end) noexcept {
#if defined(__SSE2__)
  for (; i + 16 <= end; i += 16) {
    if (const unsigned m = ~mask(name_bytes(load16(p + i))) & 0xFFFF) {
      i += static_cast<std::size_t>(__builtin_ctz(m));
      break;
    }
  }
#endif
  while (i < end && is_tchar(p[i])) ++i;
  return i;
}

// From i to the CRLF ending the line, every byte a VCHAR, obs-text, SP or HTAB (field-value, RFC 9110 §5.5;
// reason-phrase, RFC 9112 §4): the index of the CR, or npos at any other control byte or DEL, or at `end`.
[[gnu::always_inline]] inline std::size_t text_to_cr(const char* p, std::size_t i, std::size_t end) noexcept {
  for (;; ++i) {
    i = find_ctl(p, i, end);
    if (i + 1 >= end) return npos;
    if (p[i] != '\t') return p[i] == '\r' && p[i + 1] == '\n' ? i : npos;
  }
}

// field-line = field-name ":" OWS field-value OWS CRLF (RFC 9112 §5; no whitespace before the colon, §5.1).
// Returns the index after the CRLF, or npos if the line is malformed.
[[gnu::always_inline]] inline std::size_t parse_field_line(const char* p, std::size_t i, std::size_t end,
                                                          Header& f) noexcept {
  const std::size_t name = i;
  i = find_non_tchar(p, i, end);
  if (i == name || i == end || p[i] != ':') return npos;
  f.name = {p + name, i - name};
  ++i;
  while (i < end && is_ows(p[i])) ++i;
  const std::size_t value = i, cr = text_to_cr(p, i, end);
  if (cr == npos) return npos;
  std::size_t last = cr;
  while (last > value && is_ows(p[last - 1])) --last;
  f.value = {p + value, last - value};
  return cr + 2;
}

// The usual field line at i in one 16-byte step: a name of letters, digits and '-' with its colon within
// those 16 bytes, at most one SP after the colon, and a value free of controls and of trailing whitespace up
// to its CRLF. Returns the index after the CRLF, or npos for any other line: parse_field_line then reads it
// (and says whether it is malformed).
[[gnu::always_inline]] inline std::size_t quick_field_line(const char* p, std::size_t i, std::size_t end,
                                                          Header& f) noexcept {
#if defined(__SSE2__)
  if (i + 16 > end) return npos;
  const __m128i v = load16(p + i);
  const unsigned len = static_cast<unsigned>(__builtin_ctz(mask(_mm_cmpeq_epi8(v, _mm_set1_epi8(':'))) | 0x8000));
  const unsigned name = (1u << len) - 1;
  if (len == 0 || len == 15 || (mask(name_bytes(v)) & name) != name) return npos;
  std::size_t value = i + len + 1;
  value += p[value] == ' ';
  // The first control byte from the value on: in these 16 bytes, or further on. It must be the CR of CRLF.
  const unsigned ctl = mask(ctl_bytes(v)) & (0xFFFFu << (value - i));
  const std::size_t cr = ctl ? i + static_cast<std::size_t>(__builtin_ctz(ctl)) : find_ctl(p, i + 16, end);
  if (cr + 1 >= end || p[cr] != '\r' || p[cr + 1] != '\n' || (cr > value && (p[value] == ' ' || p[cr - 1] == ' ')))
    return npos;
  f = {{p + i, len}, {p + value, cr - value}};
  return cr + 2;
#else
  return npos;
#endif
}

// status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF (RFC 9112 §4): HTTP/1.0 or HTTP/1.1,
// a status code 100-599 (RFC 9110 §15), the second SP required. Returns the index after the CRLF, or npos.
std::size_t parse_status_line(const char* p, std::size_t end, ResponseHead& h) noexcept {
  const auto digit = [&](std::size_t i) { return static_cast<unsigned>(p[i] - '0'); };
  if (end < 15 || std::memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') || p[8] != ' ' ||
      digit(9) > 9 || digit(10) > 9 || digit(11) > 9 || p[12] != ' ')
    return npos;
  const unsigned status = digit(9) * 100 + digit(10) * 10 + digit(11);
  if (status < 100 || status > 599) return npos;
  const std::size_t cr = text_to_cr(p, 13, end);
  if (cr == npos) return npos;
  h.version = p[7] == '1' ? 11 : 10;
  h.status = status;
  h.reason = {p + 13, cr - 13};  // kept as sent, spaces included
  return cr + 2;
}

// Visits each element of a comma-separated list (RFC 9110 §5.6.1), OWS-trimmed, empty ones included; stops
// and returns false as soon as `visit` does.
template <class Visit>
bool for_each_element(std::string_view v, Visit visit) {
  for (;;) {
    std::size_t comma = 0;  // list values are short: a loop beats a call to memchr
    while (comma < v.size() && v[comma] != ',') ++comma;
    if (!visit(trim(v.substr(0, comma)))) return false;
    if (comma == v.size()) return true;
    v.remove_prefix(comma + 1);
  }
}

// Whether `s` (a field name or value: no CR in it) equals `lower`, lowercase letters and '-', ignoring case.
// OR 0x20 maps only A-Z onto a-z, and only CR (0x0D) besides '-' onto '-': 8 bytes compare at once, the
// last 8 overlapping the previous ones.
[[gnu::always_inline]] inline bool equals_lower(std::string_view s, std::string_view lower) noexcept {
  const std::size_t n = s.size();
  if (n != lower.size()) return false;
  const auto same8 = [&](std::size_t i) {
    std::uint64_t a, b;
    std::memcpy(&a, s.data() + i, 8);
    std::memcpy(&b, lower.data() + i, 8);
    return (a | 0x2020202020202020u) == b;
  };
  if (n < 8) {
    for (std::size_t i = 0; i < n; ++i)
      if ((s[i] | 0x20) != lower[i]) return false;
    return true;
  }
  for (std::size_t i = 0; i + 8 < n; i += 8)
    if (!same8(i)) return false;
  return same8(n - 8);
}

enum class Kind : std::uint8_t { other, connection, content_length, transfer_encoding };
[[gnu::always_inline]] inline Kind kind_of(std::string_view name) noexcept {
  switch (name.size()) {
    case 10: return equals_lower(name, "connection") ? Kind::connection : Kind::other;
    case 14: return equals_lower(name, "content-length") ? Kind::content_length : Kind::other;
    // Proxy-Connection, a pre-standard alias some origins still send, is read as Connection.
    case 16: return equals_lower(name, "proxy-connection") ? Kind::connection : Kind::other;
    case 17: return equals_lower(name, "transfer-encoding") ? Kind::transfer_encoding : Kind::other;
    default: return Kind::other;
  }
}

// Connection = #connection-option, a token (RFC 9110 §7.6.1). False if an element is not a token.
bool read_connection(std::string_view v, bool& close, bool& keep_alive) noexcept {
  return for_each_element(v, [&](std::string_view e) {
    if (e.empty()) return true;
    if (!is_token(e)) return false;
    close = close || iequals(e, "close");
    keep_alive = keep_alive || iequals(e, "keep-alive");
    return true;
  });
}

// Content-Length = 1*DIGIT (RFC 9110 §8.6). A list of one repeated value (duplicates an intermediary
// merged) counts as that value; another value than an earlier one (in this field or a previous one) is
// `differs`. An element that is not a token, no value or an empty element make the field `bad`; otherwise
// the first offending element in order decides between `bad` (not a number) and `differs`.
enum class Length : std::uint8_t { ok, bad, differs };
Length read_content_length(std::string_view v, std::optional<std::uint64_t>& length) noexcept {
  Length first = Length::ok;
  bool any = false, empty = false;
  const bool tokens = for_each_element(v, [&](std::string_view e) {
    if (e.empty()) {
      empty = true;
      return true;
    }
    if (!is_token(e)) return false;
    any = true;
    if (first != Length::ok) return true;
    std::uint64_t n = 0;
    for (const char c : e) {
      const unsigned d = static_cast<unsigned>(c - '0');
      if (d > 9 || n > (UINT64_MAX - d) / 10) {  // not a number, or over 2^64 - 1
        first = Length::bad;
        return true;
      }
      n = n * 10 + d;
    }
    if (length && *length != n)
      first = Length::differs;
    else
      length = n;
    return true;
  });
  if (!tokens || !any) return Length::bad;
  if (first != Length::ok) return first;
  return empty ? Length::bad : Length::ok;
}

// Transfer-Encoding = #transfer-coding, transfer-coding = token *( OWS ";" OWS transfer-parameter )
// (RFC 9112 §6.1), over all the message's Transfer-Encoding fields: chunked at most once, and last.
struct Codings {
  bool seen = false;            // a Transfer-Encoding field was accepted
  bool chunked_named = false;   // chunked appears in some field
  bool chunked_last = false;    // the latest field's last coding is chunked
  // What a reader that stops at the first parameterised coding sees as the latest field's last coding
  // (Boost.Beast, which this codec replaced, reads lists so): where it and `chunked_last` disagree, two
  // parsers on the path disagree on the framing, so the head is refused (unknown_transfer_encoding); and a
  // Transfer-Encoding field after one it reads as ending in chunked is conflicting_framing.
  bool chunked_last_prefix = false;

  ResponseError add(std::string_view v) noexcept {
    bool any = false, last = false, prefix = false, prefix_done = false;
    ResponseError err = ResponseError::none;
    for_each_element(v, [&](std::string_view e) {
      if (e.empty()) return true;  // RFC 9110 §5.6.1: empty list elements are ignored
      const std::size_t semi = e.find(';');
      const std::string_view coding = trim(e.substr(0, semi));
      const bool chunked = iequals(coding, "chunked");
      if (!is_token(coding) || (chunked && chunked_named)) {
        err = chunked ? ResponseError::conflicting_framing : ResponseError::unknown_transfer_encoding;
        return false;
      }
      chunked_named = chunked_named || chunked;
      any = true;
      last = chunked;
      if (!prefix_done) {
        prefix = chunked;
        prefix_done = semi != npos;
      }
      return true;
    });
    // A Transfer-Encoding naming no coding leaves the framing unknowable: refuse it.
    if (err == ResponseError::none && !any) err = ResponseError::unknown_transfer_encoding;
    seen = true;
    chunked_last = last;
    chunked_last_prefix = prefix;
    return err;
  }
};

// What the framing fields of a header section say (RFC 9112 §6.3, §9.3).
struct Framing {
  std::optional<std::uint64_t> length;
  Codings codings;
  bool close = false, keep_alive = false;

  // One Connection, Content-Length or Transfer-Encoding field, checked in the order the codec has always
  // applied: the field's own value, then whether there is `room` for one more field (too_many_headers), then
  // how it combines with earlier fields. The usual values inline, the rest out of line.
  [[gnu::always_inline]] ResponseError field(Kind kind, std::string_view v, bool room) noexcept {
    if (kind == Kind::connection) {
      if (equals_lower(v, "keep-alive")) {
        keep_alive = true;
        return room ? ResponseError::none : ResponseError::too_many_headers;
      }
    } else if (kind == Kind::transfer_encoding) {
      if (room && !codings.seen && !length && equals_lower(v, "chunked")) {
        codings.seen = codings.chunked_named = codings.chunked_last = codings.chunked_last_prefix = true;
        return ResponseError::none;
      }
    } else if (kind == Kind::content_length && room && !codings.seen && !v.empty() && v.size() < 20) {
      std::uint64_t n = 0;  // up to 19 digits: below 2^64
      std::size_t i = 0;
      for (; i < v.size() && static_cast<unsigned>(v[i] - '0') <= 9; ++i) n = n * 10 + static_cast<unsigned>(v[i] - '0');
      if (i == v.size() && (!length || *length == n)) {
        length = n;
        return ResponseError::none;
      }
    }
    return field_slow(kind, v, room);
  }

  [[gnu::noinline]] ResponseError field_slow(Kind kind, std::string_view v, bool room) noexcept {
    switch (kind) {
      case Kind::connection:
        if (!read_connection(v, close, keep_alive)) return ResponseError::bad_header;
        return room ? ResponseError::none : ResponseError::too_many_headers;
      case Kind::content_length:
        // RFC 9112 §6.1: Content-Length with Transfer-Encoding is an attack signature (§11.1).
        if (codings.chunked_last_prefix) return ResponseError::conflicting_framing;
        if (const Length r = read_content_length(v, length); r != Length::ok)
          return r == Length::differs || codings.seen ? ResponseError::conflicting_framing
                                                      : ResponseError::bad_content_length;
        if (!room) return ResponseError::too_many_headers;
        return codings.seen ? ResponseError::conflicting_framing : ResponseError::none;
      case Kind::transfer_encoding:
        if (codings.chunked_last_prefix || length) return ResponseError::conflicting_framing;
        if (!room) return ResponseError::too_many_headers;
        return codings.add(v);
      case Kind::other:
        break;
    }
    return room ? ResponseError::none : ResponseError::too_many_headers;
  }
};

// chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ), chunk-ext-val = token /
// quoted-string (RFC 9112 §7.1.1, RFC 9110 §5.6.4): validated, then ignored.
bool chunk_extensions_ok(std::string_view s) noexcept {
  std::size_t i = 0;
  const auto bws = [&](std::size_t j) {
    while (j < s.size() && is_ows(s[j])) ++j;
    return j;
  };
  const auto token = [&] {
    const std::size_t start = i;
    while (i < s.size() && is_tchar(s[i])) ++i;
    return i > start;
  };
  while (i < s.size()) {
    i = bws(i);
    if (i == s.size() || s[i] != ';') return false;
    i = bws(i + 1);
    if (!token()) return false;
    if (const std::size_t eq = bws(i); eq < s.size() && s[eq] == '=') {
      i = bws(eq + 1);
      if (i < s.size() && s[i] == '"') {
        for (++i;; ++i) {  // qdtext / quoted-pair: any byte but a control other than HTAB
          if (i == s.size()) return false;
          if (s[i] == '"') break;
          if (s[i] == '\\' && ++i == s.size()) return false;
          if (is_ctl(s[i]) && s[i] != '\t') return false;
        }
        ++i;
      } else if (!token()) {
        return false;
      }
    }
  }
  return true;
}

// chunk-size [ chunk-ext ] (RFC 9112 §7.1): the size, or none if malformed or over 2^64 - 1.
std::optional<std::uint64_t> parse_chunk_line(std::string_view s) noexcept {
  std::uint64_t size = 0;
  std::size_t i = 0;
  for (; i < s.size(); ++i) {
    const char c = s[i], l = static_cast<char>(c | 0x20);
    const int d = c >= '0' && c <= '9' ? c - '0' : l >= 'a' && l <= 'f' ? l - 'a' + 10 : -1;
    if (d < 0) break;
    if (size >> 60) return std::nullopt;
    size = size << 4 | static_cast<unsigned>(d);
  }
  if (i == 0 || !chunk_extensions_ok(s.substr(i))) return std::nullopt;
  return size;
}

// A trailer field (RFC 9112 §7.1.2) must be well-formed, and may not carry framing (RFC 9110 §6.5.1):
// Content-Length or Transfer-Encoding there is refused. `line` is followed by its CRLF in memory; `f` gets
// the field's name and value (views into `line`).
bool trailer_ok(std::string_view line, Header& f) noexcept {
  if (parse_field_line(line.data(), 0, line.size() + 2, f) == npos) return false;
  bool close = false, keep_alive = false;
  switch (kind_of(f.name)) {
    case Kind::connection: return read_connection(f.value, close, keep_alive);
    case Kind::other: return true;
    default: return false;
  }
}

constexpr std::array<std::string_view, 10> kErrorNames{
    "none",     "header_too_large", "too_many_headers", "bad_status_line",           "bad_header",
    "conflicting_framing", "bad_content_length", "bad_chunk", "unknown_transfer_encoding", "truncated",
};
static_assert(kErrorNames.size() == static_cast<std::size_t>(ResponseError::truncated) + 1);

const ResponseHead kNoHead{};

}  // namespace

std::string_view to_string(ResponseError e) noexcept { return kErrorNames[static_cast<std::size_t>(e)]; }

std::string_view ResponseHead::header(std::string_view name) const noexcept {
  for (const Header& h : headers)
    if (iequals(h.name, name)) return h.value;
  return {};
}

struct H1ResponseParser::Impl {
  enum class State : std::uint8_t {
    head,         // the header section is being received
    length,       // Content-Length body: `remaining` bytes to come
    until_close,  // the body runs to EOF
    chunk_line,   // chunk-size [ chunk-ext ] CRLF
    chunk_data,   // `remaining` bytes of chunk-data
    chunk_crlf,   // the CRLF after chunk-data
    trailers,     // after the last-chunk line: trailer fields up to the empty line
    complete,
  };

  explicit Impl(H1ResponseLimits l) : lim(l) {}
  H1ResponseLimits lim;
  ResponseHead head;
  HeaderArray fields;
  ResponseError error = ResponseError::none;
  std::string_view body;
  std::uint64_t body_bytes = 0;
  std::uint64_t remaining = 0;
  std::size_t line_scanned = 0;  // bytes of the pending chunk or trailer line already searched for its CR
  std::size_t section = 0;       // bytes of the last-chunk line and trailer section consumed
  detail::HeadScanState scan;
  bool scanning = false;         // this head goes through the pre-scan (see feed)
  State state = State::head;
  bool head_request = false;
  bool started = false;
  // The trailer section's fields, copied (their lines are consumed one feed at a time): names and values back
  // to back in `trailer_text` (bounded with the section by max_header_bytes), their places in `trailer_at`,
  // turned into views in `trailer_fields` once the message is complete. Empty unless a response has trailers;
  // cleared, not freed, per response.
  struct TrailerAt {
    std::uint32_t name, name_len, value, value_len;
  };
  std::string trailer_text;
  std::vector<TrailerAt> trailer_at;
  std::vector<Header> trailer_fields;

  // Everything in place: no allocation once the Impl exists.
  void reset(bool keep_head_request) {
    head = ResponseHead{};
    error = ResponseError::none;
    body = {};
    body_bytes = remaining = 0;
    line_scanned = section = 0;
    scan = detail::HeadScanState{};
    scanning = false;
    state = State::head;
    head_request = keep_head_request && head_request;
    started = false;
    trailer_text.clear();
    trailer_at.clear();
    trailer_fields.clear();
  }

  // Keeps one trailer field; false when there are more than max_headers.
  bool keep_trailer(const Header& f) {
    if (trailer_at.size() >= std::min(lim.max_headers, kMaxHeaderArray)) return false;
    const auto at = static_cast<std::uint32_t>(trailer_text.size());
    trailer_text.append(f.name).append(f.value);
    trailer_at.push_back({at, static_cast<std::uint32_t>(f.name.size()), at + static_cast<std::uint32_t>(f.name.size()),
                          static_cast<std::uint32_t>(f.value.size())});
    return true;
  }
  void seal_trailers() {
    trailer_fields.clear();
    const std::string_view t(trailer_text);
    for (const TrailerAt& a : trailer_at)
      trailer_fields.push_back({t.substr(a.name, a.name_len), t.substr(a.value, a.value_len)});
  }

  Result fail(ResponseError e, std::size_t consumed) {
    error = e;
    return {Event::error, consumed};
  }

  // Parses the header section at the start of `d`, through the empty line that ends it (RFC 9112 §2.1), into
  // `head` and the framing state; `head_end` is where it ends. A head the pre-scan passed parses whole; on
  // raw data an incomplete head is an error too. Bytes after the section (often the body) only let the
  // 16-byte steps run further.
  ResponseError parse_head(std::string_view d, std::size_t& head_end) {
    const char* p = d.data();
    const std::size_t end = d.size();
    std::size_t i = parse_status_line(p, end, head);
    if (i == npos) return ResponseError::bad_status_line;
    const std::size_t max_fields = std::min(lim.max_headers, kMaxHeaderArray);
    std::size_t n = 0;
    Framing fr;
    for (;;) {
      if (i + 1 >= end) return ResponseError::bad_header;  // incomplete: only on raw data
      if (p[i] == '\r') break;
      Header& f = fields[n];  // parsed in place; the spare last slot takes one field over any limit
      const std::size_t line = i;
      i = quick_field_line(p, line, end, f);
      if (i == npos) i = parse_field_line(p, line, end, f);
      if (i == npos) return ResponseError::bad_header;
      if (const Kind kind = kind_of(f.name); kind != Kind::other) {
        if (const ResponseError e = fr.field(kind, f.value, n < max_fields); e != ResponseError::none) return e;
      } else if (n == max_fields) {
        return ResponseError::too_many_headers;
      }
      ++n;
    }
    if (p[i + 1] != '\n') return ResponseError::bad_header;  // a bare CR: only on raw data
    head_end = i + 2;
    if (head_end > lim.max_header_bytes) return ResponseError::header_too_large;  // only on raw data
    head.headers = std::span<const Header>(fields.data(), n);
    if (fr.codings.seen) {
      // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
      if (head.version == 10) return ResponseError::conflicting_framing;
      if (fr.codings.chunked_last != fr.codings.chunked_last_prefix) return ResponseError::unknown_transfer_encoding;
    }
    const unsigned s = head.status;
    // RFC 9112 §6.3 rule 1: 1xx, 204, 304 and the answer to HEAD (RFC 9110 §9.3.2) end at the header section.
    head.no_body = head_request || s / 100 == 1 || s == 204 || s == 304;
    if (head.no_body) {
      state = State::complete;
    } else if (fr.codings.chunked_last) {  // rule 4: chunked is the final coding
      head.chunked = true;
      state = State::chunk_line;
    } else if (fr.length) {  // rule 6
      head.content_length = remaining = *fr.length;
      state = remaining > 0 ? State::length : State::complete;
    } else {  // rule 4 (another final coding) and rule 8: read until the upstream closes
      head.until_close = true;
      state = State::until_close;
    }
    // RFC 9112 §9.3: persistent in HTTP/1.1 unless `close`, in 1.0 only with `keep-alive`; never when the
    // body ends at EOF. After 101 the connection carries another protocol and never returns to a pool.
    head.keep_alive = (head.version == 11 ? !fr.close : fr.keep_alive) && !head.until_close && s != 101;
    return ResponseError::none;
  }

  // The line at d[pos...] up to its CRLF (excluded), if all here. `budget` bounds it, CRLF included.
  enum class LineKind : std::uint8_t { need_more, ok, bad };
  LineKind take_line(std::string_view d, std::size_t pos, std::size_t budget, std::string_view& line) {
    const char* s = d.data() + pos;
    const std::size_t avail = d.size() - pos;
    const void* cr = line_scanned < avail ? std::memchr(s + line_scanned, '\r', avail - line_scanned) : nullptr;
    if (cr == nullptr) {
      line_scanned = avail;  // resume there: a dripped line costs O(n)
      return avail + 2 > budget ? LineKind::bad : LineKind::need_more;
    }
    const std::size_t c = static_cast<std::size_t>(static_cast<const char*>(cr) - s);
    if (c + 2 > budget) return LineKind::bad;
    if (c + 1 == avail) {
      line_scanned = c;
      return LineKind::need_more;
    }
    if (s[c + 1] != '\n') return LineKind::bad;  // a bare CR (RFC 9112 §2.2)
    line_scanned = 0;
    line = {s, c};
    return LineKind::ok;
  }

  // One body step after another until one yields body bytes, the message completes, or more input is needed.
  Result feed_body(std::string_view d) {
    std::size_t pos = 0;
    for (;;) {
      switch (state) {
        case State::head:  // not reached: feed() parses the head
        case State::complete:
          return {Event::complete, pos};
        case State::until_close:  // RFC 9112 §6.3 rule 8
          if (pos == d.size()) return {Event::need_more, pos};
          return give_body(d.substr(pos), d.size());
        case State::length:
        case State::chunk_data: {
          if (pos == d.size()) return {Event::need_more, pos};
          const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, d.size() - pos));
          remaining -= n;
          if (remaining == 0) state = state == State::length ? State::complete : State::chunk_crlf;
          return give_body(d.substr(pos, n), pos + n);
        }
        case State::chunk_crlf:  // chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF (RFC 9112 §7.1)
          if (pos < d.size() && d[pos] != '\r') return fail(ResponseError::bad_chunk, pos);
          if (d.size() - pos < 2) return {Event::need_more, pos};
          if (d[pos + 1] != '\n') return fail(ResponseError::bad_chunk, pos);
          pos += 2;
          state = State::chunk_line;
          break;
        case State::chunk_line: {
          std::string_view line;
          const LineKind k = take_line(d, pos, lim.max_header_bytes, line);
          if (k == LineKind::need_more) return {Event::need_more, pos};
          const std::optional<std::uint64_t> size = k == LineKind::ok ? parse_chunk_line(line) : std::nullopt;
          if (!size) return fail(ResponseError::bad_chunk, pos);
          pos += line.size() + 2;
          remaining = *size;
          section = line.size() + 2;  // the last-chunk line counts towards the trailer section's bound
          state = remaining > 0 ? State::chunk_data : State::trailers;
          break;
        }
        case State::trailers: {
          std::string_view line;
          const std::size_t budget = lim.max_header_bytes - std::min(section, lim.max_header_bytes);
          const LineKind k = take_line(d, pos, budget, line);
          if (k == LineKind::need_more) return {Event::need_more, pos};
          Header f;
          if (k == LineKind::bad || !(line.empty() || trailer_ok(line, f))) return fail(ResponseError::bad_chunk, pos);
          if (!line.empty() && !keep_trailer(f)) return fail(ResponseError::too_many_headers, pos);
          pos += line.size() + 2;
          section += line.size() + 2;
          if (line.empty()) {
            seal_trailers();
            state = State::complete;
            return {Event::complete, pos};
          }
          break;
        }
      }
    }
  }

  Result give_body(std::string_view b, std::size_t consumed) {
    body = b;
    body_bytes += b.size();
    return {Event::body, consumed};
  }
};

H1ResponseParser::H1ResponseParser(H1ResponseLimits limits) : impl_(std::make_unique<Impl>(limits)) {}
H1ResponseParser::~H1ResponseParser() = default;
H1ResponseParser::H1ResponseParser(H1ResponseParser&&) noexcept = default;
H1ResponseParser& H1ResponseParser::operator=(H1ResponseParser&&) noexcept = default;

void H1ResponseParser::set_head_request(bool head) noexcept {
  assert(impl_ && "moved-from parser");
  impl_->head_request = head;
}

H1ResponseParser::Result H1ResponseParser::feed(std::string_view data) {
  assert(impl_ && "moved-from parser");
  Impl& m = *impl_;
  if (m.error != ResponseError::none) return {Event::error, 0};
  if (m.state != Impl::State::head) return m.feed_body(data);
  if (data.empty()) return {Event::need_more, 0};
  m.started = true;
  std::size_t end = 0;
  // The whole head is usually in the first read, and then one strict pass suffices: it refuses all the
  // pre-scan refuses. Anything else, an incomplete head or any fault, goes through the resumable pre-scan,
  // which also decides which fault is reported; the head is parsed once it is complete.
  if (m.scanning || m.parse_head(data, end) != ResponseError::none) {
    if (!m.scanning) m.head = ResponseHead{};
    m.scanning = true;
    const detail::HeadScan s = detail::scan_head(data, m.lim.max_header_bytes, m.lim.max_header_bytes, m.scan);
    if (s.kind == detail::HeadScan::need_more) return {Event::need_more, 0};
    if (s.kind == detail::HeadScan::error)
      return m.fail(s.fault == detail::HeadScan::Fault::too_large ? ResponseError::header_too_large
                                                                   : ResponseError::bad_header, 0);
    if (const ResponseError e = m.parse_head(data, end); e != ResponseError::none) return m.fail(e, 0);
    assert(end == s.end);
  }
  // The body, or after a 1xx the next response, or after a 101 the tunnelled bytes, stay unconsumed.
  m.head.head_bytes = end;
  return {Event::head, end};
}

H1ResponseParser::Result H1ResponseParser::feed_eof() {
  assert(impl_ && "moved-from parser");
  Impl& m = *impl_;
  if (m.error != ResponseError::none) return {Event::error, 0};
  // Nothing in progress (no byte of a response fed, or the last one complete): a clean close.
  if (!m.started || m.state == Impl::State::complete) return {Event::need_more, 0};
  // RFC 9112 §6.3 rule 8: EOF ends a close-delimited body; any other message is incomplete (RFC 9112 §8).
  if (m.state != Impl::State::until_close) return m.fail(ResponseError::truncated, 0);
  m.state = Impl::State::complete;
  return {Event::complete, 0};
}

void H1ResponseParser::next() {
  assert(impl_ && "moved-from parser");
  // RFC 9110 §15.2: after a 1xx interim response the final response answers the same request.
  const unsigned s = impl_->state != Impl::State::head ? impl_->head.status : 0;
  impl_->reset(s / 100 == 1 && s != 101);
}

const ResponseHead& H1ResponseParser::head() const noexcept { return impl_ ? impl_->head : kNoHead; }
std::string_view H1ResponseParser::body() const noexcept { return impl_ ? impl_->body : std::string_view{}; }
ResponseError H1ResponseParser::error() const noexcept { return impl_ ? impl_->error : ResponseError::none; }
bool H1ResponseParser::in_message() const noexcept {
  return impl_ && impl_->started && impl_->state != Impl::State::complete;
}
bool H1ResponseParser::body_started() const noexcept { return impl_ && impl_->body_bytes > 0; }
std::span<const Header> H1ResponseParser::trailers() const noexcept {
  if (!impl_ || impl_->state != Impl::State::complete) return {};
  return impl_->trailer_fields;
}

}  // namespace virex::http
