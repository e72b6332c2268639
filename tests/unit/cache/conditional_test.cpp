// Conditional requests answered from the cache (RFC 9110 §13): If-None-Match with weak comparison, lists and
// "*", If-Modified-Since in all three HTTP-date formats, and their precedence. One table row per case.
#include <virex/cache/freshness.hpp>

#include "messages.hpp"

#include <gtest/gtest.h>

#include <string>

namespace virex::cache {
namespace {

using test::Fields;
using test::kNow;

// Stored validators of the rows below.
const std::string kLastModified = "Tue, 14 Nov 2023 20:00:00 GMT";   // kNow − 8000 s

struct ConditionalCase {
  std::string name;
  Fields request;
  bool expected;
  std::string etag = "\"v1\"";
  std::string last_modified = kLastModified;
  http::Method method = http::Method::get;
};
void PrintTo(const ConditionalCase& c, std::ostream* out) { *out << c.name; }

class NotModified : public testing::TestWithParam<ConditionalCase> {};

TEST_P(NotModified, Evaluates) {
  const ConditionalCase& c = GetParam();
  const test::Request req(c.method, c.request);
  EXPECT_EQ(not_modified(req.head(), c.etag, c.last_modified, kNow), c.expected);
}

Fields inm(std::string value) { return {{"If-None-Match", std::move(value)}}; }
Fields ims(std::string value) { return {{"If-Modified-Since", std::move(value)}}; }

INSTANTIATE_TEST_SUITE_P(
    IfNoneMatch, NotModified,
    testing::Values(
        ConditionalCase{"NoConditions", {}, false},
        ConditionalCase{"StrongEqual", inm("\"v1\""), true},
        ConditionalCase{"Different", inm("\"v2\""), false},
        ConditionalCase{"WeakRequestStrongStored", inm("W/\"v1\""), true},
        ConditionalCase{"StrongRequestWeakStored", inm("\"v1\""), true, "W/\"v1\""},
        ConditionalCase{"WeakBoth", inm("W/\"v1\""), true, "W/\"v1\""},
        ConditionalCase{"WeakDifferent", inm("W/\"v2\""), false, "W/\"v1\""},
        ConditionalCase{"CaseSensitive", inm("\"V1\""), false},
        ConditionalCase{"QuotesMatter", inm("v1"), false},
        ConditionalCase{"LowerCaseWeakPrefixIsNotWeak", inm("w/\"v1\""), false},
        ConditionalCase{"ListMatchLast", inm("\"a\", \"b\", \"v1\""), true},
        ConditionalCase{"ListMatchFirstNoSpaces", inm("\"v1\",\"a\""), true},
        ConditionalCase{"ListWithWeakMember", inm("\"a\", W/\"v1\""), true},
        ConditionalCase{"ListNoMatch", inm("\"a\", W/\"b\""), false},
        ConditionalCase{"ListEmptyMembers", inm(" , ,\"v1\" ,"), true},
        ConditionalCase{"TagWithComma", inm("\"a,b\""), true, "\"a,b\""},
        ConditionalCase{"TagWithCommaNotSplit", inm("\"x,v1\""), false, "\"v1\""},
        ConditionalCase{"SeveralFields", {{"If-None-Match", "\"a\""}, {"if-none-match", "\"v1\""}}, true},
        ConditionalCase{"Star", inm("*"), true},
        ConditionalCase{"StarWithoutStoredEtag", inm("*"), true, ""},
        ConditionalCase{"StarWithSpaces", inm("  * "), true},
        ConditionalCase{"TagButNoStoredEtag", inm("\"v1\""), false, ""},
        ConditionalCase{"UnterminatedTag", inm("\"v1"), false},
        ConditionalCase{"UnterminatedAfterMatch", inm("\"v1\", \"x"), true},
        ConditionalCase{"UnquotedStoredTagComparedAsIs", inm("abc"), true, "abc"},
        ConditionalCase{"Head", inm("\"v1\""), true, "\"v1\"", kLastModified, http::Method::head},
        ConditionalCase{"Post", inm("\"v1\""), false, "\"v1\"", kLastModified, http::Method::post},
        ConditionalCase{"Put", inm("*"), false, "\"v1\"", kLastModified, http::Method::put}),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    IfModifiedSince, NotModified,
    testing::Values(
        ConditionalCase{"SameDate", ims(kLastModified), true},
        ConditionalCase{"Later", ims("Tue, 14 Nov 2023 21:00:00 GMT"), true},
        ConditionalCase{"Earlier", ims("Tue, 14 Nov 2023 19:59:59 GMT"), false},
        ConditionalCase{"Rfc850", ims("Tuesday, 14-Nov-23 20:00:00 GMT"), true},
        ConditionalCase{"Rfc850Earlier", ims("Tuesday, 14-Nov-23 19:00:00 GMT"), false},
        ConditionalCase{"Asctime", ims("Tue Nov 14 20:00:00 2023"), true},
        ConditionalCase{"AsctimeEarlier", ims("Tue Nov 14 19:00:00 2023"), false},
        ConditionalCase{"StoredRfc850", ims(kLastModified), true, "", "Tuesday, 14-Nov-23 20:00:00 GMT"},
        ConditionalCase{"StoredAsctime", ims(kLastModified), true, "", "Tue Nov 14 20:00:00 2023"},
        ConditionalCase{"InvalidDateIgnored", ims("yesterday"), false},
        ConditionalCase{"NotGmtIgnored", ims("Tue, 14 Nov 2023 21:00:00 CET"), false},
        ConditionalCase{"TwoFieldsIgnored", {{"If-Modified-Since", kLastModified}, {"If-Modified-Since", kLastModified}},
                        false},
        ConditionalCase{"ListIgnored", ims(kLastModified + ", " + kLastModified), false},
        ConditionalCase{"NoStoredDate", ims(kLastModified), false, "\"v1\"", ""},
        ConditionalCase{"UnparsableStoredDate", ims(kLastModified), false, "\"v1\"", "recently"},
        ConditionalCase{"Head", ims(kLastModified), true, "\"v1\"", kLastModified, http::Method::head},
        ConditionalCase{"Post", ims(kLastModified), false, "\"v1\"", kLastModified, http::Method::post},
        // RFC 9110 §13.2.2: If-None-Match, when present, decides alone.
        ConditionalCase{"NoneMatchFailsDespiteModifiedSince",
                        {{"If-None-Match", "\"v2\""}, {"If-Modified-Since", kLastModified}}, false},
        ConditionalCase{"NoneMatchMatchesDespiteOldModifiedSince",
                        {{"If-None-Match", "\"v1\""}, {"If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT"}}, true},
        ConditionalCase{"EmptyNoneMatchStillDecides", {{"If-None-Match", ""}, {"If-Modified-Since", kLastModified}},
                        false}),
    [](const auto& info) { return info.param.name; });

TEST(WeakEtagMatch, Rfc9110Table) {
  // RFC 9110 §8.8.3.2's example table, weak column.
  EXPECT_FALSE(weak_etag_match("W/\"1\"", "W/\"2\""));
  EXPECT_TRUE(weak_etag_match("W/\"1\"", "W/\"1\""));
  EXPECT_TRUE(weak_etag_match("W/\"1\"", "\"1\""));
  EXPECT_TRUE(weak_etag_match("\"1\"", "\"1\""));
  EXPECT_FALSE(weak_etag_match("", ""));
  EXPECT_FALSE(weak_etag_match("W/", "W/"));
}

}  // namespace
}  // namespace virex::cache
