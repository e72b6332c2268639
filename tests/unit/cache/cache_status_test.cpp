// RFC 9211 Cache-Status values: one row per outcome the pipeline reports.
#include <virex/cache/cache_status.hpp>

#include <gtest/gtest.h>

#include <string>

namespace virex::cache {
namespace {

struct StatusCase {
  std::string name;
  CacheStatus status;
  std::string expected;
  std::string cache_name = "virex-edge";
};
void PrintTo(const StatusCase& c, std::ostream* out) { *out << c.name; }

class AppendCacheStatus : public testing::TestWithParam<StatusCase> {};

TEST_P(AppendCacheStatus, Serialises) {
  std::string out = "prefix|";
  append_cache_status(out, GetParam().status, GetParam().cache_name);
  EXPECT_EQ(out, "prefix|" + GetParam().expected);
}

CacheStatus hit(std::int64_t ttl) {
  CacheStatus s;
  s.hit = true;
  s.ttl = ttl;
  return s;
}
CacheStatus fwd(Forward f, bool stored = false, unsigned status = 0) {
  CacheStatus s;
  s.fwd = f;
  s.stored = stored;
  s.fwd_status = status;
  return s;
}
CacheStatus with_detail(CacheStatus s, std::string_view detail) {
  s.detail = detail;
  return s;
}
CacheStatus collapsed(CacheStatus s) {
  s.collapsed = true;
  return s;
}
CacheStatus with_ttl(CacheStatus s, std::int64_t ttl) {
  s.ttl = ttl;
  return s;
}

INSTANTIATE_TEST_SUITE_P(
    Outcomes, AppendCacheStatus,
    testing::Values(
        StatusCase{"Hit", hit(42), "virex-edge; hit; ttl=42"},
        StatusCase{"HitStaleNegativeTtl", hit(-5), "virex-edge; hit; ttl=-5"},
        StatusCase{"HitIgnoresFwd", [] { auto s = hit(1); s.fwd = Forward::miss; s.fwd_status = 200; return s; }(),
                   "virex-edge; hit; ttl=1"},
        StatusCase{"MissStored", fwd(Forward::miss, true), "virex-edge; fwd=miss; stored"},
        StatusCase{"UriMissStoredWithStatus", fwd(Forward::uri_miss, true, 200),
                   "virex-edge; fwd=uri-miss; fwd-status=200; stored"},
        StatusCase{"VaryMiss", fwd(Forward::vary_miss), "virex-edge; fwd=vary-miss"},
        StatusCase{"StaleRevalidated", with_ttl(fwd(Forward::stale, true, 304), 60),
                   "virex-edge; fwd=stale; fwd-status=304; stored; ttl=60"},
        StatusCase{"Collapsed", collapsed(fwd(Forward::uri_miss)), "virex-edge; fwd=uri-miss; collapsed"},
        StatusCase{"Bypass", fwd(Forward::bypass), "virex-edge; fwd=bypass"},
        StatusCase{"Method", fwd(Forward::method), "virex-edge; fwd=method"},
        StatusCase{"Request", fwd(Forward::request), "virex-edge; fwd=request"},
        StatusCase{"Partial", fwd(Forward::partial), "virex-edge; fwd=partial"},
        StatusCase{"NotStoredTokenDetail", with_detail(fwd(Forward::uri_miss, false, 200), "set_cookie"),
                   "virex-edge; fwd=uri-miss; fwd-status=200; detail=set_cookie"},
        StatusCase{"DetailNeedsQuoting", with_detail(fwd(Forward::miss), "no store \"x\" \\ y\x01"),
                   "virex-edge; fwd=miss; detail=\"no store \\\"x\\\" \\\\ y?\""},
        StatusCase{"DetailStartingWithDigit", with_detail(fwd(Forward::miss), "404"),
                   "virex-edge; fwd=miss; detail=\"404\""},
        StatusCase{"NothingKnown", CacheStatus{}, "virex-edge"},
        StatusCase{"OtherName", hit(1), "edge-1.eu; hit; ttl=1", "edge-1.eu"},
        StatusCase{"NameNeedsQuoting", hit(1), "\"edge 1\"; hit; ttl=1", "edge 1"}),
    [](const auto& info) { return info.param.name; });

TEST(Forward, Names) {
  EXPECT_EQ(to_string(Forward::none), "");
  EXPECT_EQ(to_string(Forward::uri_miss), "uri-miss");
  EXPECT_EQ(to_string(Forward::vary_miss), "vary-miss");
  EXPECT_EQ(to_string(Forward::stale), "stale");
}

}  // namespace
}  // namespace virex::cache
