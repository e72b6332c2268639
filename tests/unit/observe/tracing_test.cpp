// Sampling decisions, table-driven, and the Span → OTLP protobuf mapping. Pure: no sockets, no threads.
#include <virex/observe/tracing.hpp>

#include "observe/otlp_encode.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

namespace virex::observe {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;

// A trace id whose byte 8 is `byte8` and whose rightmost 7 bytes are `low56` (big-endian); the high half is noise
// that must not matter.
TraceContext trace(std::uint64_t low56, std::uint8_t flags = 0, std::uint8_t byte8 = 0) {
  TraceContext c;
  for (std::size_t i = 0; i < 8; ++i) c.trace_id[i] = static_cast<std::uint8_t>(0xa5 ^ i);
  c.trace_id[8] = byte8;
  for (std::size_t i = 0; i < 7; ++i) c.trace_id[15 - i] = static_cast<std::uint8_t>(low56 >> (8 * i));
  c.flags = flags;
  return c;
}

constexpr std::uint64_t kMax56 = (std::uint64_t{1} << 56) - 1;
constexpr std::uint64_t kHalf56 = std::uint64_t{1} << 55;

struct SampleCase {
  std::string name;
  TraceContext ctx;
  bool has_parent;
  unsigned status;
  bool error;
  nanoseconds duration;
  SamplingPolicy policy;
  bool expected;
};

void PrintTo(const SampleCase& c, std::ostream* out) { *out << c.name; }

class Sample : public testing::TestWithParam<SampleCase> {};

TEST_P(Sample, Decides) {
  const SampleCase& c = GetParam();
  EXPECT_EQ(sample(c.ctx, c.has_parent, c.status, c.error, c.duration, c.policy), c.expected);
}

const SamplingPolicy kOnePercent{0.01, milliseconds(500)};
const SamplingPolicy kHalf{0.5, milliseconds(500)};
const SamplingPolicy kNone{0.0, milliseconds(500)};
const SamplingPolicy kAll{1.0, milliseconds(500)};
const nanoseconds kFast = milliseconds(3);

INSTANTIATE_TEST_SUITE_P(
    Table, Sample,
    testing::Values(
        // Parent-based: a caller's sampled flag exports whatever the ratio.
        SampleCase{"CallerSampledAtRatioZero", trace(0, 0x01), true, 200, false, kFast, kNone, true},
        SampleCase{"CallerSampledOtherFlagBitsIgnored", trace(0, 0x03), true, 200, false, kFast, kNone, true},
        SampleCase{"CallerNotSampledFallsToRatio", trace(0, 0x00), true, 200, false, kFast, kNone, false},
        SampleCase{"CallerNotSampledRatioKeeps", trace(kMax56, 0x00), true, 200, false, kFast, kOnePercent, true},
        // A new trace's own flags are not a caller's decision.
        SampleCase{"OwnFlagWithoutParentIgnored", trace(0, 0x01), false, 200, false, kFast, kNone, false},
        // Ratio, from the low 56 bits: kept when R >= (1 - p) · 2^56.
        SampleCase{"HalfAtThreshold", trace(kHalf56), false, 200, false, kFast, kHalf, true},
        SampleCase{"HalfJustBelow", trace(kHalf56 - 1), false, 200, false, kFast, kHalf, false},
        SampleCase{"HalfByte8Ignored", trace(kHalf56 - 1, 0, 0xff), false, 200, false, kFast, kHalf, false},
        SampleCase{"OnePercentHighKept", trace(kMax56), false, 200, false, kFast, kOnePercent, true},
        SampleCase{"OnePercentLowDropped", trace(0), false, 200, false, kFast, kOnePercent, false},
        SampleCase{"OnePercentJustBelowThreshold", trace(static_cast<std::uint64_t>(0.99 * 72057594037927936.0) - 1),
                   false, 200, false, kFast, kOnePercent, false},
        SampleCase{"RatioZeroNeverEvenAtMax", trace(kMax56), false, 200, false, kFast, kNone, false},
        SampleCase{"RatioOneAlwaysEvenAtZero", trace(0), false, 200, false, kFast, kAll, true},
        SampleCase{"RatioNanIsZero", trace(kMax56), false, 200, false, kFast, SamplingPolicy{NAN, milliseconds(500)},
                   false},
        // Tail: errors.
        SampleCase{"Status500", trace(0), false, 500, false, kFast, kNone, true},
        SampleCase{"Status503", trace(0), false, 503, false, kFast, kNone, true},
        SampleCase{"Status499", trace(0), false, 499, false, kFast, kNone, false},
        SampleCase{"Status404", trace(0), false, 404, false, kFast, kNone, false},
        SampleCase{"ErrorFlagWithStatus200", trace(0), false, 200, true, kFast, kNone, true},
        SampleCase{"ErrorWithoutStatus", trace(0), false, 0, true, kFast, kNone, true},
        // Tail: slow requests, the threshold included.
        SampleCase{"SlowAtThreshold", trace(0), false, 200, false, milliseconds(500), kNone, true},
        SampleCase{"SlowAbove", trace(0), false, 200, false, std::chrono::seconds(3), kNone, true},
        SampleCase{"JustUnderThreshold", trace(0), false, 200, false, milliseconds(500) - nanoseconds(1), kNone,
                   false},
        SampleCase{"NoSlowRuleWhenThresholdZero", trace(0), false, 200, false, std::chrono::hours(1),
                   SamplingPolicy{0.0, nanoseconds(0)}, false}),
    [](const auto& info) { return info.param.name; });

TEST(HeadSample, IsTheDecisionWithoutTailRules) {
  EXPECT_TRUE(head_sample(trace(0, 0x01), true, kNone));
  EXPECT_FALSE(head_sample(trace(0), false, kOnePercent));
  EXPECT_TRUE(head_sample(trace(kMax56), false, kOnePercent));
}

// Over many random ids the kept share is the ratio, and a trace kept at p is kept at every larger ratio (so
// nodes configured with different ratios still keep whole traces of the smaller one). Fixed seed: deterministic.
TEST(HeadSample, RatioIsRespectedAndMonotonic) {
  std::mt19937_64 rng(20240611);
  constexpr int kIds = 100000;
  int kept_1 = 0, kept_10 = 0;
  for (int i = 0; i < kIds; ++i) {
    TraceContext c;
    for (auto& b : c.trace_id) b = static_cast<std::uint8_t>(rng());
    const bool at_1 = head_sample(c, false, SamplingPolicy{0.01, {}});
    const bool at_10 = head_sample(c, false, SamplingPolicy{0.10, {}});
    kept_1 += at_1;
    kept_10 += at_10;
    ASSERT_TRUE(!at_1 || at_10) << "kept at 1% but not at 10%";
  }
  EXPECT_NEAR(kept_1, kIds / 100, kIds / 100 * 0.15);
  EXPECT_NEAR(kept_10, kIds / 10, kIds / 10 * 0.05);
}

TEST(SamplingPolicy, FromConfig) {
  config::Tracing t;
  t.sample_ratio = 0.25;
  t.slow_threshold = milliseconds(750);
  const SamplingPolicy p = sampling_policy(t);
  EXPECT_EQ(p.ratio, 0.25);
  EXPECT_EQ(p.slow_threshold, milliseconds(750));
}

TEST(ExporterOptions, FromConfigCarryTheNodeIdentity) {
  config::Tracing t;
  t.otlp_endpoint = "127.0.0.1:4317";
  t.service_name = "edge";
  const ExporterOptions o = exporter_options(t, "edge-7", "eu-west");
  EXPECT_EQ(o.endpoint, "127.0.0.1:4317");
  using Attrs = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(o.resource,
            (Attrs{{"service.name", "edge"}, {"service.instance.id", "edge-7"}, {"cloud.region", "eu-west"}}));
  EXPECT_EQ(o.queue_capacity, 2048u);
  EXPECT_EQ(o.max_batch, 512u);
  EXPECT_EQ(o.batch_interval, milliseconds(1000));
  EXPECT_EQ(o.export_timeout, milliseconds(2000));
}

// ---- Span → OTLP ---------------------------------------------------------------------------------------------

Span make_span(std::uint8_t id, std::uint8_t parent, SpanKind kind, std::string name) {
  Span s;
  for (std::size_t i = 0; i < 16; ++i) s.trace_id[i] = static_cast<std::uint8_t>(0x10 + i);
  s.span_id.fill(id);
  s.parent_span_id.fill(parent);
  s.name = std::move(name);
  s.kind = kind;
  s.start_unix_ns = 1'700'000'000'000'000'000ULL + id;
  s.end_unix_ns = s.start_unix_ns + 1'500'000;
  return s;
}

TEST(OtlpEncode, MapsEveryField) {
  detail::OtlpRequest request;
  detail::init_request(request, {{"service.name", "virex-edge"}, {"cloud.region", "eu"}});
  std::vector<Span> spans;
  spans.push_back(make_span(1, 0, SpanKind::server, "GET api"));
  spans.back().attributes = {{"http.request.method", "GET"}, {"http.route", "api"}};
  spans.back().int_attributes = {{"http.response.status_code", 502}};
  spans.back().error = true;
  spans.back().status_message = "upstream connect refused";
  spans.push_back(make_span(2, 1, SpanKind::client, "upstream web"));
  spans.push_back(make_span(3, 1, SpanKind::internal, "edge cache"));
  detail::set_spans(request, spans);

  ASSERT_EQ(request.resource_spans_size(), 1);
  const auto& rs = request.resource_spans(0);
  ASSERT_EQ(rs.resource().attributes_size(), 2);
  EXPECT_EQ(rs.resource().attributes(0).key(), "service.name");
  EXPECT_EQ(rs.resource().attributes(0).value().string_value(), "virex-edge");
  EXPECT_EQ(rs.resource().attributes(1).key(), "cloud.region");
  ASSERT_EQ(rs.scope_spans_size(), 1);
  EXPECT_EQ(rs.scope_spans(0).scope().name(), detail::kScopeName);
  const auto& out = rs.scope_spans(0).spans();
  ASSERT_EQ(out.size(), 3);

  const auto& root = out[0];
  EXPECT_EQ(root.trace_id(), std::string(reinterpret_cast<const char*>(spans[0].trace_id.data()), 16));
  EXPECT_EQ(root.span_id(), std::string(8, '\x01'));
  EXPECT_TRUE(root.parent_span_id().empty()) << "a root span has no parent_span_id";
  EXPECT_EQ(root.name(), "GET api");
  EXPECT_EQ(root.kind(), opentelemetry::proto::trace::v1::Span::SPAN_KIND_SERVER);
  EXPECT_EQ(root.start_time_unix_nano(), 1'700'000'000'000'000'001ULL);
  EXPECT_EQ(root.end_time_unix_nano(), 1'700'000'000'001'500'001ULL);
  ASSERT_EQ(root.attributes_size(), 3);
  EXPECT_EQ(root.attributes(0).key(), "http.request.method");
  EXPECT_EQ(root.attributes(0).value().string_value(), "GET");
  EXPECT_EQ(root.attributes(2).key(), "http.response.status_code");
  EXPECT_EQ(root.attributes(2).value().int_value(), 502);
  EXPECT_EQ(root.status().code(), opentelemetry::proto::trace::v1::Status::STATUS_CODE_ERROR);
  EXPECT_EQ(root.status().message(), "upstream connect refused");

  EXPECT_EQ(out[1].parent_span_id(), std::string(8, '\x01'));
  EXPECT_EQ(out[1].kind(), opentelemetry::proto::trace::v1::Span::SPAN_KIND_CLIENT);
  EXPECT_EQ(out[1].status().code(), opentelemetry::proto::trace::v1::Status::STATUS_CODE_UNSET);
  EXPECT_EQ(out[2].kind(), opentelemetry::proto::trace::v1::Span::SPAN_KIND_INTERNAL);

  // The request is reused: a second, smaller batch replaces the first entirely, status included.
  std::vector<Span> next;
  next.push_back(make_span(9, 0, SpanKind::server, "HEAD home"));
  detail::set_spans(request, next);
  const auto& again = request.resource_spans(0).scope_spans(0).spans();
  ASSERT_EQ(again.size(), 1);
  EXPECT_EQ(again[0].name(), "HEAD home");
  EXPECT_FALSE(again[0].has_status());
  EXPECT_EQ(again[0].attributes_size(), 0);
  EXPECT_EQ(request.resource_spans(0).resource().attributes_size(), 2);
}

struct WireCase {
  std::string name;
  std::string in;
  std::string out;
};

void PrintTo(const WireCase& c, std::ostream* out) { *out << c.name; }

class WireString : public testing::TestWithParam<WireCase> {};

TEST_P(WireString, IsValidUtf8) { EXPECT_EQ(detail::wire_string(std::string(GetParam().in)), GetParam().out); }

const std::string kFffd = "\xef\xbf\xbd";

INSTANTIATE_TEST_SUITE_P(
    Table, WireString,
    testing::Values(WireCase{"Ascii", "GET /x", "GET /x"},
                    WireCase{"Empty", "", ""},
                    WireCase{"MultiByte", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                             "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
                    WireCase{"Latin1Byte", "caf\xe9", "caf" + kFffd},
                    WireCase{"LoneContinuation", "a\x80" "b", "a" + kFffd + "b"},
                    WireCase{"Overlong", "\xc0\x80", kFffd + kFffd},
                    WireCase{"OverlongThreeBytes", "\xe0\x80\xaf", kFffd + kFffd + kFffd},
                    WireCase{"Surrogate", "\xed\xa0\x80", kFffd + kFffd + kFffd},
                    WireCase{"AboveU10FFFF", "\xf4\x90\x80\x80", kFffd + kFffd + kFffd + kFffd},
                    WireCase{"CutShortAtTheEnd", "ok\xe2\x82", "ok" + kFffd + kFffd},
                    WireCase{"NulKept", std::string("a\0b", 3), std::string("a\0b", 3)},
                    WireCase{"LongAsciiCut", std::string(5000, 'a'), std::string(4096, 'a')},
                    WireCase{"LongCutOnACharacterBoundary", [] {
                               std::string s;
                               for (int i = 0; i < 2000; ++i) s += "\xe2\x82\xac";
                               return s;
                             }(),
                             [] {
                               std::string s;
                               for (int i = 0; i < 1365; ++i) s += "\xe2\x82\xac";  // 4095 bytes
                               return s;
                             }()}),
    [](const auto& info) { return info.param.name; });

// Bytes from the network in names and attributes must not make the batch unparseable: proto3 parsers (the
// collector's among them) refuse a message whose string fields are not UTF-8.
TEST(OtlpEncode, HostileBytesStillParse) {
  detail::OtlpRequest request;
  detail::init_request(request, {{"service.name", "edge\xff"}});
  std::vector<Span> spans;
  spans.push_back(make_span(1, 0, SpanKind::server, "GET \xc3("));
  spans.back().attributes = {{"user_agent.original", "curl\x80\xfe"}, {"k\xff", "v"}};
  spans.back().error = true;
  spans.back().status_message = "bad \xed\xa0\x80";
  detail::set_spans(request, spans);
  const std::string wire = request.SerializeAsString();
  detail::OtlpRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(wire));
  const auto& span = parsed.resource_spans(0).scope_spans(0).spans(0);
  EXPECT_EQ(span.name(), "GET " + kFffd + "(");
  EXPECT_EQ(span.attributes(0).value().string_value(), "curl" + kFffd + kFffd);
}

}  // namespace
}  // namespace virex::observe
