// SpanExporter against real gRPC endpoints on loopback: an in-process TraceService (the generated service code)
// that records what it receives, a closed port (collector down), and a listener that never answers (collector
// hung). Also drives tests/tools/otlp_receiver, the receiver the daemon's integration tests use. Ephemeral ports
// only; waits are bounded waits for events, never sleeps. ctest label: integration (loopback sockets, threads).
#include <virex/observe/tracing.hpp>

#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"

#include <boost/json.hpp>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace virex::observe {
namespace {

using namespace std::chrono_literals;
using opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
using opentelemetry::proto::collector::trace::v1::ExportTraceServiceResponse;
using opentelemetry::proto::collector::trace::v1::TraceService;
namespace otlp_trace = opentelemetry::proto::trace::v1;

// ---- endpoints -----------------------------------------------------------------------------------------------

// An OTLP collector in this process: records every request; optionally rejects some spans (partial success).
class Collector final : public TraceService::Service {
 public:
  explicit Collector(std::string address = "127.0.0.1:0") {
    grpc::ServerBuilder builder;
    builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~Collector() override { server_->Shutdown(std::chrono::system_clock::now() + 5s); }

  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

  grpc::Status Export(grpc::ServerContext*, const ExportTraceServiceRequest* request,
                      ExportTraceServiceResponse* response) override {
    std::lock_guard lock(mu_);
    requests_.push_back(*request);
    for (const auto& rs : request->resource_spans()) {
      for (const auto& ss : rs.scope_spans()) spans_ += static_cast<std::size_t>(ss.spans_size());
    }
    if (reject_ > 0) {
      response->mutable_partial_success()->set_rejected_spans(reject_);
      response->mutable_partial_success()->set_error_message("test rejects");
    }
    arrived_.notify_all();
    return grpc::Status::OK;
  }

  void reject(std::int64_t n) {
    std::lock_guard lock(mu_);
    reject_ = n;
  }

  // Waits (at most `timeout`) until `n` spans have arrived.
  bool wait_for_spans(std::size_t n, std::chrono::seconds timeout = 20s) {
    std::unique_lock lock(mu_);
    return arrived_.wait_for(lock, timeout, [&] { return spans_ >= n; });
  }

  std::vector<ExportTraceServiceRequest> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

  std::vector<otlp_trace::Span> spans() {
    std::vector<otlp_trace::Span> out;
    for (const auto& r : requests()) {
      for (const auto& rs : r.resource_spans()) {
        for (const auto& ss : rs.scope_spans()) out.insert(out.end(), ss.spans().begin(), ss.spans().end());
      }
    }
    return out;
  }

 private:
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::mutex mu_;
  std::condition_variable arrived_;
  std::vector<ExportTraceServiceRequest> requests_;
  std::size_t spans_ = 0;
  std::int64_t reject_ = 0;
};

// A listening TCP socket on 127.0.0.1; the kernel completes connections into its backlog, nobody answers them.
struct Listener {
  Listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, 16) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "listener: " << std::strerror(errno);
    }
    port = ntohs(addr.sin_port);
  }
  ~Listener() {
    if (accepted >= 0) ::close(accepted);
    ::close(fd);
  }
  // Waits (at most `timeout`) for a client to connect and keeps the connection open, silent.
  bool accept_one(std::chrono::milliseconds timeout) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return false;
    accepted = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    return accepted >= 0;
  }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port); }

  int fd = -1;
  int accepted = -1;
  int port = 0;
};

// A loopback port nobody listens on: bound, then closed (connections are refused).
std::string closed_endpoint() {
  Listener l;
  return "127.0.0.1:" + std::to_string(l.port);
}

// ---- spans and metrics ---------------------------------------------------------------------------------------

Span make_span(std::uint8_t trace, std::uint8_t id, std::uint8_t parent, SpanKind kind, std::string name) {
  Span s;
  s.trace_id.fill(trace);
  s.span_id.fill(id);
  s.parent_span_id.fill(parent);
  s.name = std::move(name);
  s.kind = kind;
  s.start_unix_ns = 1'700'000'000'000'000'000ULL;
  s.end_unix_ns = s.start_unix_ns + 2'000'000;
  return s;
}

std::vector<Span> one(std::uint8_t id = 1) {
  std::vector<Span> v;
  v.push_back(make_span(7, id, 0, SpanKind::server, "GET home"));
  return v;
}

double metric(const Registry& registry, std::string_view family, std::string_view reason = "") {
  double value = 0;
  registry.visit([&](const SeriesSample& s) {
    if (s.family != family) return;
    if (!reason.empty() && !(s.labels->size() == 1 && (*s.labels)[0].second == reason)) return;
    value = s.value;
  });
  return value;
}

struct Counts {
  double exported, queue_full, export_failed, shutdown, exports;
};

Counts counts(const Registry& r) {
  return {metric(r, "virex_tracing_spans_exported_total"),
          metric(r, "virex_tracing_spans_dropped_total", "queue_full"),
          metric(r, "virex_tracing_spans_dropped_total", "export_failed"),
          metric(r, "virex_tracing_spans_dropped_total", "shutdown"),
          metric(r, "virex_tracing_export_duration_seconds")};
}

ExporterOptions options_for(std::string endpoint) {
  ExporterOptions o;
  o.endpoint = std::move(endpoint);
  o.resource = {{"service.name", "virex-test"}, {"service.instance.id", "edge-1"}, {"cloud.region", "eu"}};
  return o;
}

// ---- delivery ------------------------------------------------------------------------------------------------

TEST(SpanExporter, DeliversExactlyTheSpansWithIdsParentsKindsAttributesAndResource) {
  Collector collector;
  Registry registry(2);
  auto o = options_for(collector.endpoint());
  o.batch_interval = 1h;  // only the flush at shutdown sends: one request, deterministic
  SpanExporter exporter(o, registry);

  std::vector<Span> request;
  request.push_back(make_span(0xab, 1, 0, SpanKind::server, "GET api"));
  request.back().attributes = {{"http.request.method", "GET"}, {"http.route", "api"}};
  request.back().int_attributes = {{"http.response.status_code", 200}};
  request.push_back(make_span(0xab, 2, 1, SpanKind::client, "upstream web"));
  request.back().error = true;
  request.back().status_message = "connection refused";
  request.push_back(make_span(0xab, 3, 1, SpanKind::internal, "edge cache"));
  ASSERT_TRUE(exporter.submit(std::move(request)));
  EXPECT_TRUE(request.empty());
  exporter.shutdown(10s);

  const auto requests = collector.requests();
  ASSERT_EQ(requests.size(), 1u);
  ASSERT_EQ(requests[0].resource_spans_size(), 1);
  const auto& resource = requests[0].resource_spans(0).resource();
  ASSERT_GE(resource.attributes_size(), 1);
  EXPECT_EQ(resource.attributes(0).key(), "service.name");
  EXPECT_EQ(resource.attributes(0).value().string_value(), "virex-test");
  const auto spans = collector.spans();
  ASSERT_EQ(spans.size(), 3u);
  EXPECT_EQ(spans[0].trace_id(), std::string(16, '\xab'));
  EXPECT_EQ(spans[0].span_id(), std::string(8, '\x01'));
  EXPECT_EQ(spans[0].parent_span_id(), "");
  EXPECT_EQ(spans[0].name(), "GET api");
  EXPECT_EQ(spans[0].kind(), otlp_trace::Span::SPAN_KIND_SERVER);
  ASSERT_EQ(spans[0].attributes_size(), 3);
  EXPECT_EQ(spans[0].attributes(1).key(), "http.route");
  EXPECT_EQ(spans[0].attributes(1).value().string_value(), "api");
  EXPECT_EQ(spans[0].attributes(2).value().int_value(), 200);
  EXPECT_EQ(spans[1].parent_span_id(), std::string(8, '\x01'));
  EXPECT_EQ(spans[1].kind(), otlp_trace::Span::SPAN_KIND_CLIENT);
  EXPECT_EQ(spans[1].status().code(), otlp_trace::Status::STATUS_CODE_ERROR);
  EXPECT_EQ(spans[1].status().message(), "connection refused");
  EXPECT_EQ(spans[2].kind(), otlp_trace::Span::SPAN_KIND_INTERNAL);
  EXPECT_EQ(spans[2].end_time_unix_nano() - spans[2].start_time_unix_nano(), 2'000'000u);

  const Counts c = counts(registry);
  EXPECT_EQ(c.exported, 3);
  EXPECT_EQ(c.queue_full + c.export_failed + c.shutdown, 0);
  EXPECT_EQ(c.exports, 1);
}

TEST(SpanExporter, APartialBatchLeavesAfterTheInterval) {
  Collector collector;
  Registry registry(2);
  auto o = options_for(collector.endpoint());
  o.batch_interval = 20ms;
  SpanExporter exporter(o, registry);
  ASSERT_TRUE(exporter.submit(one()));
  EXPECT_TRUE(collector.wait_for_spans(1)) << "not sent before shutdown";
}

TEST(SpanExporter, AFullBatchLeavesAtOnceAndNoCallCarriesMoreThanMaxBatch) {
  Collector collector;
  Registry registry(2);
  auto o = options_for(collector.endpoint());
  o.batch_interval = 1h;  // only max_batch wakes the exporter before shutdown
  o.max_batch = 100;
  o.queue_capacity = 1000;
  SpanExporter exporter(o, registry);
  for (int i = 0; i < 250; ++i) ASSERT_TRUE(exporter.submit(one()));
  EXPECT_TRUE(collector.wait_for_spans(100)) << "a full batch did not leave before the interval";
  exporter.shutdown(10s);
  std::size_t total = 0;
  for (const auto& r : collector.requests()) {
    const int n = r.resource_spans(0).scope_spans(0).spans_size();
    EXPECT_LE(n, 100);
    total += static_cast<std::size_t>(n);
  }
  EXPECT_EQ(total, 250u);
  EXPECT_EQ(counts(registry).exported, 250);
}

TEST(SpanExporter, PartialSuccessCountsTheRejectedSpansAsFailed) {
  Collector collector;
  collector.reject(2);
  Registry registry(2);
  auto o = options_for(collector.endpoint());
  o.batch_interval = 1h;
  SpanExporter exporter(o, registry);
  std::vector<Span> spans;
  for (std::uint8_t i = 1; i <= 5; ++i) spans.push_back(make_span(1, i, 0, SpanKind::server, "x"));
  ASSERT_TRUE(exporter.submit(std::move(spans)));
  exporter.shutdown(10s);
  const Counts c = counts(registry);
  EXPECT_EQ(c.exported, 3);
  EXPECT_EQ(c.export_failed, 2);
}

// ---- the queue -----------------------------------------------------------------------------------------------

TEST(SpanExporter, AFullQueueRefusesWholeSubmitsAndCountsThem) {
  Collector collector;
  Registry registry(2);
  auto o = options_for(collector.endpoint());
  o.queue_capacity = 4;
  o.max_batch = 512;      // never reached: the exporter sleeps through the interval
  o.batch_interval = 1h;
  SpanExporter exporter(o, registry);
  auto three = one();
  three.push_back(make_span(7, 2, 1, SpanKind::client, "b"));
  three.push_back(make_span(7, 3, 1, SpanKind::client, "c"));
  EXPECT_TRUE(exporter.submit(std::move(three)));
  auto two = one();
  two.push_back(make_span(7, 5, 1, SpanKind::client, "e"));
  EXPECT_FALSE(exporter.submit(std::move(two))) << "1 slot left: a request's spans go together or not at all";
  EXPECT_TRUE(two.empty());
  EXPECT_TRUE(exporter.submit(one()));
  EXPECT_FALSE(exporter.submit(one()));
  exporter.shutdown(10s);
  EXPECT_EQ(collector.spans().size(), 4u);
  const Counts c = counts(registry);
  EXPECT_EQ(c.exported, 4);
  EXPECT_EQ(c.queue_full, 3);
}

TEST(SpanExporter, AfterShutdownSubmitIsRefusedAndCounted) {
  Registry registry(2);
  {
    Collector collector;
    SpanExporter exporter(options_for(collector.endpoint()), registry);
    exporter.shutdown(5s);
    exporter.shutdown(5s);  // idempotent
    EXPECT_FALSE(exporter.submit(one()));
  }
  EXPECT_EQ(counts(registry).shutdown, 1);
}

TEST(SpanExporter, DestroyedWithoutShutdownDropsWhatIsQueuedAsShutdown) {
  Collector collector;
  Registry registry(2);
  {
    auto o = options_for(collector.endpoint());
    o.batch_interval = 1h;
    SpanExporter exporter(o, registry);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(exporter.submit(one()));
  }  // shutdown(0ms): no time to flush
  const Counts c = counts(registry);
  EXPECT_EQ(c.exported, 0);
  EXPECT_EQ(c.shutdown, 5);
  EXPECT_TRUE(collector.spans().empty());
}

// ---- a failing collector never slows submit() ------------------------------------------------------------------

// Every submitted span is counted exactly once: exported, or dropped for one reason.
void expect_accounted(const Registry& registry, std::size_t accepted, std::size_t refused) {
  const Counts c = counts(registry);
  EXPECT_EQ(c.queue_full, static_cast<double>(refused));
  EXPECT_EQ(c.exported + c.export_failed + c.shutdown, static_cast<double>(accepted));
}

TEST(SpanExporter, CollectorDownSubmitStaysFastAndSpansCountAsExportFailed) {
  Registry registry(2);
  auto o = options_for(closed_endpoint());
  o.batch_interval = 5ms;  // the exporter keeps failing calls while the workers submit
  o.queue_capacity = 256;
  SpanExporter exporter(o, registry);
  constexpr int kSubmits = 20000;
  std::size_t accepted = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kSubmits; ++i) accepted += exporter.submit(one()) ? 1 : 0;
  const auto elapsed = std::chrono::steady_clock::now() - start;
  // Generous (sanitizers, 2 shared cores): 20000 submits are microseconds each; the bound only catches a submit
  // that waits for the network (a single refused connect or export deadline would eat most of it).
  EXPECT_LT(elapsed, 5s);
  exporter.shutdown(10s);
  const Counts c = counts(registry);
  EXPECT_EQ(c.exported, 0);
  EXPECT_GT(c.export_failed, 0) << "the flush at shutdown was attempted and failed";
  EXPECT_GT(c.exports, 0);
  expect_accounted(registry, accepted, kSubmits - accepted);
}

TEST(SpanExporter, HungCollectorNeverBlocksSubmitAndShutdownCutsTheCall) {
  Listener hung;  // accepts TCP, never speaks HTTP/2: an export call hangs until its deadline
  Registry registry(2);
  auto o = options_for(hung.endpoint());
  o.batch_interval = 5ms;
  o.export_timeout = 60s;  // a submit that waited for the exporter would wait this long
  o.queue_capacity = 256;
  SpanExporter exporter(o, registry);
  ASSERT_TRUE(exporter.submit(one()));
  ASSERT_TRUE(hung.accept_one(20s)) << "the exporter never connected";  // its call is now in flight
  constexpr int kSubmits = 20000;
  std::size_t accepted = 1;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kSubmits; ++i) accepted += exporter.submit(one()) ? 1 : 0;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_GT(kSubmits + 1 - accepted, 0u) << "the queue filled while the exporter was stuck";

  const auto stop = std::chrono::steady_clock::now();
  exporter.shutdown(200ms);
  EXPECT_LT(std::chrono::steady_clock::now() - stop, 10s) << "shutdown waited for the hung call's own deadline";
  const Counts c = counts(registry);
  EXPECT_EQ(c.exported, 0);
  expect_accounted(registry, accepted, kSubmits + 1 - accepted);
}

// A collector that comes back (restart, deploy) is found again within gRPC's reconnect backoff, capped at 5 s
// by the exporter instead of gRPC's default 120 s.
TEST(SpanExporter, ExportResumesWhenTheCollectorComesBack) {
  const std::string endpoint = closed_endpoint();
  Registry registry(2);
  auto o = options_for(endpoint);
  o.batch_interval = 5ms;
  SpanExporter exporter(o, registry);
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  // Bounded poll for the first failed export (the exporter reports to nothing but its metrics).
  while (counts(registry).export_failed == 0 && std::chrono::steady_clock::now() < give_up) {
    exporter.submit(one());
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_GT(counts(registry).export_failed, 0);

  Collector collector(endpoint);  // the same port, now answering
  ASSERT_EQ(collector.port(), std::stoi(endpoint.substr(endpoint.rfind(':') + 1))) << "port taken meanwhile";
  bool arrived = false;
  while (!arrived && std::chrono::steady_clock::now() < give_up) {
    exporter.submit(one());
    arrived = collector.wait_for_spans(1, 1s);
  }
  EXPECT_TRUE(arrived) << "no span reached the collector within 20 s of its return";
  exporter.shutdown(5s);
  EXPECT_GT(counts(registry).exported, 0);
}

// ---- tests/tools/otlp_receiver ---------------------------------------------------------------------------------

// Spawns the receiver, reads its stdout line by line (bounded waits), kills it at the end.
class Receiver {
 public:
  Receiver() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    char* argv[] = {const_cast<char*>(VIREX_OTLP_RECEIVER), nullptr};
    const int rc = posix_spawn(&pid_, VIREX_OTLP_RECEIVER, &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    out_ = fds[0];
    if (rc != 0) throw std::runtime_error("spawn " + std::string(VIREX_OTLP_RECEIVER));
  }
  ~Receiver() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    ::close(out_);
  }
  // The next line, or "" after `timeout`.
  std::string line(std::chrono::milliseconds timeout = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (const auto nl = buf_.find('\n'); nl != std::string::npos) {
        std::string l = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return l;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                              std::chrono::steady_clock::now());
      pollfd p{out_, POLLIN, 0};
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) return "";
      char chunk[4096];
      const ssize_t n = ::read(out_, chunk, sizeof chunk);
      if (n <= 0) return "";
      buf_.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string buf_;
};

TEST(OtlpReceiverTool, PrintsItsPortThenOneJsonLinePerSpan) {
  Receiver receiver;
  const std::string first = receiver.line();
  ASSERT_TRUE(first.starts_with("PORT ")) << first;
  const std::string port = first.substr(5);

  Registry registry(2);
  auto o = options_for("127.0.0.1:" + port);
  o.batch_interval = 1h;
  SpanExporter exporter(o, registry);
  std::vector<Span> spans;
  spans.push_back(make_span(0x0f, 0xa1, 0, SpanKind::server, "GET api"));
  spans.back().attributes = {{"http.route", "api"}};
  spans.back().int_attributes = {{"http.response.status_code", 503}};
  spans.back().error = true;
  spans.push_back(make_span(0x0f, 0xb2, 0xa1, SpanKind::client, "upstream web"));
  ASSERT_TRUE(exporter.submit(std::move(spans)));
  exporter.shutdown(10s);
  ASSERT_EQ(counts(registry).exported, 2);

  const boost::json::object root = boost::json::parse(receiver.line()).as_object();
  EXPECT_EQ(root.at("trace_id").as_string(), "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f");
  EXPECT_EQ(root.at("span_id").as_string(), "a1a1a1a1a1a1a1a1");
  EXPECT_EQ(root.at("parent_span_id").as_string(), "");
  EXPECT_EQ(root.at("name").as_string(), "GET api");
  EXPECT_EQ(root.at("kind").to_number<int>(), 2);
  EXPECT_EQ(root.at("start").to_number<std::uint64_t>(), 1'700'000'000'000'000'000ULL);
  EXPECT_EQ(root.at("end").to_number<std::uint64_t>(), 1'700'000'000'002'000'000ULL);
  EXPECT_EQ(root.at("attributes").at("http.route").as_string(), "api");
  EXPECT_EQ(root.at("attributes").at("http.response.status_code").to_number<int>(), 503);
  EXPECT_EQ(root.at("status_code").to_number<int>(), 2);
  EXPECT_EQ(root.at("service_name").as_string(), "virex-test");

  const boost::json::object child = boost::json::parse(receiver.line()).as_object();
  EXPECT_EQ(child.at("parent_span_id").as_string(), "a1a1a1a1a1a1a1a1");
  EXPECT_EQ(child.at("kind").to_number<int>(), 3);
  EXPECT_EQ(child.at("status_code").to_number<int>(), 0);
}

}  // namespace
}  // namespace virex::observe
