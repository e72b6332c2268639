// W3C Trace Context parsing (§3.2 traceparent header) and trace id generation.
#include <virex/observe/trace_context.hpp>

#include <random>

namespace virex::observe {
namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // upper-case hex is invalid in traceparent (§3.2.2.1)
}

template <std::size_t N>
bool parse_hex(std::string_view s, std::array<std::uint8_t, N>& out) noexcept {
  if (s.size() != 2 * N) return false;
  bool nonzero = false;
  for (std::size_t i = 0; i < N; ++i) {
    const int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    nonzero |= out[i] != 0;
  }
  return nonzero;
}

std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }

}  // namespace

std::optional<TraceContext> parse_traceparent(std::string_view v) noexcept {
  // Leading/trailing optional whitespace is part of the header field syntax, not of the value.
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (v.size() < 55) return std::nullopt;
  const int vh = hex_value(v[0]), vl = hex_value(v[1]);
  if (vh < 0 || vl < 0 || v[2] != '-' || v[35] != '-' || v[52] != '-') return std::nullopt;
  const int version = vh << 4 | vl;
  if (version == 0xff) return std::nullopt;
  if (version == 0 && v.size() != 55) return std::nullopt;
  if (version > 0 && v.size() > 55 && v[55] != '-') return std::nullopt;  // future versions may add fields
  TraceContext c;
  if (!parse_hex(v.substr(3, 32), c.trace_id) || !parse_hex(v.substr(36, 16), c.parent_id)) return std::nullopt;
  const int fh = hex_value(v[53]), fl = hex_value(v[54]);
  if (fh < 0 || fl < 0) return std::nullopt;
  c.flags = static_cast<std::uint8_t>(fh << 4 | fl);
  return c;
}

void format_trace_id(const TraceContext& c, char out[32]) noexcept {
  static constexpr char kHex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < 16; ++i) {
    out[2 * i] = kHex[c.trace_id[i] >> 4];
    out[2 * i + 1] = kHex[c.trace_id[i] & 15];
  }
}

TraceIdGenerator::TraceIdGenerator() {
  std::random_device rd;
  for (auto& w : s_) w = (static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^ 0x9e3779b97f4a7c15ULL;
}

TraceContext TraceIdGenerator::next() noexcept {
  TraceContext c;
  for (std::size_t half = 0; half < 3; ++half) {
    // xoshiro256** step
    const std::uint64_t r = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    auto* dst = half < 2 ? c.trace_id.data() + 8 * half : c.parent_id.data();
    for (int b = 0; b < 8; ++b) dst[b] = static_cast<std::uint8_t>(r >> (8 * b));
  }
  if (c.trace_id == std::array<std::uint8_t, 16>{}) c.trace_id[15] = 1;  // all-zero ids are invalid
  if (c.parent_id == std::array<std::uint8_t, 8>{}) c.parent_id[7] = 1;
  return c;
}

}  // namespace virex::observe
