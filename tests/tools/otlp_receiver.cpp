// otlp_receiver: a minimal OTLP/gRPC trace receiver for integration tests (a real TraceService/Export server on
// the project's OTLP protos). Listens on 127.0.0.1 on an ephemeral port (or `--listen HOST:PORT`), prints
// `PORT <n>` as its first stdout line, then one JSON object per received span, each line flushed:
//   {"trace_id": hex, "span_id": hex, "parent_span_id": hex ("" for a root), "name": str, "kind": int,
//    "start": ns, "end": ns, "attributes": {key: value}, "status_code": int, "status_message": str,
//    "service_name": str}
// Runs until killed. gRPC calls Export from its own threads; one mutex keeps lines whole.
#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"

#include <boost/json.hpp>
#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>

namespace {

using opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
using opentelemetry::proto::collector::trace::v1::ExportTraceServiceResponse;
using opentelemetry::proto::collector::trace::v1::TraceService;
namespace common = opentelemetry::proto::common::v1;

std::string hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

boost::json::value json_value(const common::AnyValue& v) {
  switch (v.value_case()) {
    case common::AnyValue::kStringValue: return boost::json::string(v.string_value());
    case common::AnyValue::kIntValue: return v.int_value();
    case common::AnyValue::kBoolValue: return v.bool_value();
    case common::AnyValue::kDoubleValue: return v.double_value();
    case common::AnyValue::kBytesValue: return boost::json::string(hex(v.bytes_value()));
    default: return nullptr;  // arrays and maps: not sent by Virex Edge
  }
}

class Receiver final : public TraceService::Service {
 public:
  grpc::Status Export(grpc::ServerContext*, const ExportTraceServiceRequest* request,
                      ExportTraceServiceResponse*) override {
    std::string lines;
    for (const auto& rs : request->resource_spans()) {
      std::string service;
      for (const auto& kv : rs.resource().attributes()) {
        if (kv.key() == "service.name") service = kv.value().string_value();
      }
      for (const auto& ss : rs.scope_spans()) {
        for (const auto& span : ss.spans()) {
          boost::json::object attributes;
          for (const auto& kv : span.attributes()) attributes[kv.key()] = json_value(kv.value());
          boost::json::object line{
              {"trace_id", hex(span.trace_id())},
              {"span_id", hex(span.span_id())},
              {"parent_span_id", hex(span.parent_span_id())},
              {"name", span.name()},
              {"kind", static_cast<int>(span.kind())},
              {"start", span.start_time_unix_nano()},
              {"end", span.end_time_unix_nano()},
              {"attributes", std::move(attributes)},
              {"status_code", static_cast<int>(span.status().code())},
              {"status_message", span.status().message()},
              {"service_name", service},
          };
          lines += boost::json::serialize(line);
          lines += '\n';
        }
      }
    }
    std::lock_guard lock(mu_);
    std::fwrite(lines.data(), 1, lines.size(), stdout);
    std::fflush(stdout);
    return grpc::Status::OK;
  }

 private:
  std::mutex mu_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0";
  if (argc == 3 && std::strcmp(argv[1], "--listen") == 0) {
    listen = argv[2];
  } else if (argc != 1) {
    std::fprintf(stderr, "usage: %s [--listen HOST:PORT]  (default 127.0.0.1:0, an ephemeral port)\n", argv[0]);
    return 2;
  }
  Receiver service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  const std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "otlp_receiver: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  std::printf("PORT %d\n", port);
  std::fflush(stdout);
  server->Wait();  // until killed
  return 0;
}
