// Freshness and storage policy, table-driven: Cache-Control parsing (every directive, argument forms, repeats,
// malformed values), decide() (methods, statuses, every directive and their combinations, CDN-Cache-Control,
// Expires/Date/Age, route policy) and the age and usability helpers.
#include <virex/cache/freshness.hpp>

#include "messages.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace virex::cache {
namespace {

using std::chrono::seconds;
using test::date;
using test::Fields;
using test::kNow;

// ---- parse_cache_control -------------------------------------------------------------------------------------

// A compact, stable rendering of what was parsed, so table rows stay one line each.
std::string summary(const CacheControl& cc) {
  std::string s;
  const auto flag = [&](bool on, const char* name) {
    if (on) s += std::string(s.empty() ? "" : " ") + name;
  };
  const auto value = [&](const std::optional<seconds>& v, const char* name) {
    if (v) s += std::string(s.empty() ? "" : " ") + name + "=" + std::to_string(v->count());
  };
  flag(cc.present, "present");
  flag(cc.syntax_error, "syntax-error");
  flag(cc.invalid_lifetime, "invalid-lifetime");
  value(cc.max_age, "max-age");
  value(cc.s_maxage, "s-maxage");
  value(cc.stale_while_revalidate, "swr");
  value(cc.stale_if_error, "sie");
  flag(cc.no_store, "no-store");
  flag(cc.no_cache, "no-cache");
  flag(cc.private_, "private");
  flag(cc.public_, "public");
  flag(cc.must_revalidate, "must-revalidate");
  flag(cc.proxy_revalidate, "proxy-revalidate");
  flag(cc.immutable, "immutable");
  return s;
}

struct ParseCase {
  std::string name;
  Fields fields;
  std::string expected;
};
void PrintTo(const ParseCase& c, std::ostream* out) { *out << c.name; }

class ParseCacheControl : public testing::TestWithParam<ParseCase> {};

TEST_P(ParseCacheControl, Parses) {
  const test::Headers headers(GetParam().fields);
  EXPECT_EQ(summary(parse_cache_control(headers.span(), "Cache-Control")), GetParam().expected);
}

Fields cc(std::string value) { return {{"Cache-Control", std::move(value)}}; }

INSTANTIATE_TEST_SUITE_P(
    Directives, ParseCacheControl,
    testing::Values(
        ParseCase{"Absent", {{"Expires", "0"}}, ""},
        ParseCase{"EmptyValue", cc(""), ""},
        ParseCase{"MaxAge", cc("max-age=60"), "present max-age=60"},
        ParseCase{"SMaxage", cc("s-maxage=30"), "present s-maxage=30"},
        ParseCase{"MaxAgeZero", cc("max-age=0"), "present max-age=0"},
        ParseCase{"NoStore", cc("no-store"), "present no-store"},
        ParseCase{"NoCache", cc("no-cache"), "present no-cache"},
        ParseCase{"NoCacheFieldList", cc("no-cache=\"Set-Cookie, X-Foo\""), "present no-cache"},
        ParseCase{"NoCacheTokenArg", cc("no-cache=Set-Cookie"), "present no-cache"},
        ParseCase{"Private", cc("private"), "present private"},
        ParseCase{"PrivateFieldList", cc("private=\"Authorization\""), "present private"},
        ParseCase{"Public", cc("public"), "present public"},
        ParseCase{"MustRevalidate", cc("must-revalidate"), "present must-revalidate"},
        ParseCase{"ProxyRevalidate", cc("proxy-revalidate"), "present proxy-revalidate"},
        ParseCase{"Immutable", cc("immutable"), "present immutable"},
        ParseCase{"StaleWhileRevalidate", cc("stale-while-revalidate=30"), "present swr=30"},
        ParseCase{"StaleIfError", cc("stale-if-error=86400"), "present sie=86400"},
        ParseCase{"Everything",
                  cc("public, max-age=10, s-maxage=20, must-revalidate, proxy-revalidate, immutable, "
                     "stale-while-revalidate=5, stale-if-error=6, no-cache, no-store, private"),
                  "present max-age=10 s-maxage=20 swr=5 sie=6 no-store no-cache private public must-revalidate "
                  "proxy-revalidate immutable"}),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Syntax, ParseCacheControl,
    testing::Values(
        ParseCase{"CaseInsensitiveNames", cc("Max-Age=5, NO-STORE, Public"), "present max-age=5 no-store public"},
        ParseCase{"QuotedDelta", cc("max-age=\"60\""), "present max-age=60"},
        ParseCase{"QuotedDeltaWithEscape", cc("max-age=\"6\\0\""), "present max-age=60"},
        ParseCase{"WhitespaceAndEmptyMembers", cc(" ,  max-age=5 ,, public\t,"), "present max-age=5 public"},
        ParseCase{"SeveralFieldsJoined", {{"Cache-Control", "public"}, {"cache-control", "max-age=5"}},
                  "present max-age=5 public"},
        ParseCase{"OtherFieldsIgnored", {{"Pragma", "no-cache"}, {"Cache-Control", "max-age=5"}},
                  "present max-age=5"},
        ParseCase{"UnknownDirectivesIgnored", cc("foo, bar=baz, qux=\"a, max-age=1\", max-age=5"), "present max-age=5"},
        ParseCase{"RepeatedMaxAgeKeepsFirst", cc("max-age=10, max-age=20"), "present max-age=10"},
        ParseCase{"RepeatedAcrossFieldsKeepsFirst", {{"Cache-Control", "max-age=10"}, {"Cache-Control", "max-age=3"}},
                  "present max-age=10"},
        ParseCase{"HugeDeltaIs2To31", cc("max-age=99999999999999999999"), "present max-age=2147483648"},
        ParseCase{"MaxAgeWord", cc("max-age=abc"), "present invalid-lifetime"},
        ParseCase{"MaxAgeNegative", cc("max-age=-5"), "present invalid-lifetime"},
        ParseCase{"MaxAgeFraction", cc("max-age=5.5"), "present invalid-lifetime"},
        ParseCase{"MaxAgeEmpty", cc("max-age="), "present invalid-lifetime"},
        ParseCase{"MaxAgeNoArgument", cc("max-age"), "present invalid-lifetime"},
        ParseCase{"MaxAgeQuotedEmpty", cc("max-age=\"\""), "present invalid-lifetime"},
        ParseCase{"SMaxageWord", cc("s-maxage=x, max-age=5"), "present invalid-lifetime max-age=5"},
        ParseCase{"MalformedFirstValidLaterStaysInvalid", cc("max-age=x, max-age=5"), "present invalid-lifetime"},
        ParseCase{"SwrMalformedIgnored", cc("stale-while-revalidate=soon, max-age=5"), "present max-age=5"},
        ParseCase{"SieNoArgumentIgnored", cc("stale-if-error"), "present"},
        ParseCase{"SpaceInsideArgument", cc("max-age=5 0, public"), "present syntax-error public"},
        ParseCase{"UnterminatedQuote", cc("public, private=\"a, b"), "present syntax-error public"},
        ParseCase{"LoneQuote", cc("\"x\", no-store"), "present syntax-error no-store"},
        ParseCase{"Semicolon", cc("max-age=5; public"), "present syntax-error"}),
    [](const auto& info) { return info.param.name; });

TEST(ParseCacheControl, ReadsOnlyTheNamedField) {
  const test::Headers headers({{"Cache-Control", "no-store"}, {"CDN-Cache-Control", "max-age=600"}});
  EXPECT_EQ(summary(parse_cache_control(headers.span(), "CDN-Cache-Control")), "present max-age=600");
  EXPECT_EQ(summary(parse_cache_control(headers.span(), "cdn-cache-control")), "present max-age=600");
}

// ---- decide ----------------------------------------------------------------------------------------------------

struct Want {
  bool store = false;
  std::int64_t ttl = 0;
  std::int64_t swr = 0;
  std::int64_t sie = 0;
  bool must_revalidate = false;
  std::int64_t age = 0;
  std::string reason;
};

Want stored(std::int64_t ttl, std::int64_t swr = 0, std::int64_t sie = 0, bool must_revalidate = false,
            std::int64_t age = 0) {
  return {true, ttl, swr, sie, must_revalidate, age, ""};
}
Want refused(std::string reason) { return {false, 0, 0, 0, false, 0, std::move(reason)}; }

RoutePolicy policy(std::optional<int> edge_ttl = std::nullopt) {
  RoutePolicy p;
  if (edge_ttl) p.edge_ttl = seconds(*edge_ttl);
  return p;
}
RoutePolicy with(RoutePolicy p, void (*change)(RoutePolicy&)) {
  change(p);
  return p;
}

struct DecideCase {
  std::string name;
  Fields response;
  Want want;
  RoutePolicy route = policy();
  unsigned status = 200;
  Fields request = {};
  http::Method method = http::Method::get;
};
void PrintTo(const DecideCase& c, std::ostream* out) { *out << c.name; }

class Decide : public testing::TestWithParam<DecideCase> {};

TEST_P(Decide, Decides) {
  const DecideCase& c = GetParam();
  const test::Request req(c.method, c.request);
  const test::Response resp(c.status, c.response);
  const StoreDecision d = decide(req.head(), resp.head(), c.route, kNow);
  EXPECT_EQ(d.store, c.want.store);
  EXPECT_EQ(d.reason, c.want.reason);
  EXPECT_EQ(d.ttl, seconds(c.want.ttl));
  EXPECT_EQ(d.swr, seconds(c.want.swr));
  EXPECT_EQ(d.sie, seconds(c.want.sie));
  EXPECT_EQ(d.must_revalidate, c.want.must_revalidate);
  EXPECT_EQ(d.initial_age, seconds(c.want.age));
}

const Fields kMaxAge60 = cc("max-age=60");

INSTANTIATE_TEST_SUITE_P(
    MethodsAndStatuses, Decide,
    testing::Values(
        DecideCase{"Get200MaxAge", kMaxAge60, stored(60)},
        DecideCase{"HeadNeverStored", kMaxAge60, refused("head"), policy(), 200, {}, http::Method::head},
        DecideCase{"Post", kMaxAge60, refused("method"), policy(), 200, {}, http::Method::post},
        DecideCase{"Put", kMaxAge60, refused("method"), policy(), 200, {}, http::Method::put},
        DecideCase{"Options", kMaxAge60, refused("method"), policy(), 200, {}, http::Method::options},
        DecideCase{"Partial206", kMaxAge60, refused("partial"), policy(), 206},
        DecideCase{"NotModified304", kMaxAge60, refused("status"), policy(), 304},
        DecideCase{"Interim100", kMaxAge60, refused("status"), policy(), 100},
        // RFC 9110 §15.1: cacheable by default, so the route's edge_ttl may stand in for a lifetime.
        DecideCase{"Default200", {}, stored(30), policy(30), 200},
        DecideCase{"Default203", {}, stored(30), policy(30), 203},
        DecideCase{"Default204", {}, stored(30), policy(30), 204},
        DecideCase{"Default300", {}, stored(30), policy(30), 300},
        DecideCase{"Default301", {}, stored(30), policy(30), 301},
        DecideCase{"Default308", {}, stored(30), policy(30), 308},
        DecideCase{"Default405", {}, stored(30), policy(30), 405},
        DecideCase{"Default414", {}, stored(30), policy(30), 414},
        DecideCase{"Default501", {}, stored(30), policy(30), 501},
        // Not cacheable by default: only with explicit freshness (or public).
        DecideCase{"Found302NoLifetime", {}, refused("status"), policy(30), 302},
        DecideCase{"Found302MaxAge", kMaxAge60, stored(30), policy(30), 302},
        DecideCase{"Found302Public", cc("public"), stored(30), policy(30), 302},
        DecideCase{"Error500SMaxage", cc("s-maxage=5"), stored(5, 0, 0, true), policy(), 500},
        DecideCase{"Error503Expires", {{"Date", date()}, {"Expires", date(20)}}, stored(20), policy(), 503},
        DecideCase{"Error500InvalidExpiresIsExplicitButStale", {{"Expires", "0"}}, stored(0), policy(), 500},
        DecideCase{"Error502Nothing", {}, refused("status"), policy(60), 502}),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Refusals, Decide,
    testing::Values(
        DecideCase{"ResponseNoStore", cc("no-store, max-age=60"), refused("no_store")},
        DecideCase{"RequestNoStore", kMaxAge60, refused("no_store"), policy(), 200, cc("no-store")},
        DecideCase{"RequestNoCacheStillStores", kMaxAge60, stored(60), policy(), 200, cc("no-cache, max-age=0")},
        DecideCase{"Private", cc("private, max-age=60"), refused("private")},
        DecideCase{"PrivateFieldList", cc("private=\"Set-Cookie\", max-age=60"), refused("private")},
        DecideCase{"PrivateBeatsPublic", cc("public, private, s-maxage=60"), refused("private")},
        DecideCase{"NoStoreBeatsPrivate", cc("private, no-store"), refused("no_store")},
        DecideCase{"PrivateScopeRoute", kMaxAge60, refused("private_scope"),
                   with(policy(60), [](RoutePolicy& p) { p.private_scope = true; })},
        // A per-user store (a private route's regional copy) is a private cache: `private` may be stored there.
        DecideCase{"PrivateInPerUserStore", cc("private, max-age=60"), stored(60),
                   with(policy(), [](RoutePolicy& p) { p.per_user = true; })},
        DecideCase{"NoStoreEvenPerUser", cc("private, no-store"), refused("no_store"),
                   with(policy(), [](RoutePolicy& p) { p.per_user = true; })},
        DecideCase{"AuthorizationAlone", kMaxAge60, refused("authorization"), policy(), 200,
                   {{"Authorization", "Bearer x"}}},
        DecideCase{"AuthorizationPublic", cc("public, max-age=60"), stored(60), policy(), 200,
                   {{"authorization", "Bearer x"}}},
        DecideCase{"AuthorizationSMaxage", cc("s-maxage=60"), stored(60, 0, 0, true), policy(), 200,
                   {{"Authorization", "Bearer x"}}},
        DecideCase{"AuthorizationMustRevalidate", cc("must-revalidate, max-age=60"), stored(60, 0, 0, true),
                   policy(), 200, {{"Authorization", "Bearer x"}}},
        DecideCase{"AuthorizationEdgeTtlOnly", {}, refused("authorization"), policy(60), 200,
                   {{"Authorization", "Basic eDp5"}}},
        DecideCase{"SetCookie", {{"Cache-Control", "public, max-age=60"}, {"Set-Cookie", "a=b"}}, refused("set_cookie")},
        DecideCase{"SetCookieAllowedByRoute", {{"Cache-Control", "max-age=60"}, {"set-cookie", "a=b"}}, stored(60),
                   with(policy(), [](RoutePolicy& p) { p.store_set_cookie = true; })},
        DecideCase{"VaryStar", {{"Cache-Control", "max-age=60"}, {"Vary", "*"}}, refused("vary_star")},
        DecideCase{"VaryStarInList", {{"Cache-Control", "max-age=60"}, {"Vary", "Accept-Encoding , *"}},
                   refused("vary_star")},
        DecideCase{"VaryStarInSecondField",
                   {{"Cache-Control", "max-age=60"}, {"Vary", "Accept"}, {"vary", "*"}}, refused("vary_star")},
        DecideCase{"VaryNamesStore", {{"Cache-Control", "max-age=60"}, {"Vary", "Accept-Encoding"}}, stored(60)},
        DecideCase{"NoLifetimeNoEdgeTtl", {}, refused("no_lifetime")},
        DecideCase{"PublicAloneHasNoLifetime", cc("public"), refused("no_lifetime")},
        DecideCase{"ImmutableAloneHasNoLifetime", cc("immutable"), refused("no_lifetime")}),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Lifetime, Decide,
    testing::Values(
        DecideCase{"SMaxageOverMaxAge", cc("max-age=10, s-maxage=30"), stored(30, 0, 0, true)},
        DecideCase{"SMaxageZero", cc("s-maxage=0, max-age=60"), stored(0, 0, 0, true)},
        DecideCase{"MaxAgeOverExpires", {{"Cache-Control", "max-age=10"}, {"Date", date()}, {"Expires", date(300)}},
                   stored(10)},
        DecideCase{"ExpiresMinusDate", {{"Date", date()}, {"Expires", date(120)}}, stored(120)},
        DecideCase{"ExpiresMinusOldDate", {{"Date", date(-100)}, {"Expires", date(20)}}, stored(20, 0, 0, false, 100)},
        DecideCase{"ExpiresWithoutDateUsesNow", {{"Expires", date(45)}}, stored(45)},
        DecideCase{"ExpiresWithInvalidDateUsesNow", {{"Date", "yesterday"}, {"Expires", date(45)}}, stored(45)},
        DecideCase{"ExpiresRfc850", {{"Date", date()}, {"Expires", "Tuesday, 14-Nov-23 22:14:20 GMT"}}, stored(60)},
        DecideCase{"ExpiresAsctime", {{"Date", date()}, {"Expires", "Tue Nov 14 22:14:20 2023"}}, stored(60)},
        DecideCase{"ExpiresInThePast", {{"Date", date()}, {"Expires", date(-10)}}, stored(0)},
        DecideCase{"ExpiresZeroIsPast", {{"Expires", "0"}}, stored(0)},
        DecideCase{"ExpiresGarbageIsPast", {{"Expires", "tomorrow"}}, stored(0), policy(60)},
        DecideCase{"ExpiresFirstFieldWins", {{"Date", date()}, {"Expires", date(30)}, {"Expires", date(90)}},
                   stored(30)},
        DecideCase{"MalformedMaxAgeIsStale", cc("max-age=ten"), stored(0), policy(60)},
        DecideCase{"MalformedSMaxageIsStale", cc("s-maxage=\"x\", max-age=60"), stored(0)},
        DecideCase{"QuotedMaxAge", cc("max-age=\"60\""), stored(60)},
        DecideCase{"HugeMaxAge", cc("max-age=99999999999"), stored(2147483648)},
        DecideCase{"EdgeTtlIsTheDefault", {}, stored(60), policy(60)},
        DecideCase{"EdgeTtlCapsMaxAge", cc("max-age=3600"), stored(60), policy(60)},
        DecideCase{"EdgeTtlCapsSMaxage", cc("s-maxage=3600"), stored(60, 0, 0, true), policy(60)},
        DecideCase{"EdgeTtlCapsExpires", {{"Date", date()}, {"Expires", date(3600)}}, stored(60), policy(60)},
        DecideCase{"EdgeTtlAboveMaxAgeLeavesIt", cc("max-age=10"), stored(10), policy(60)},
        DecideCase{"NegativeTtlFor404", {}, stored(10), policy(), 404},
        DecideCase{"NegativeTtlFor410", {}, stored(10), policy(60), 410},
        DecideCase{"NegativeTtlCappedByEdgeTtl", {}, stored(5), policy(5), 404},
        DecideCase{"NegativeTtlZeroFallsBackToEdgeTtl", {}, stored(60),
                   with(policy(60), [](RoutePolicy& p) { p.negative_ttl = seconds(0); }), 404},
        DecideCase{"NegativeTtlZeroNoEdgeTtl", {}, refused("no_lifetime"),
                   with(policy(), [](RoutePolicy& p) { p.negative_ttl = seconds(0); }), 404},
        DecideCase{"ExplicitLifetimeBeats404Default", cc("max-age=300"), stored(300), policy(), 404},
        DecideCase{"NegativeTtlNotFor405", {}, refused("no_lifetime"), policy(), 405}),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Age, Decide,
    testing::Values(
        DecideCase{"AgeHeaderReducesTtl", {{"Cache-Control", "max-age=60"}, {"Age", "20"}}, stored(40, 0, 0, false, 20)},
        DecideCase{"AgeBeyondLifetime", {{"Cache-Control", "max-age=60"}, {"Age", "90"}}, stored(0, 0, 0, false, 90)},
        DecideCase{"ApparentAgeFromDate", {{"Cache-Control", "max-age=60"}, {"Date", date(-30)}},
                   stored(30, 0, 0, false, 30)},
        DecideCase{"LargerOfAgeAndApparentAge", {{"Cache-Control", "max-age=60"}, {"Date", date(-30)}, {"Age", "10"}},
                   stored(30, 0, 0, false, 30)},
        DecideCase{"AgeLargerThanApparentAge", {{"Cache-Control", "max-age=60"}, {"Date", date(-5)}, {"Age", "25"}},
                   stored(35, 0, 0, false, 25)},
        DecideCase{"DateInTheFutureIsAgeZero", {{"Cache-Control", "max-age=60"}, {"Date", date(500)}}, stored(60)},
        DecideCase{"MalformedAgeIgnored", {{"Cache-Control", "max-age=60"}, {"Age", "-3"}}, stored(60)},
        DecideCase{"HugeAgeIs2To31", {{"Cache-Control", "max-age=60"}, {"Age", "999999999999"}},
                   stored(0, 0, 0, false, 2147483648)},
        DecideCase{"AgeBeforeCap", {{"Cache-Control", "max-age=3600"}, {"Age", "100"}}, stored(60, 0, 0, false, 100),
                   policy(60)},
        DecideCase{"AgeReducesEdgeTtlDefault", {{"Age", "15"}}, stored(45, 0, 0, false, 15), policy(60)},
        DecideCase{"AgeReducesNegativeTtl", {{"Age", "4"}}, stored(6, 0, 0, false, 4), policy(), 404}),
    [](const auto& info) { return info.param.name; });

RoutePolicy stale_defaults(std::optional<int> edge_ttl = std::nullopt) {
  RoutePolicy p = policy(edge_ttl);
  p.default_swr = seconds(7);
  p.default_sie = seconds(300);
  return p;
}

INSTANTIATE_TEST_SUITE_P(
    RevalidationAndStale, Decide,
    testing::Values(
        DecideCase{"NoCacheStoresWithTtlZero", cc("no-cache, max-age=60"), stored(0, 0, 0, true)},
        DecideCase{"NoCacheWithoutLifetimeStillStored", cc("no-cache"), stored(0, 0, 0, true)},
        DecideCase{"NoCacheFieldListTreatedAsNoCache", cc("no-cache=\"Set-Cookie\", max-age=60"), stored(0, 0, 0, true)},
        DecideCase{"NoCacheIgnoresStaleWindows", cc("no-cache, stale-while-revalidate=30, stale-if-error=60"),
                   stored(0, 0, 0, true), stale_defaults()},
        DecideCase{"NoCacheOn302WithoutLifetime", cc("no-cache"), refused("status"), policy(), 302},
        DecideCase{"MustRevalidate", cc("max-age=60, must-revalidate"), stored(60, 0, 0, true), stale_defaults()},
        DecideCase{"MustRevalidateDropsResponseWindows",
                   cc("max-age=60, must-revalidate, stale-while-revalidate=30, stale-if-error=60"),
                   stored(60, 0, 0, true)},
        DecideCase{"ProxyRevalidate", cc("max-age=60, proxy-revalidate, stale-if-error=60"), stored(60, 0, 0, true),
                   stale_defaults()},
        DecideCase{"SMaxageNoRouteDefaults", cc("s-maxage=60"), stored(60, 0, 0, true), stale_defaults()},
        DecideCase{"SMaxageKeepsResponseWindows", cc("s-maxage=60, stale-while-revalidate=30, stale-if-error=600"),
                   stored(60, 30, 600, true), stale_defaults()},
        DecideCase{"ResponseWindows", cc("max-age=60, stale-while-revalidate=30, stale-if-error=600"),
                   stored(60, 30, 600)},
        DecideCase{"ResponseWindowsOverRouteDefaults", cc("max-age=60, stale-while-revalidate=1, stale-if-error=2"),
                   stored(60, 1, 2), stale_defaults()},
        DecideCase{"ResponseWindowZeroOverRouteDefault", cc("max-age=60, stale-while-revalidate=0"),
                   stored(60, 0, 300), stale_defaults()},
        DecideCase{"RouteDefaultWindows", kMaxAge60, stored(60, 7, 300), stale_defaults()},
        DecideCase{"RouteDefaultWindowsWithEdgeTtlDefault", {}, stored(60, 7, 300), stale_defaults(60)},
        DecideCase{"MalformedWindowFallsBackToRouteDefault", cc("max-age=60, stale-if-error=later"),
                   stored(60, 7, 300), stale_defaults()},
        DecideCase{"WindowsSurviveMalformedMaxAge", cc("max-age=x, stale-if-error=60"), stored(0, 0, 60)},
        DecideCase{"ImmutableChangesNothing", cc("max-age=60, immutable"), stored(60)}),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    CdnCacheControl, Decide,
    testing::Values(
        DecideCase{"OverridesCacheControl", {{"Cache-Control", "no-store"}, {"CDN-Cache-Control", "max-age=300"}},
                   stored(300)},
        DecideCase{"OverridesCacheControlLifetime",
                   {{"Cache-Control", "max-age=5, s-maxage=6"}, {"CDN-Cache-Control", "max-age=300"}}, stored(300)},
        DecideCase{"ItsNoStoreApplies", {{"Cache-Control", "max-age=60"}, {"cdn-cache-control", "no-store"}},
                   refused("no_store")},
        DecideCase{"ItsPrivateApplies", {{"Cache-Control", "public, max-age=60"}, {"CDN-Cache-Control", "private"}},
                   refused("private")},
        DecideCase{"ItsNoCacheApplies", {{"Cache-Control", "max-age=60"}, {"CDN-Cache-Control", "no-cache"}},
                   stored(0, 0, 0, true)},
        DecideCase{"ExpiresIgnoredUnderIt",
                   {{"CDN-Cache-Control", "public"}, {"Date", date()}, {"Expires", date(600)}}, refused("no_lifetime")},
        DecideCase{"ExpiresIgnoredEdgeTtlApplies",
                   {{"CDN-Cache-Control", "public"}, {"Date", date()}, {"Expires", date(600)}}, stored(30), policy(30)},
        DecideCase{"ItsStaleWindows",
                   {{"Cache-Control", "max-age=5, stale-if-error=1"}, {"CDN-Cache-Control", "max-age=60, stale-if-error=99"}},
                   stored(60, 0, 99)},
        DecideCase{"MalformedFallsBackToCacheControl",
                   {{"Cache-Control", "max-age=60"}, {"CDN-Cache-Control", "max-age=\"300"}}, stored(60)},
        DecideCase{"EmptyFallsBackToCacheControl", {{"Cache-Control", "max-age=60"}, {"CDN-Cache-Control", " "}},
                   stored(60)},
        DecideCase{"EdgeCacheControlIsNotHonoured",
                   {{"Cache-Control", "max-age=60"}, {"Edge-Cache-Control", "no-store"}}, stored(60)},
        DecideCase{"AuthorizationUsesItsDirectives",
                   {{"Cache-Control", "private"}, {"CDN-Cache-Control", "public, max-age=60"}}, stored(60), policy(),
                   200, {{"Authorization", "Bearer x"}}},
        DecideCase{"CappedByEdgeTtl", {{"CDN-Cache-Control", "max-age=3600"}}, stored(60), policy(60)}),
    [](const auto& info) { return info.param.name; });

// ---- ages and usability ---------------------------------------------------------------------------------------

TEST(CurrentAge, AddsResidentTime) {
  EXPECT_EQ(current_age(seconds(0), kNow, kNow), seconds(0));
  EXPECT_EQ(current_age(seconds(0), kNow, kNow + 7), seconds(7));
  EXPECT_EQ(current_age(seconds(20), kNow - 5, kNow), seconds(25));
  EXPECT_EQ(current_age(seconds(20), kNow + 5, kNow), seconds(20));  // the clock went back: resident time 0
  EXPECT_EQ(current_age(seconds(2147483640), kNow - 100, kNow), seconds(2147483648));
}

TEST(CurrentAge, FromADecision) {
  const test::Request req(http::Method::get, {});
  const test::Response resp(200, {{"Cache-Control", "max-age=60"}, {"Age", "12"}});
  const StoreDecision d = decide(req.head(), resp.head(), policy(), kNow);
  EXPECT_EQ(current_age(d.initial_age, kNow, kNow + 3), seconds(15));
}

struct UsabilityCase {
  std::string name;
  int ttl, swr, sie, elapsed;
  Usability expected;
};
void PrintTo(const UsabilityCase& c, std::ostream* out) { *out << c.name; }

class UsabilityOf : public testing::TestWithParam<UsabilityCase> {};

TEST_P(UsabilityOf, Classifies) {
  const UsabilityCase& c = GetParam();
  StoreDecision d;
  d.store = true;
  d.ttl = seconds(c.ttl);
  d.swr = seconds(c.swr);
  d.sie = seconds(c.sie);
  EXPECT_EQ(usability(d, seconds(c.elapsed)), c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    Windows, UsabilityOf,
    testing::Values(UsabilityCase{"FreshAtStore", 60, 0, 0, 0, Usability::fresh},
                    UsabilityCase{"FreshLastSecond", 60, 0, 0, 59, Usability::fresh},
                    UsabilityCase{"StaleAtTtl", 60, 0, 0, 60, Usability::stale},
                    UsabilityCase{"TtlZeroIsStale", 0, 0, 0, 0, Usability::stale},
                    UsabilityCase{"InSwr", 60, 10, 0, 65, Usability::stale_while_revalidate},
                    UsabilityCase{"PastSwr", 60, 10, 0, 70, Usability::stale},
                    UsabilityCase{"InSie", 60, 0, 100, 150, Usability::stale_if_error},
                    UsabilityCase{"SwrBeforeSie", 60, 10, 100, 65, Usability::stale_while_revalidate},
                    UsabilityCase{"SieAfterSwr", 60, 10, 100, 75, Usability::stale_if_error},
                    UsabilityCase{"PastBoth", 60, 10, 100, 160, Usability::stale},
                    UsabilityCase{"NoCacheEntrySwrZero", 0, 0, 0, 5, Usability::stale}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace virex::cache
