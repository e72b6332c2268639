// Unit syntax of the config file: durations, sizes and the one-line error format.
#include <virex/config/loader.hpp>

#include <gtest/gtest.h>

#include <limits>

namespace virex::config {
namespace {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

struct DurationCase {
  std::string_view text;
  Duration expected;
};

class GoodDuration : public testing::TestWithParam<DurationCase> {};

TEST_P(GoodDuration, Parses) {
  EXPECT_EQ(parse_duration(GetParam().text), GetParam().expected) << GetParam().text;
}

INSTANTIATE_TEST_SUITE_P(Units, GoodDuration,
                         testing::Values(DurationCase{"0", milliseconds(0)}, DurationCase{"0s", milliseconds(0)},
                                         DurationCase{"250ms", milliseconds(250)}, DurationCase{"5s", seconds(5)},
                                         DurationCase{"10m", minutes(10)}, DurationCase{"1h", hours(1)},
                                         DurationCase{"1d", days(1)}, DurationCase{"007s", seconds(7)},
                                         DurationCase{"9223372036854775807ms",
                                                      milliseconds(std::numeric_limits<std::int64_t>::max())}));

class BadDuration : public testing::TestWithParam<std::string_view> {};

TEST_P(BadDuration, IsRejected) { EXPECT_EQ(parse_duration(GetParam()), std::nullopt) << GetParam(); }

INSTANTIATE_TEST_SUITE_P(Units, BadDuration,
                         testing::Values("", "5", "s", "-5s", "+5s", "1.5s", "5 s", " 5s", "5s ", "5sec", "5S",
                                         "5us", "1w", "ms", "9223372036854775808ms", "106751991167301d",
                                         "99999999999999999999s", "5s5"));

struct SizeCase {
  std::string_view text;
  std::size_t expected;
};

class GoodSize : public testing::TestWithParam<SizeCase> {};

TEST_P(GoodSize, Parses) { EXPECT_EQ(parse_size(GetParam().text), GetParam().expected) << GetParam().text; }

INSTANTIATE_TEST_SUITE_P(Units, GoodSize,
                         testing::Values(SizeCase{"0", 0}, SizeCase{"512", 512}, SizeCase{"512B", 512},
                                         SizeCase{"16KiB", 16 * 1024}, SizeCase{"512MiB", 512ull << 20},
                                         SizeCase{"1GiB", 1ull << 30}, SizeCase{"16KB", 16000},
                                         SizeCase{"1MB", 1000000}, SizeCase{"1GB", 1000000000},
                                         SizeCase{"18446744073709551615", 18446744073709551615ull}));

class BadSize : public testing::TestWithParam<std::string_view> {};

TEST_P(BadSize, IsRejected) { EXPECT_EQ(parse_size(GetParam()), std::nullopt) << GetParam(); }

INSTANTIATE_TEST_SUITE_P(Units, BadSize,
                         testing::Values("", "KiB", "-1", "+1", "1.5KiB", "16 KiB", "16kib", "16K", "16Kb", "1TiB",
                                         "16KiB ", "18446744073709551616", "17179869184GiB",
                                         "99999999999999999999999"));

TEST(ErrorToString, FileLineColumnKeyReason) {
  const Error error{{"edge.yaml", 3, 14}, "routes[2].match.path", "must start with \"/\""};
  EXPECT_EQ(error.to_string(), "edge.yaml:3:14: routes[2].match.path: must start with \"/\"");
}

TEST(ErrorToString, LeavesOutAnEmptyKey) {
  const Error error{{"edge.yaml", 2, 1}, "", "end of sequence flow not found"};
  EXPECT_EQ(error.to_string(), "edge.yaml:2:1: end of sequence flow not found");
}

}  // namespace
}  // namespace virex::config
