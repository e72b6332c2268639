// Cache keys: the exact byte layout, which request differences make different keys and which do not (method
// class, host case and port, path as received, query normalisation, selected headers and cookies), and the
// Vary secondary key.
#include <virex/cache/key.hpp>

#include "messages.hpp"

#include <gtest/gtest.h>

#include <string>

namespace virex::cache {
namespace {

using namespace std::string_literals;  // "…"s keeps embedded NULs
using test::Fields;

struct Req {
  http::Method method = http::Method::get;
  std::string host = "example.com";
  std::string path = "/";
  std::string query;
  Fields headers;
};

std::string key_of(const Req& r, const KeySpec& spec) {
  const test::Request req(r.method, r.headers, r.host, r.path, r.query);
  std::string out = "stale contents";
  build_key(out, req.head(), spec);
  return out;
}

TEST(BuildKey, ExactLayout) {
  KeySpec spec;
  spec.headers = {"Accept-Language", "X-Absent"};
  spec.cookies = {"tier", "none"};
  const Req r{http::Method::get, "Example.COM", "/A/b%2F", "z=1&a=2",
              {{"accept-language", " en "}, {"Cookie", "tier=gold; x=1"}}};
  EXPECT_EQ(key_of(r, spec), "G\0example.com\0/A/b%2F\0a=2&z=1\0accept-language=2:enx-absent;\0tier=4:goldnone;"s);
}

TEST(BuildKey, MinimalLayout) {
  EXPECT_EQ(key_of(Req{}, KeySpec{}), "G\0example.com\0/\0\0\0"s);
}

TEST(BuildKey, SplitKey) {
  const std::string key = key_of(Req{http::Method::head, "Shop.Example", "/p/1", "b&a", {}}, KeySpec{});
  const KeyParts parts = split_key(key);
  EXPECT_EQ(parts.method_class, "G");
  EXPECT_EQ(parts.host, "shop.example");
  EXPECT_EQ(parts.path, "/p/1");
  EXPECT_EQ(split_key("no separators").path, "");
  EXPECT_EQ(split_key("G\0host"s).host, "");
}

// Two requests and whether they must share a key under `spec`.
struct KeyCase {
  std::string name;
  Req a;
  Req b;
  bool same;
  KeySpec spec = {};
};
void PrintTo(const KeyCase& c, std::ostream* out) { *out << c.name; }

class KeyEquality : public testing::TestWithParam<KeyCase> {};

TEST_P(KeyEquality, Compares) {
  const KeyCase& c = GetParam();
  const std::string a = key_of(c.a, c.spec);
  const std::string b = key_of(c.b, c.spec);
  if (c.same) EXPECT_EQ(a, b);
  else EXPECT_NE(a, b);
}

Req path(std::string p, std::string query = "") {
  Req r;
  r.path = std::move(p);
  r.query = std::move(query);
  return r;
}
Req query(std::string q) { return path("/", std::move(q)); }
Req method(http::Method m) {
  Req r;
  r.method = m;
  return r;
}
Req host(std::string h) {
  Req r;
  r.host = std::move(h);
  return r;
}
Req headers(Fields f) {
  Req r;
  r.headers = std::move(f);
  return r;
}
KeySpec only_query(std::vector<std::string> names) {
  KeySpec s;
  s.query = std::move(names);
  return s;
}
KeySpec ignoring_query() {
  KeySpec s;
  s.ignore_query = true;
  return s;
}
KeySpec key_headers(std::vector<std::string> names) {
  KeySpec s;
  s.headers = std::move(names);
  return s;
}
KeySpec key_cookies(std::vector<std::string> names) {
  KeySpec s;
  s.cookies = std::move(names);
  return s;
}

INSTANTIATE_TEST_SUITE_P(
    MethodHostPath, KeyEquality,
    testing::Values(
        KeyCase{"GetAndHeadShare", method(http::Method::get), method(http::Method::head), true},
        KeyCase{"PostDiffers", method(http::Method::get), method(http::Method::post), false},
        KeyCase{"PutAndPostDiffer", method(http::Method::put), method(http::Method::post), false},
        KeyCase{"HostCaseFolded", host("Example.Com"), host("example.com"), true},
        KeyCase{"HostPortStripped", host("example.com:8080"), host("example.com"), true},
        KeyCase{"IPv6HostPortStripped", host("[::1]:8080"), host("[::1]"), true},
        KeyCase{"OtherHost", host("a.example.com"), host("b.example.com"), false},
        KeyCase{"PathCaseKept", path("/A"), path("/a"), false},
        KeyCase{"PathNotPercentDecoded", path("/a%2Fb"), path("/a/b"), false},
        KeyCase{"PathPercentCaseKept", path("/a%2f"), path("/a%2F"), false},
        KeyCase{"PathDotSegmentsKept", path("/a/../b"), path("/b"), false},
        KeyCase{"TrailingSlashMatters", path("/a/"), path("/a"), false},
        KeyCase{"PathAndQueryBoundary", path("/a", "b"), path("/a?b"), false}),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Query, KeyEquality,
    testing::Values(
        KeyCase{"Same", query("a=1"), query("a=1"), true},
        KeyCase{"OrderNormalised", query("b=2&a=1&c=3"), query("a=1&c=3&b=2"), true},
        KeyCase{"RepeatedNameSortedByValue", query("a=2&a=1"), query("a=1&a=2"), true},
        KeyCase{"RepeatedPairsCount", query("a=1&a=1"), query("a=1"), false},
        KeyCase{"EmptyParamsDropped", query("&a=1&&b=2&"), query("a=1&b=2"), true},
        KeyCase{"NoQueryEqualsEmptyQuery", query(""), query("&"), true},
        KeyCase{"ValueMatters", query("a=1"), query("a=2"), false},
        KeyCase{"BareNameDiffersFromEmptyValue", query("a"), query("a="), false},
        KeyCase{"NamesCaseSensitive", query("A=1"), query("a=1"), false},
        KeyCase{"NotDecodedPlus", query("q=a+b"), query("q=a%20b"), false},
        KeyCase{"NotDecodedName", query("%61=1"), query("a=1"), false},
        KeyCase{"EqualsInValueKept", query("a=b=c"), query("a=b"), false},
        KeyCase{"SortIsByNameFirst", query("ab=1&a=2"), query("a=2&ab=1"), true},
        KeyCase{"SelectedOnlyOthersIgnored", query("a=1&utm_source=x"), query("utm_source=y&a=1"), true,
                only_query({"a"})},
        KeyCase{"SelectedValueMatters", query("a=1&b=1"), query("a=2&b=1"), false, only_query({"a"})},
        KeyCase{"SelectedAbsentVsPresent", query("b=1"), query("a=1&b=1"), false, only_query({"a", "c"})},
        KeyCase{"SelectedNamesExact", query("A=1"), query(""), true, only_query({"a"})},
        KeyCase{"IgnoreQuery", query("a=1"), query("b=2"), true, ignoring_query()},
        KeyCase{"IgnoreQueryWinsOverSelection", query("a=1"), query("a=2"), true,
                [] { KeySpec s = only_query({"a"}); s.ignore_query = true; return s; }()}),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    HeadersAndCookies, KeyEquality,
    testing::Values(
        KeyCase{"UnlistedHeaderIgnored", headers({{"Accept", "a"}}), headers({{"Accept", "b"}}), true},
        KeyCase{"ListedHeaderValueMatters", headers({{"X-Tenant", "a"}}), headers({{"X-Tenant", "b"}}), false,
                key_headers({"x-tenant"})},
        KeyCase{"ListedHeaderNameCaseInsensitive", headers({{"x-tenant", "a"}}), headers({{"X-TENANT", "a"}}), true,
                key_headers({"X-Tenant"})},
        KeyCase{"ListedHeaderValueCaseKept", headers({{"X-Tenant", "A"}}), headers({{"X-Tenant", "a"}}), false,
                key_headers({"x-tenant"})},
        KeyCase{"ListedHeaderWhitespaceTrimmed", headers({{"X-Tenant", "  a\t"}}), headers({{"X-Tenant", "a"}}), true,
                key_headers({"x-tenant"})},
        KeyCase{"AbsentDiffersFromEmpty", headers({}), headers({{"X-Tenant", ""}}), false, key_headers({"x-tenant"})},
        KeyCase{"SeveralFieldsJoined", headers({{"X-T", "a"}, {"x-t", "b"}}), headers({{"X-T", "a, b"}}), true,
                key_headers({"x-t"})},
        KeyCase{"FieldOrderMatters", headers({{"X-T", "a"}, {"X-T", "b"}}), headers({{"X-T", "b"}, {"X-T", "a"}}),
                false, key_headers({"x-t"})},
        KeyCase{"ValuesCannotShiftBetweenHeaders", headers({{"A", "x;b=1:y"}}), headers({{"A", "x"}, {"B", "y"}}),
                false, key_headers({"a", "b"})},
        KeyCase{"CookieValueMatters", headers({{"Cookie", "tier=gold"}}), headers({{"Cookie", "tier=free"}}), false,
                key_cookies({"tier"})},
        KeyCase{"OtherCookiesIgnored", headers({{"Cookie", "session=1; tier=gold"}}),
                headers({{"Cookie", "tier=gold; session=2"}}), true, key_cookies({"tier"})},
        KeyCase{"CookiesIgnoredUnlessListed", headers({{"Cookie", "tier=gold"}}), headers({}), true},
        KeyCase{"CookieNameCaseSensitive", headers({{"Cookie", "Tier=gold"}}), headers({}), true,
                key_cookies({"tier"})},
        KeyCase{"CookieAbsentDiffersFromEmpty", headers({{"Cookie", "tier="}}), headers({}), false,
                key_cookies({"tier"})},
        KeyCase{"CookieInSecondField", headers({{"Cookie", "a=1"}, {"Cookie", "tier=gold"}}),
                headers({{"Cookie", "tier=gold"}}), true, key_cookies({"tier"})},
        KeyCase{"CookieFirstOccurrence", headers({{"Cookie", "tier=gold; tier=free"}}), headers({{"Cookie", "tier=gold"}}),
                true, key_cookies({"tier"})},
        KeyCase{"CookieSpacing", headers({{"Cookie", "a=1;tier = gold ;b=2"}}), headers({{"Cookie", "tier=gold"}}),
                true, key_cookies({"tier"})},
        KeyCase{"CookieSectionSeparateFromHeaders", headers({{"Cookie", "x=1"}}), headers({{"X", "1"}}), false,
                [] { KeySpec s; s.headers = {"x"}; s.cookies = {"x"}; return s; }()}),
    [](const auto& info) { return info.param.name; });

// ---- Vary ----------------------------------------------------------------------------------------------------

std::string vary_of(const Fields& request, const Fields& response, bool expect_ok = true) {
  const test::Request req(http::Method::get, request);
  const test::Headers resp(response);
  std::string out = "stale contents";
  EXPECT_EQ(vary_key(out, req.head(), resp.span()), expect_ok);
  return out;
}

TEST(VaryKey, NoVaryIsEmpty) {
  EXPECT_EQ(vary_of({{"Accept-Encoding", "gzip"}}, {{"Content-Type", "text/html"}}), "");
}

TEST(VaryKey, StarIsRefused) {
  EXPECT_EQ(vary_of({}, {{"Vary", "*"}}, false), "");
  EXPECT_EQ(vary_of({}, {{"Vary", "Accept, *"}}, false), "");
  EXPECT_EQ(vary_of({}, {{"Vary", "Accept"}, {"Vary", " * "}}, false), "");
}

TEST(VaryKey, ExactLayout) {
  EXPECT_EQ(vary_of({{"Accept-Encoding", "gzip,  br"}, {"accept-encoding", "zstd"}},
                    {{"Vary", "Accept-Language, accept-encoding"}}),
            "accept-encoding=12:gzip,br,zstdaccept-language;");
}

TEST(VaryKey, NamesNormalised) {
  const Fields request = {{"Accept-Encoding", "gzip"}, {"Accept-Language", "en"}};
  const std::string key = vary_of(request, {{"Vary", "Accept-Encoding, Accept-Language"}});
  EXPECT_EQ(vary_of(request, {{"Vary", "accept-language,ACCEPT-ENCODING"}}), key);     // order and case
  EXPECT_EQ(vary_of(request, {{"Vary", "Accept-Language"}, {"Vary", "Accept-Encoding"}}), key);  // fields
  EXPECT_EQ(vary_of(request, {{"Vary", "Accept-Encoding, accept-encoding, Accept-Language,"}}), key);  // repeats
}

TEST(VaryKey, RequestValues) {
  const Fields vary = {{"Vary", "Accept-Encoding"}};
  const std::string gzip = vary_of({{"Accept-Encoding", "gzip, br"}}, vary);
  EXPECT_EQ(vary_of({{"accept-encoding", "gzip,br"}}, vary), gzip);             // whitespace normalised
  EXPECT_EQ(vary_of({{"Accept-Encoding", "gzip"}, {"Accept-Encoding", "br"}}, vary), gzip);  // fields combined
  EXPECT_NE(vary_of({{"Accept-Encoding", "br, gzip"}}, vary), gzip);            // order kept
  EXPECT_NE(vary_of({{"Accept-Encoding", "gzip"}}, vary), gzip);
  EXPECT_NE(vary_of({}, vary), vary_of({{"Accept-Encoding", ""}}, vary));       // absent vs empty
  EXPECT_EQ(vary_of({{"Accept", "x"}}, vary), vary_of({}, vary));               // other headers ignored
}

}  // namespace
}  // namespace virex::cache
