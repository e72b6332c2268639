// SpanExporter: a bounded span queue filled by workers and drained by one exporter thread that sends OTLP/gRPC
// batches (synchronous unary calls with a deadline). Workers hold the queue mutex only to move spans into
// reserved storage; the exporter holds it only to swap the queue out, so neither the network nor a slow collector
// ever reaches a worker. The tracing metrics are written by the exporter thread alone (and by the control thread
// once it has joined that thread).
#include <virex/observe/tracing.hpp>

#include "otlp_encode.hpp"

#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"

#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

namespace virex::observe {
namespace {

using Clock = std::chrono::steady_clock;
using opentelemetry::proto::collector::trace::v1::ExportTraceServiceResponse;
using opentelemetry::proto::collector::trace::v1::TraceService;

// gRPC waits up to 120 s between reconnection attempts by default; a restarted collector should be found again
// within seconds.
constexpr int kMaxReconnectBackoffMs = 5000;

// spdlog's default logger is gone after shutdown_logging(); an exporter still flushing then logs nothing.
template <typename... Args>
void log(spdlog::level::level_enum level, spdlog::format_string_t<Args...> format, Args&&... args) {
  if (auto* logger = spdlog::default_logger_raw()) logger->log(level, format, std::forward<Args>(args)...);
}

std::uint64_t nanoseconds(Clock::duration d) {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(
      0, std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
}

}  // namespace

struct SpanExporter::Impl {
  Impl(ExporterOptions o, Registry& registry);

  void run();                                             // the exporter thread
  void export_all(std::vector<Span>& batch);
  void export_chunk(std::span<Span> chunk, Clock::time_point deadline);
  void publish_refused();                                 // exporter thread, or control thread after join

  const ExporterOptions options;

  // Metrics: cells of the registry's last shard, written by one thread at a time (see the class comment).
  CounterRef exported;
  CounterRef dropped_queue_full;
  CounterRef dropped_export_failed;
  CounterRef dropped_shutdown;
  HistogramRef export_duration;

  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<TraceService::Stub> stub;
  detail::OtlpRequest request;  // exporter thread: reused for every batch (resource and scope set once)
  bool failing = false;         // exporter thread: the last export failed (logged once per outage)
  bool rejecting = false;       // exporter thread: the last export had spans rejected (logged once)

  std::mutex mu;
  std::condition_variable wake;      // exporter: max_batch queued, stop, or batch_interval passed
  std::condition_variable finished;  // shutdown(): the exporter thread is done
  std::vector<Span> queue;           // capacity reserved: submit() never allocates
  std::uint64_t refused_full = 0;    // spans refused for lack of room, not yet counted in the metric
  std::uint64_t refused_stopped = 0; // spans refused after shutdown(), not yet counted
  bool stop = false;
  bool done = false;
  Clock::time_point flush_deadline;  // valid once stop

  std::mutex call_mu;
  grpc::ClientContext* call = nullptr;  // the export call in flight, cancelled when the flush deadline passes
  bool cancelled = false;               // set by shutdown(): no new call may start

  std::thread thread;  // last: starts once everything above is initialised
};

SpanExporter::Impl::Impl(ExporterOptions o, Registry& registry) : options(std::move(o)) {
  if (options.endpoint.empty()) throw std::invalid_argument("SpanExporter: empty OTLP endpoint");
  if (options.queue_capacity == 0 || options.max_batch == 0 || options.batch_interval.count() <= 0 ||
      options.export_timeout.count() <= 0) {
    throw std::invalid_argument("SpanExporter: queue_capacity, max_batch, batch_interval and export_timeout must "
                                "be positive");
  }
  const Shard shard = registry.shard(registry.shard_count() - 1);
  exported = shard.counter(registry.counter("virex_tracing_spans_exported_total",
                                            "Spans the OTLP collector accepted."));
  const auto dropped = [&](const char* reason) {
    return shard.counter(registry.counter("virex_tracing_spans_dropped_total",
                                          "Spans dropped: the export queue was full, the export failed or was "
                                          "rejected, or the flush at shutdown ran out of time.",
                                          {{"reason", reason}}));
  };
  dropped_queue_full = dropped("queue_full");
  dropped_export_failed = dropped("export_failed");
  dropped_shutdown = dropped("shutdown");
  export_duration = shard.histogram(registry.histogram("virex_tracing_export_duration_seconds",
                                                       "Duration of one OTLP export call.", {},
                                                       default_latency_buckets(), 1e-9));

  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, kMaxReconnectBackoffMs);
  args.SetUserAgentPrefix("virex-edge");
  // The target's DNS name, if any, is resolved by gRPC's own threads; the channel connects on first use.
  channel = grpc::CreateCustomChannel(options.endpoint, grpc::InsecureChannelCredentials(), args);
  stub = TraceService::NewStub(channel);
  detail::init_request(request, options.resource);

  queue.reserve(options.queue_capacity);
  thread = std::thread([this] { run(); });
}

void SpanExporter::Impl::run() {
  pthread_setname_np(pthread_self(), "virex-otlp");
  std::vector<Span> batch;
  batch.reserve(options.queue_capacity);  // swapped with `queue`: both keep the reserved capacity
  auto next = Clock::now() + options.batch_interval;
  for (;;) {
    bool stopping = false;
    {
      std::unique_lock lock(mu);
      wake.wait_until(lock, next, [&] { return stop || queue.size() >= options.max_batch; });
      batch.swap(queue);  // O(1): workers wait for nothing more than this
      stopping = stop;    // read with the swap: after stop, submit() adds nothing, so this batch is the last
    }
    next = Clock::now() + options.batch_interval;
    publish_refused();
    export_all(batch);
    batch.clear();
    if (stopping) break;
  }
  {
    std::lock_guard lock(mu);
    done = true;
  }
  finished.notify_all();
}

void SpanExporter::Impl::export_all(std::vector<Span>& batch) {
  for (std::size_t i = 0; i < batch.size();) {
    const std::size_t n = std::min(options.max_batch, batch.size() - i);
    const auto now = Clock::now();
    auto deadline = now + options.export_timeout;
    {
      std::lock_guard lock(mu);
      if (stop) {
        if (now >= flush_deadline) {
          dropped_shutdown.inc(batch.size() - i);  // the flush ran out of time
          return;
        }
        deadline = std::min(deadline, flush_deadline);
      }
    }
    export_chunk(std::span<Span>(batch.data() + i, n), deadline);
    i += n;
  }
}

void SpanExporter::Impl::export_chunk(std::span<Span> chunk, Clock::time_point deadline) {
  const std::uint64_t n = chunk.size();
  detail::set_spans(request, chunk);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + (deadline - Clock::now()));  // gRPC takes system_clock
  {
    std::lock_guard lock(call_mu);
    if (cancelled) {
      dropped_shutdown.inc(n);
      return;
    }
    call = &context;
  }
  ExportTraceServiceResponse response;
  const auto start = Clock::now();
  const grpc::Status status = stub->Export(&context, request, &response);
  export_duration.observe(nanoseconds(Clock::now() - start));
  bool cut_by_shutdown = false;
  {
    std::lock_guard lock(call_mu);
    call = nullptr;
    cut_by_shutdown = cancelled;
  }

  if (!status.ok()) {
    if (cut_by_shutdown && status.error_code() == grpc::StatusCode::CANCELLED) {
      dropped_shutdown.inc(n);  // our own cut at the flush deadline, not the collector's failure
      return;
    }
    dropped_export_failed.inc(n);
    if (!failing) {  // once per outage, not once per batch
      log(spdlog::level::warn, "tracing: OTLP export to {} failed (gRPC status {}: {}); spans are dropped until it "
          "works again", options.endpoint, static_cast<int>(status.error_code()), status.error_message());
      failing = true;
    }
    return;
  }
  // OTLP partial success: the rejected spans are not to be retried; they count as failed.
  const auto rejected = static_cast<std::uint64_t>(
      std::clamp<std::int64_t>(response.partial_success().rejected_spans(), 0, static_cast<std::int64_t>(n)));
  exported.inc(n - rejected);
  dropped_export_failed.inc(rejected);
  if (rejected > 0 && !rejecting) {  // logged when rejections start, not for every batch
    log(spdlog::level::warn, "tracing: the OTLP collector at {} rejects spans ({} of {}): {}", options.endpoint,
        rejected, n, response.partial_success().error_message());
  }
  rejecting = rejected > 0;
  if (failing) {
    log(spdlog::level::info, "tracing: OTLP export to {} works again", options.endpoint);
    failing = false;
  }
}

void SpanExporter::Impl::publish_refused() {
  std::uint64_t full = 0;
  std::uint64_t stopped = 0;
  {
    std::lock_guard lock(mu);
    full = std::exchange(refused_full, 0);
    stopped = std::exchange(refused_stopped, 0);
  }
  if (full != 0) dropped_queue_full.inc(full);
  if (stopped != 0) dropped_shutdown.inc(stopped);
}

SpanExporter::SpanExporter(ExporterOptions options, Registry& registry)
    : impl_(std::make_unique<Impl>(std::move(options), registry)) {}

SpanExporter::~SpanExporter() {
  shutdown(std::chrono::milliseconds(0));
  impl_->publish_refused();  // submits refused after shutdown(), still counted
}

bool SpanExporter::submit(std::vector<Span>&& spans) noexcept {
  Impl& s = *impl_;
  const std::size_t n = spans.size();
  bool accepted = false;
  bool notify = false;
  {
    std::lock_guard lock(s.mu);
    if (s.stop) {
      s.refused_stopped += n;
    } else if (n > s.options.queue_capacity - s.queue.size()) {
      s.refused_full += n;
    } else {
      const std::size_t before = s.queue.size();
      for (Span& span : spans) s.queue.push_back(std::move(span));  // within the reserved capacity
      accepted = true;
      notify = before < s.options.max_batch && s.queue.size() >= s.options.max_batch;
    }
  }
  spans.clear();  // outside the lock: a refused request's strings are freed here
  if (notify) s.wake.notify_one();
  return accepted;
}

void SpanExporter::shutdown(std::chrono::milliseconds flush_timeout) {
  Impl& s = *impl_;
  if (!s.thread.joinable()) return;
  Clock::time_point deadline;
  {
    std::lock_guard lock(s.mu);
    if (!s.stop) {
      s.stop = true;
      s.flush_deadline = Clock::now() + std::max(flush_timeout, std::chrono::milliseconds(0));
    }
    deadline = s.flush_deadline;
  }
  s.wake.notify_one();
  bool flushed = false;
  {
    std::unique_lock lock(s.mu);
    flushed = s.finished.wait_until(lock, deadline, [&] { return s.done; });
  }
  if (!flushed) {
    // A call started before the stop may run to its own deadline: cut it, and start no other.
    std::lock_guard lock(s.call_mu);
    s.cancelled = true;
    if (s.call != nullptr) s.call->TryCancel();
  }
  s.thread.join();
  s.publish_refused();
}

}  // namespace virex::observe
