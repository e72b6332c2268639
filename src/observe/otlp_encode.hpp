// Span → OTLP protobuf (opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest). Private to
// src/observe (and its tests): the generated headers never reach include/. Used by the exporter thread only.
#pragma once

#include <virex/observe/tracing.hpp>

#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"

#include <span>
#include <string>
#include <utility>
#include <vector>

namespace virex::observe::detail {

using OtlpRequest = opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;

inline constexpr const char* kScopeName = "virex-edge";  // InstrumentationScope.name of every span
inline constexpr std::size_t kMaxStringBytes = 4096;      // a name, key or value longer than this is cut

// `text` as an OTLP string: proto3 strings must be UTF-8 (a collector refuses the whole batch otherwise), and
// names and attributes carry bytes from the network (method, host, user agent). Malformed bytes become U+FFFD;
// the result is cut at kMaxStringBytes on a character boundary. Valid short text is moved through untouched.
std::string wire_string(std::string&& text);

// Makes `request` hold one ResourceSpans with `resource` as its attributes (string values) and one ScopeSpans
// named kScopeName; set_spans() fills it. Done once per exporter; the request is reused for every batch.
void init_request(OtlpRequest& request, const std::vector<std::pair<std::string, std::string>>& resource);

// Replaces the spans of the request's ScopeSpans with `spans`, moving their strings (the Spans are left
// moved-from). A root span (all-zero parent) is sent without parent_span_id; `error` sets STATUS_CODE_ERROR with
// the message, otherwise the status stays unset (OpenTelemetry: only errors are marked by instrumentation).
// Every string goes through wire_string().
void set_spans(OtlpRequest& request, std::span<Span> spans);

}  // namespace virex::observe::detail
