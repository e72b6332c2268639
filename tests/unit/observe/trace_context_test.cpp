// W3C traceparent parsing, table-driven (https://www.w3.org/TR/trace-context/ §3.2), and id generation.
#include <virex/observe/trace_context.hpp>

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace virex::observe {
namespace {

std::string id_of(const TraceContext& c) {
  char buf[32];
  format_trace_id(c, buf);
  return std::string(buf, 32);
}

TEST(TraceParent, ValidVersion00) {
  const auto c = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(id_of(*c), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(c->parent_id[0], 0x00);
  EXPECT_EQ(c->parent_id[7], 0xb7);
  EXPECT_EQ(c->flags, 1);
  EXPECT_TRUE(parse_traceparent("  00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00\t").has_value());
}

TEST(TraceParent, FutureVersionsMayCarryMoreFields) {
  EXPECT_TRUE(parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds"));
  EXPECT_TRUE(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  EXPECT_FALSE(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"));
}

class TraceParentInvalid : public testing::TestWithParam<const char*> {};

TEST_P(TraceParentInvalid, IsIgnored) { EXPECT_FALSE(parse_traceparent(GetParam()).has_value()) << GetParam(); }

INSTANTIATE_TEST_SUITE_P(
    Table, TraceParentInvalid,
    testing::Values("", "00", "garbage",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",   // v00 has exactly 4 fields
                    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",         // version ff
                    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",         // zero trace id
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",         // zero parent id
                    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",         // upper-case hex
                    "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",         // misplaced dash
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",         // bad flags
                    "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",         // bad version
                    "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01"));

TEST(TraceIdGenerator, RandomNonZeroAndDistinct) {
  TraceIdGenerator g;
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) {
    const TraceContext c = g.next();
    const std::string id = id_of(c);
    EXPECT_NE(id, std::string(32, '0'));
    EXPECT_TRUE(seen.insert(id).second) << "repeated id " << id;
  }
  TraceIdGenerator other;
  EXPECT_NE(id_of(g.next()), id_of(other.next())) << "each generator is seeded on its own";
}

}  // namespace
}  // namespace virex::observe
