// W3C Trace Context (https://www.w3.org/TR/trace-context/): parsing `traceparent` and making new trace ids.
// Pure and allocation-free; a TraceIdGenerator belongs to one thread (a worker).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace virex::observe {

struct TraceContext {
  std::array<std::uint8_t, 16> trace_id{};
  std::array<std::uint8_t, 8> parent_id{};
  std::uint8_t flags = 0;   // bit 0: sampled
};

// Parses a `traceparent` value. Returns nullopt for anything malformed (which the caller ignores, never an
// error): version 00 must be exactly "00-<32 hex>-<16 hex>-<2 hex>"; a higher version may carry more fields
// after the fourth ("-…"), version ff is invalid; hex must be lower-case; all-zero ids are invalid (§3.2.2).
std::optional<TraceContext> parse_traceparent(std::string_view value) noexcept;

// 32 lower-case hex characters.
void format_trace_id(const TraceContext& c, char out[32]) noexcept;

// New random trace ids (xoshiro256**, seeded once from the OS).
class TraceIdGenerator {
 public:
  TraceIdGenerator();
  TraceContext next() noexcept;

 private:
  std::uint64_t s_[4];
};

}  // namespace virex::observe
