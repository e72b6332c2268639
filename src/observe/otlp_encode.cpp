// Span → OTLP protobuf; see otlp_encode.hpp. Exporter thread only.
#include "otlp_encode.hpp"

#include <algorithm>
#include <string_view>

namespace virex::observe::detail {
namespace {

namespace common = opentelemetry::proto::common::v1;
namespace trace = opentelemetry::proto::trace::v1;

// Length of the well-formed UTF-8 sequence at text[i] (RFC 3629 §4), or 0 when it is malformed.
std::size_t utf8_sequence(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // range of the first continuation byte
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;  // no overlong forms
    if (c == 0xed) hi = 0x9f;  // no surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (i + n > text.size() || byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
  }
  return n;
}

}  // namespace

std::string wire_string(std::string&& text) {
  std::size_t i = 0;
  while (i < text.size() && i < kMaxStringBytes) {
    const std::size_t n = utf8_sequence(text, i);
    if (n == 0 || i + n > kMaxStringBytes) break;
    i += n;
  }
  if (i == text.size()) return std::move(text);  // the common case: valid and short, moved as it is
  std::string out;
  out.reserve(std::min(text.size(), kMaxStringBytes));
  out.append(text, 0, i);
  static constexpr std::string_view kReplacement = "\xef\xbf\xbd";  // U+FFFD
  while (i < text.size()) {
    const std::size_t n = utf8_sequence(text, i);
    const std::size_t take = n == 0 ? kReplacement.size() : n;
    if (out.size() + take > kMaxStringBytes) break;  // cut on a character boundary
    if (n == 0) {
      out += kReplacement;
      ++i;
    } else {
      out.append(text, i, n);
      i += n;
    }
  }
  return out;
}

namespace {

trace::ScopeSpans& scope_spans(OtlpRequest& request) {
  return *request.mutable_resource_spans(0)->mutable_scope_spans(0);
}

template <std::size_t N>
bool all_zero(const std::array<std::uint8_t, N>& id) {
  return std::all_of(id.begin(), id.end(), [](std::uint8_t b) { return b == 0; });
}

trace::Span::SpanKind otlp_kind(SpanKind kind) {
  switch (kind) {
    case SpanKind::server: return trace::Span::SPAN_KIND_SERVER;
    case SpanKind::client: return trace::Span::SPAN_KIND_CLIENT;
    case SpanKind::internal: return trace::Span::SPAN_KIND_INTERNAL;
  }
  return trace::Span::SPAN_KIND_UNSPECIFIED;
}

}  // namespace

void init_request(OtlpRequest& request, const std::vector<std::pair<std::string, std::string>>& resource) {
  request.Clear();
  trace::ResourceSpans& rs = *request.add_resource_spans();
  for (const auto& [key, value] : resource) {
    common::KeyValue& kv = *rs.mutable_resource()->add_attributes();
    kv.set_key(wire_string(std::string(key)));
    kv.mutable_value()->set_string_value(wire_string(std::string(value)));
  }
  rs.add_scope_spans()->mutable_scope()->set_name(kScopeName);
}

void set_spans(OtlpRequest& request, std::span<Span> spans) {
  auto& out = *scope_spans(request).mutable_spans();
  out.Clear();  // keeps the Span objects for reuse by Add()
  out.Reserve(static_cast<int>(spans.size()));
  for (Span& s : spans) {
    trace::Span& p = *out.Add();
    p.set_trace_id(s.trace_id.data(), s.trace_id.size());
    p.set_span_id(s.span_id.data(), s.span_id.size());
    if (!all_zero(s.parent_span_id)) p.set_parent_span_id(s.parent_span_id.data(), s.parent_span_id.size());
    p.set_name(wire_string(std::move(s.name)));
    p.set_kind(otlp_kind(s.kind));
    p.set_start_time_unix_nano(s.start_unix_ns);
    p.set_end_time_unix_nano(s.end_unix_ns);
    for (auto& [key, value] : s.attributes) {
      common::KeyValue& kv = *p.add_attributes();
      kv.set_key(wire_string(std::move(key)));
      kv.mutable_value()->set_string_value(wire_string(std::move(value)));
    }
    for (auto& [key, value] : s.int_attributes) {
      common::KeyValue& kv = *p.add_attributes();
      kv.set_key(wire_string(std::move(key)));
      kv.mutable_value()->set_int_value(value);
    }
    if (s.error) {
      p.mutable_status()->set_code(trace::Status::STATUS_CODE_ERROR);
      p.mutable_status()->set_message(wire_string(std::move(s.status_message)));
    }
  }
}

}  // namespace virex::observe::detail
