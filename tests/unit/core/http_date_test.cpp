// HTTP-date parsing and formatting (RFC 9110 §5.6.7): every format, the RFC 850 year window, and malformed
// values, one table row each.
#include <virex/core/http_date.hpp>

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace virex::core {
namespace {

constexpr std::time_t kRfcExample = 784111777;    // Sun, 06 Nov 1994 08:49:37 GMT
constexpr std::time_t kNow2024 = 1718000000;      // Mon, 10 Jun 2024 06:13:20 GMT

struct DateCase {
  std::string name;
  std::string text;
  std::optional<std::time_t> expected;
};
void PrintTo(const DateCase& c, std::ostream* out) { *out << c.name; }

class ParseHttpDate : public testing::TestWithParam<DateCase> {};

TEST_P(ParseHttpDate, Parses) {
  EXPECT_EQ(parse_http_date(GetParam().text, kNow2024), GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    Formats, ParseHttpDate,
    testing::Values(
        DateCase{"ImfFixdate", "Sun, 06 Nov 1994 08:49:37 GMT", kRfcExample},
        DateCase{"Rfc850", "Sunday, 06-Nov-94 08:49:37 GMT", kRfcExample},
        DateCase{"Asctime", "Sun Nov  6 08:49:37 1994", kRfcExample},
        DateCase{"AsctimeZeroPaddedDay", "Sun Nov 06 08:49:37 1994", kRfcExample},
        DateCase{"AsctimeTwoDigitDay", "Sun Nov 16 08:49:37 1994", kRfcExample + 10 * 86400},
        DateCase{"SurroundingWhitespace", " \tSun, 06 Nov 1994 08:49:37 GMT ", kRfcExample},
        DateCase{"Epoch", "Thu, 01 Jan 1970 00:00:00 GMT", 0},
        DateCase{"LeapDay", "Thu, 29 Feb 2024 12:00:00 GMT", 1709208000},
        DateCase{"LeapSecondReadAs59", "Sat, 31 Dec 2016 23:59:60 GMT", 1483228799},
        DateCase{"EndOfDay", "Sun, 06 Nov 1994 23:59:59 GMT", kRfcExample + 15 * 3600 + 10 * 60 + 22},
        DateCase{"Year2100NotLeapIsChecked", "Mon, 01 Mar 2100 00:00:00 GMT", 4107542400},
        // RFC 850 two-digit years: more than 50 years ahead of now (2024) means the previous century.
        DateCase{"Rfc850Within50Years", "Thursday, 01-Jan-60 00:00:00 GMT", 2840140800},
        DateCase{"Rfc850Exactly50Years", "Monday, 01-Jan-74 00:00:00 GMT", 3281990400},
        DateCase{"Rfc850Past50YearsIsLastCentury", "Wednesday, 01-Jan-75 00:00:00 GMT", 157766400},
        DateCase{"Rfc850LastYear", "Sunday, 01-Jan-23 00:00:00 GMT", 1672531200}),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Malformed, ParseHttpDate,
    testing::Values(DateCase{"Empty", "", std::nullopt}, DateCase{"Zero", "0", std::nullopt},
                    DateCase{"MinusOne", "-1", std::nullopt},
                    DateCase{"NotGmt", "Sun, 06 Nov 1994 08:49:37 UTC", std::nullopt},
                    DateCase{"NoZone", "Sun, 06 Nov 1994 08:49:37", std::nullopt},
                    DateCase{"LowerCaseMonth", "Sun, 06 nov 1994 08:49:37 GMT", std::nullopt},
                    DateCase{"LowerCaseDay", "sun, 06 Nov 1994 08:49:37 GMT", std::nullopt},
                    DateCase{"BadDayName", "Sux, 06 Nov 1994 08:49:37 GMT", std::nullopt},
                    DateCase{"LongDayInFixdate", "Sunday, 06 Nov 1994 08:49:37 GMT", std::nullopt},
                    DateCase{"ShortDayInRfc850", "Sun, 06-Nov-94 08:49:37 GMT", std::nullopt},
                    DateCase{"OneDigitDay", "Sun, 6 Nov 1994 08:49:37 GMT", std::nullopt},
                    DateCase{"TwoDigitYearInFixdate", "Sun, 06 Nov 94 08:49:37 GMT", std::nullopt},
                    DateCase{"Feb30", "Fri, 30 Feb 2024 00:00:00 GMT", std::nullopt},
                    DateCase{"Feb29NonLeap", "Thu, 29 Feb 2023 00:00:00 GMT", std::nullopt},
                    DateCase{"Day00", "Sun, 00 Nov 1994 08:49:37 GMT", std::nullopt},
                    DateCase{"Hour24", "Sun, 06 Nov 1994 24:00:00 GMT", std::nullopt},
                    DateCase{"Minute60", "Sun, 06 Nov 1994 08:60:00 GMT", std::nullopt},
                    DateCase{"Second61", "Sun, 06 Nov 1994 08:49:61 GMT", std::nullopt},
                    DateCase{"TrailingJunk", "Sun, 06 Nov 1994 08:49:37 GMTx", std::nullopt},
                    DateCase{"AsctimeNoPadding", "Sun Nov 6 08:49:37 1994", std::nullopt},
                    DateCase{"AsctimeWithZone", "Sun Nov  6 08:49:37 1994 GMT", std::nullopt},
                    DateCase{"Rfc850FourDigitYear", "Sunday, 06-Nov-1994 08:49:37 GMT", std::nullopt},
                    DateCase{"Rfc850Slashes", "Sunday, 06/Nov/94 08:49:37 GMT", std::nullopt},
                    DateCase{"SignInDigits", "Sun, +6 Nov 1994 08:49:37 GMT", std::nullopt}),
    [](const auto& info) { return info.param.name; });

TEST(FormatImfFixdate, RoundTripsThroughTheParser) {
  for (const std::time_t t : {std::time_t{0}, kRfcExample, std::time_t{1709208000}, kNow2024, std::time_t{4107542400}}) {
    char buf[29];
    format_imf_fixdate(t, buf);
    EXPECT_EQ(parse_http_date(std::string_view(buf, sizeof buf), kNow2024), t) << std::string_view(buf, sizeof buf);
  }
  char buf[29];
  format_imf_fixdate(kRfcExample, buf);
  EXPECT_EQ(std::string_view(buf, sizeof buf), "Sun, 06 Nov 1994 08:49:37 GMT");
}

}  // namespace
}  // namespace virex::core
