// Sampling decisions (pure) and the exporter options taken from config. The exporter itself is otlp_exporter.cpp.
#include <virex/observe/tracing.hpp>

namespace virex::observe {
namespace {

constexpr double kTwoTo56 = 72057594037927936.0;  // 2^56, exact in a double

// The trace id's rightmost 7 bytes, big-endian: the part W3C Trace Context Level 2 requires to be random.
std::uint64_t randomness(const TraceContext& ctx) noexcept {
  std::uint64_t r = 0;
  for (std::size_t i = 9; i < 16; ++i) r = r << 8 | ctx.trace_id[i];
  return r;
}

}  // namespace

SamplingPolicy sampling_policy(const config::Tracing& tracing) noexcept {
  return SamplingPolicy{tracing.sample_ratio, tracing.slow_threshold};
}

bool head_sample(const TraceContext& ctx, bool has_parent, const SamplingPolicy& policy) noexcept {
  if (has_parent && (ctx.flags & 0x01) != 0) return true;  // W3C trace-flags bit 0: the caller sampled
  if (!(policy.ratio > 0)) return false;                    // 0, negative or NaN: none by ratio
  if (policy.ratio >= 1) return true;
  // OpenTelemetry consistent probability sampling: keep when R >= T, T = (1 - p) · 2^56. Any node (or SDK) with
  // the same ratio keeps the same traces, and a trace kept at p is kept at every ratio above p.
  const auto threshold = static_cast<std::uint64_t>((1.0 - policy.ratio) * kTwoTo56);
  return randomness(ctx) >= threshold;
}

bool sample(const TraceContext& ctx, bool has_parent, unsigned status, bool error, std::chrono::nanoseconds duration,
            const SamplingPolicy& policy) noexcept {
  if (error || status >= 500) return true;
  if (policy.slow_threshold > std::chrono::nanoseconds::zero() && duration >= policy.slow_threshold) return true;
  return head_sample(ctx, has_parent, policy);
}

ExporterOptions exporter_options(const config::Tracing& tracing, std::string_view node, std::string_view region) {
  ExporterOptions options;
  options.endpoint = tracing.otlp_endpoint;
  // OpenTelemetry resource semantic conventions: service.name, service.instance.id, cloud.region.
  options.resource = {{"service.name", tracing.service_name}};
  if (!node.empty()) options.resource.emplace_back("service.instance.id", std::string(node));
  if (!region.empty()) options.resource.emplace_back("cloud.region", std::string(region));
  return options;
}

}  // namespace virex::observe
