// The shard router's sans-IO parts: decoding PostgreSQL text values, JSON output, parameter checks, the shard
// map lookup and the fan-out merges (checked against hand-computed expectations).
#include <virex/shard/merge.hpp>
#include <virex/shard/params.hpp>
#include <virex/shard/value.hpp>

#include <gtest/gtest.h>

#include "virex/query/v1/result.pb.h"

#include <cmath>

namespace virex::shard {
namespace {

using config::QueryParamType;

Value I(std::int64_t v) { return Value::integer(v); }
Value T(std::string v) { return Value::text(std::move(v)); }

TEST(Decode, TypesByOid) {
  EXPECT_EQ(decode(20, "-42").kind, Value::Kind::integer);
  EXPECT_EQ(decode(20, "-42").i, -42);
  EXPECT_TRUE(decode(16, "t").b);
  EXPECT_FALSE(decode(16, "f").b);
  EXPECT_EQ(decode(1700, "12.50").s, "12.50");
  EXPECT_EQ(decode(1700, "NaN").kind, Value::Kind::text);
  EXPECT_EQ(decode(701, "Infinity").kind, Value::Kind::text);
  const Value ts = decode(1184, "2025-02-01 00:00:01.25+00");
  EXPECT_EQ(ts.kind, Value::Kind::timestamp);
  EXPECT_EQ(ts.s, "2025-02-01T00:00:01.25Z");
  EXPECT_EQ(ts.i, 1738368001250000);
  EXPECT_EQ(decode(1184, "2025-02-01 02:00:00+02").s, "2025-02-01T02:00:00+02:00");
  EXPECT_EQ(decode(1184, "2025-02-01 02:00:00+02").i, decode(1184, "2025-02-01 00:00:00+00").i);
  EXPECT_EQ(decode(1114, "2025-02-01 00:00:00").s, "2025-02-01T00:00:00");
  EXPECT_EQ(decode(1184, "infinity").kind, Value::Kind::text);
  EXPECT_EQ(decode(3802, "{\"a\": 1}").kind, Value::Kind::json);
}

TEST(Json, RowsKeepTypes) {
  ResultSet rs;
  rs.columns = {"id", "name", "amount", "paid", "at", "none", "doc"};
  rs.rows.push_back({I(1), T("a\"b\n"), Value::numeric("-0.50"), decode(16, "t"), decode(1184, "2025-01-01 00:00:00+00"),
                     Value::null(), decode(114, "[1,2]")});
  std::string out;
  append_json(out, rs);
  EXPECT_EQ(out, "{\"rows\":[{\"id\":1,\"name\":\"a\\\"b\\n\",\"amount\":-0.50,\"paid\":true,"
                 "\"at\":\"2025-01-01T00:00:00Z\",\"none\":null,\"doc\":[1,2]}]}");
}

TEST(Compare, PostgresOrder) {
  EXPECT_LT(compare(I(1), I(2)), 0);
  EXPECT_GT(compare(Value::null(), I(2)), 0);  // NULL sorts last ascending
  EXPECT_LT(compare(Value::numeric("1.5"), I(2)), 0);
  EXPECT_LT(compare(decode(1184, "2025-01-01 00:00:00+00"), decode(1184, "2025-01-01 00:00:00.5+00")), 0);
  EXPECT_LT(compare(T("B"), T("a")), 0);  // bytewise
}

TEST(Compare, NumericsExactlyWithPostgresSpecials) {
  const auto N = [](const char* t) { return Value::numeric(t); };
  // Past a double's 53 bits: equal as doubles, ordered as decimals.
  EXPECT_LT(compare(N("12345678901234567890.1"), N("12345678901234567890.2")), 0);
  EXPECT_GT(compare(I(9007199254740993), N("9007199254740992")), 0);
  EXPECT_LT(compare(N("9007199254740992.5"), I(9007199254740993)), 0);
  EXPECT_EQ(compare(N("-0.000"), N("0")), 0);
  EXPECT_EQ(compare(N("1.50"), N("1.5")), 0);
  EXPECT_LT(compare(N("-2.5"), N("-2.25")), 0);
  EXPECT_LT(compare(N("0.0999"), N("0.1")), 0);
  EXPECT_GT(compare(N("100"), N("99.999")), 0);
  // -Infinity < finite < Infinity < NaN; NaN equals NaN.
  EXPECT_LT(compare(N("-Infinity"), N("-99999999999999999999")), 0);
  EXPECT_LT(compare(N("99999999999999999999"), N("Infinity")), 0);
  EXPECT_LT(compare(N("Infinity"), N("NaN")), 0);
  EXPECT_EQ(compare(N("NaN"), N("NaN")), 0);
  EXPECT_GT(compare(Value::real(std::nan("")), Value::real(1e300)), 0);
}

TEST(Decimal, ExactSums) {
  std::string out;
  ASSERT_TRUE(add_decimal("0.10", "0.2", out));
  EXPECT_EQ(out, "0.30");
  ASSERT_TRUE(add_decimal("-5", "2.25", out));
  EXPECT_EQ(out, "-2.75");
  ASSERT_TRUE(add_decimal("99999999999999999999", "1", out));
  EXPECT_EQ(out, "100000000000000000000");
  EXPECT_FALSE(add_decimal("NaN", "1", out));
}

struct ParamCase {
  QueryParamType type;
  const char* text;
  const char* bound;  // nullptr: refused
};

TEST(Params, CheckedAndNormalised) {
  const ParamCase cases[] = {
      {QueryParamType::int64, "42", "42"},
      {QueryParamType::int64, "+7", "7"},
      {QueryParamType::int64, "-9223372036854775808", "-9223372036854775808"},
      {QueryParamType::int64, "9223372036854775808", nullptr},
      {QueryParamType::int64, "4x", nullptr},
      {QueryParamType::int64, "", nullptr},
      {QueryParamType::int64, "1;DROP TABLE x", nullptr},
      {QueryParamType::boolean, "TRUE", "true"},
      {QueryParamType::boolean, "0", "false"},
      {QueryParamType::boolean, "yes", nullptr},
      {QueryParamType::timestamp, "2025-01-02", "2025-01-02"},
      {QueryParamType::timestamp, "2025-01-02T03:04:05.123456Z", "2025-01-02T03:04:05.123456Z"},
      {QueryParamType::timestamp, "2025-01-02T03:04+05:30", "2025-01-02T03:04+05:30"},
      {QueryParamType::timestamp, "2025-13-02", nullptr},
      {QueryParamType::timestamp, "now", nullptr},
      {QueryParamType::numeric, "-12.50", "-12.50"},
      {QueryParamType::numeric, "1e-3", "1e-3"},
      {QueryParamType::numeric, ".5", ".5"},
      {QueryParamType::numeric, "1e", nullptr},
      {QueryParamType::numeric, "NaN", nullptr},
      {QueryParamType::text, "O'Brien; --", "O'Brien; --"},
      {QueryParamType::text, "caf\xc3\xa9", "caf\xc3\xa9"},
      {QueryParamType::text, "\xff", nullptr},
      {QueryParamType::text, "\xc3", nullptr},
  };
  for (const ParamCase& c : cases) {
    std::string why;
    const auto v = normalize_param(c.type, c.text, why);
    if (c.bound) {
      ASSERT_TRUE(v.has_value()) << c.text << ": " << why;
      EXPECT_EQ(*v, c.bound) << c.text;
    } else {
      EXPECT_FALSE(v.has_value()) << c.text;
      EXPECT_FALSE(why.empty());
    }
  }
  std::string why;
  EXPECT_FALSE(normalize_param(QueryParamType::text, std::string_view("a\0b", 3), why).has_value());
}

TEST(ShardMap, RangeLookup) {
  config::Databases db;
  for (std::int64_t i = 0; i < 3; ++i) {
    config::ShardConfig s;
    s.id = i;
    s.lo = i * 100 + 1;
    s.hi = (i + 1) * 100;
    db.shards.push_back(s);
  }
  EXPECT_EQ(shard_of(db, 1), std::optional<std::size_t>(0));
  EXPECT_EQ(shard_of(db, 100), std::optional<std::size_t>(0));
  EXPECT_EQ(shard_of(db, 101), std::optional<std::size_t>(1));
  EXPECT_EQ(shard_of(db, 300), std::optional<std::size_t>(2));
  EXPECT_EQ(shard_of(db, 0), std::nullopt);
  EXPECT_EQ(shard_of(db, 301), std::nullopt);
}

ResultSet rows(std::vector<std::string> cols, std::vector<Row> r) {
  ResultSet rs;
  rs.columns = std::move(cols);
  rs.rows = std::move(r);
  return rs;
}

TEST(Merge, SortedWithLimitAndOffset) {
  config::FanOut spec;
  spec.merge = config::Merge::sorted;
  spec.order_by = {{"v", true}, {"id", false}};
  spec.limit = 3;
  for (std::int64_t offset : {0, 1, 4}) {
    std::vector<ResultSet> parts = {rows({"id", "v"}, {{I(1), I(9)}, {I(4), I(5)}, {I(6), I(1)}}),
                                    rows({"id", "v"}, {{I(2), I(9)}, {I(3), I(7)}}),
                                    rows({"id", "v"}, {})};
    ResultSet out;
    std::string why;
    ASSERT_TRUE(merge(parts, spec, offset, 100, out, why)) << why;
    const std::vector<std::int64_t> all = {1, 2, 3, 4, 6};
    std::vector<std::int64_t> got, want;
    for (const Row& r : out.rows) got.push_back(r[0].i);
    for (std::size_t i = static_cast<std::size_t>(offset); i < all.size() && want.size() < 3; ++i) want.push_back(all[i]);
    EXPECT_EQ(got, want) << "offset " << offset;
  }
}

TEST(Merge, AggregateGroupsAndAvg) {
  config::FanOut spec;
  spec.merge = config::Merge::aggregate;
  spec.group_by = {"g"};
  spec.aggregates = {{"n", config::AggregateFn::count, "", ""},
                     {"s", config::AggregateFn::sum, "", ""},
                     {"lo", config::AggregateFn::min, "", ""},
                     {"mean", config::AggregateFn::avg, "s", "n"}};
  std::vector<ResultSet> parts = {
      rows({"g", "n", "s", "lo"}, {{T("a"), I(2), Value::numeric("3.5"), I(1)}, {T("b"), I(1), Value::numeric("1"), I(7)}}),
      rows({"g", "n", "s", "lo"}, {{T("a"), I(3), Value::numeric("0.5"), I(0)}})};
  ResultSet out;
  std::string why;
  ASSERT_TRUE(merge(parts, spec, 0, 100, out, why)) << why;
  ASSERT_EQ(out.rows.size(), 2u);
  EXPECT_EQ(out.columns, (std::vector<std::string>{"g", "n", "s", "lo", "mean"}));
  EXPECT_EQ(out.rows[0][0].s, "a");
  EXPECT_EQ(out.rows[0][1].i, 5);
  EXPECT_EQ(out.rows[0][2].s, "4.0");
  EXPECT_EQ(out.rows[0][3].i, 0);
  EXPECT_DOUBLE_EQ(out.rows[0][4].d, 0.8);
  EXPECT_EQ(out.rows[1][1].i, 1);
}

TEST(Merge, AggregateOverNoRowsAndRowCap) {
  config::FanOut spec;
  spec.merge = config::Merge::aggregate;
  spec.aggregates = {{"n", config::AggregateFn::count, "", ""}, {"hi", config::AggregateFn::max, "", ""}};
  std::vector<ResultSet> none;
  ResultSet out;
  std::string why;
  ASSERT_TRUE(merge(none, spec, 0, 100, out, why));
  ASSERT_EQ(out.rows.size(), 1u);
  EXPECT_EQ(out.rows[0][0].i, 0);
  EXPECT_EQ(out.rows[0][1].kind, Value::Kind::null);
  config::FanOut concat;
  std::vector<ResultSet> parts = {rows({"x"}, {{I(1)}, {I(2)}}), rows({"x"}, {{I(3)}})};
  ResultSet capped;
  EXPECT_FALSE(merge(parts, concat, 0, 2, capped, why));
  EXPECT_NE(why.find("max_rows"), std::string::npos);
}

TEST(Protobuf, DecodesWithTheGeneratedCode) {
  ResultSet rs;
  rs.columns = {"id", "name", "amount", "paid", "at", "none", "real", "doc"};
  rs.rows.push_back({I(-300), T(std::string(200, 'x')), Value::numeric("-0.50"), decode(16, "t"),
                     decode(1184, "2025-01-01 00:00:00.000001+00"), Value::null(), Value::real(2.5), decode(114, "{}")});
  rs.rows.push_back({I(9223372036854775807LL), T(""), Value::numeric("1"), decode(16, "f"), Value::null(), Value::null(),
                     Value::real(-0.0), decode(3802, "[]")});
  std::string bytes;
  append_protobuf(bytes, rs);
  virex::query::v1::Result r;
  ASSERT_TRUE(r.ParseFromString(bytes));
  ASSERT_EQ(r.columns_size(), 8);
  EXPECT_EQ(r.columns(2), "amount");
  ASSERT_EQ(r.rows_size(), 2);
  const auto& a = r.rows(0);
  ASSERT_EQ(a.values_size(), 8);
  EXPECT_EQ(a.values(0).int_value(), -300);
  EXPECT_EQ(a.values(1).text_value(), std::string(200, 'x'));
  EXPECT_EQ(a.values(2).numeric_value(), "-0.50");
  EXPECT_TRUE(a.values(3).has_bool_value());
  EXPECT_TRUE(a.values(3).bool_value());
  EXPECT_EQ(a.values(4).timestamp_micros(), 1735689600000001LL);
  EXPECT_TRUE(a.values(5).null_value());
  EXPECT_EQ(a.values(6).real_value(), 2.5);
  EXPECT_EQ(a.values(7).json_value(), "{}");
  const auto& b = r.rows(1);
  EXPECT_EQ(b.values(0).int_value(), 9223372036854775807LL);
  EXPECT_TRUE(b.values(1).has_text_value());
  EXPECT_TRUE(b.values(3).has_bool_value());
  EXPECT_FALSE(b.values(3).bool_value());
  EXPECT_TRUE(b.values(4).null_value());
}

}  // namespace
}  // namespace virex::shard
