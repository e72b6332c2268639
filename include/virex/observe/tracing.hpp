// Trace export: the Span a request stage produces, the sampling decision, and SpanExporter, which ships sampled
// spans to an OTLP/gRPC collector from its own thread. Workers build Spans and submit() them without waiting;
// the exporter thread batches, encodes and sends. Protobuf, gRPC and Asio stay out of this header (they live in
// src/observe/otlp_*). Built as the CMake target virex_trace_export, which links gRPC privately.
#pragma once

#include <virex/config/config.hpp>
#include <virex/observe/metrics.hpp>
#include <virex/observe/trace_context.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace virex::observe {

// OTLP Span.SpanKind numbers.
enum class SpanKind : std::uint8_t { internal = 1, server = 2, client = 3 };

// One finished operation, as a worker fills it in. Plain data: moved into the exporter's queue by submit().
// Strings may hold any bytes: the exporter sends them as UTF-8 (malformed bytes → U+FFFD), each cut at 4 KiB.
struct Span {
  std::array<std::uint8_t, 16> trace_id{};
  std::array<std::uint8_t, 8> span_id{};
  std::array<std::uint8_t, 8> parent_span_id{};  // all zero = a root span (sent without a parent)
  std::string name;                              // e.g. "GET api" (route name, never a raw path)
  SpanKind kind = SpanKind::internal;
  std::uint64_t start_unix_ns = 0;               // system_clock, nanoseconds since the UNIX epoch
  std::uint64_t end_unix_ns = 0;
  bool error = false;                            // status ERROR with status_message; otherwise status unset
  std::string status_message;
  std::vector<std::pair<std::string, std::string>> attributes;       // OTLP string values; keys unique
  std::vector<std::pair<std::string, std::int64_t>> int_attributes;  // OTLP int values (e.g. http.response.status_code)
};

// ---- sampling (pure; any thread) -------------------------------------------------------------------------

struct SamplingPolicy {
  double ratio = 0.01;                                                        // 0..1 of unsampled traces
  std::chrono::nanoseconds slow_threshold = std::chrono::milliseconds(500);   // <= 0: no slow rule
};

// The policy of `observability.tracing` (sample_ratio, slow_threshold).
SamplingPolicy sampling_policy(const config::Tracing& tracing) noexcept;

// Head decision, known when the request starts (e.g. to set the sampled flag sent upstream): true when the caller
// sampled the trace (`has_parent` and flags bit 0), else by ratio from the trace id's random low 56 bits
// (W3C Trace Context Level 2 §3.2.2.2: the rightmost 7 bytes are random), so every node that sees the trace
// with the same ratio decides alike: kept when those bits, read big-endian, are >= (1 - ratio) · 2^56 — the
// OpenTelemetry consistent-probability threshold.
bool head_sample(const TraceContext& ctx, bool has_parent, const SamplingPolicy& policy) noexcept;

// The final decision, at the end of the request: head_sample(), or the tail rules — an error (`error`, or
// `status` >= 500) or a slow request (`duration` >= slow_threshold) is always exported.
bool sample(const TraceContext& ctx, bool has_parent, unsigned status, bool error, std::chrono::nanoseconds duration,
            const SamplingPolicy& policy) noexcept;

// ---- export ------------------------------------------------------------------------------------------------

struct ExporterOptions {
  std::string endpoint;                          // required: "host:port" (config's canonical otlp_endpoint)
  // Resource attributes sent with every batch; service.name first. Keys unique.
  std::vector<std::pair<std::string, std::string>> resource = {{"service.name", "virex-edge"}};
  std::size_t queue_capacity = 2048;             // spans queued at most; beyond, submit() drops (queue_full)
  std::size_t max_batch = 512;                   // spans per export call; this many queued wakes the exporter
  std::chrono::milliseconds batch_interval{1000};   // a partial batch waits at most this long
  std::chrono::milliseconds export_timeout{2000};   // deadline of one export call
};

// Options from `observability.tracing` plus this node's identity: resource service.name = tracing.service_name,
// service.instance.id = `node` (the resolved node name), cloud.region = `region`.
ExporterOptions exporter_options(const config::Tracing& tracing, std::string_view node, std::string_view region);

// Owns one exporter thread (not a worker) and a gRPC channel to the collector. Created and shut down on the
// control thread; submit() from any thread. Its metrics (registered in the constructor) are written only by the
// exporter thread, into the registry's last shard (the control thread's, by convention), so there is one
// SpanExporter per Registry at a time:
//   virex_tracing_spans_exported_total                    spans the collector accepted
//   virex_tracing_spans_dropped_total{reason}             queue_full | export_failed | shutdown
//   virex_tracing_export_duration_seconds                 histogram of export calls
// Every span handed to submit() ends up in exactly one of exported or dropped.
class SpanExporter {
 public:
  // Starts the thread; connecting is lazy (the first export) and retried by gRPC with backoff, so an absent
  // collector costs dropped spans, never a failure here. Throws std::invalid_argument (control plane, start-up)
  // when options.endpoint is empty or a size or duration of `options` is not positive.
  SpanExporter(ExporterOptions options, Registry& registry);
  ~SpanExporter();  // shutdown(0ms) unless shut down already
  SpanExporter(const SpanExporter&) = delete;
  SpanExporter& operator=(const SpanExporter&) = delete;

  // Queues all of `spans` (one request's spans stay together) or none: false when they do not fit in the queue
  // (counted queue_full) or after shutdown (counted shutdown). Never waits for the exporter or the network: one
  // short critical section (an O(1) swap at most on the other side) and moves into reserved storage, no
  // allocation. `spans` is left empty with its capacity, for reuse.
  bool submit(std::vector<Span>&& spans) noexcept;

  // Stops accepting spans, exports what is queued within `flush_timeout` (export calls are cut at that deadline;
  // what is left is counted as dropped, reason shutdown) and joins the thread. Idempotent; control thread.
  void shutdown(std::chrono::milliseconds flush_timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace virex::observe
