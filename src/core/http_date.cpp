// HTTP-date formatting (IMF-fixdate) and parsing of its three formats (RFC 9110 §5.6.7), without locale,
// strftime, strptime or timegm: pure functions, any thread.
#include <virex/core/http_date.hpp>

#include <array>
#include <cstdint>
#include <ctime>

namespace virex::core {

void format_imf_fixdate(std::time_t t, char out[29]) noexcept {
  static constexpr char kDays[] = "SunMonTueWedThuFriSat";
  static constexpr char kMonths[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
  std::tm tm{};
  gmtime_r(&t, &tm);
  auto two = [](char* p, int v) { p[0] = static_cast<char>('0' + v / 10); p[1] = static_cast<char>('0' + v % 10); };
  out[0] = kDays[tm.tm_wday * 3]; out[1] = kDays[tm.tm_wday * 3 + 1]; out[2] = kDays[tm.tm_wday * 3 + 2];
  out[3] = ','; out[4] = ' ';
  two(out + 5, tm.tm_mday);
  out[7] = ' ';
  out[8] = kMonths[tm.tm_mon * 3]; out[9] = kMonths[tm.tm_mon * 3 + 1]; out[10] = kMonths[tm.tm_mon * 3 + 2];
  out[11] = ' ';
  const int year = tm.tm_year + 1900;
  two(out + 12, year / 100);
  two(out + 14, year % 100);
  out[16] = ' ';
  two(out + 17, tm.tm_hour); out[19] = ':';
  two(out + 20, tm.tm_min); out[22] = ':';
  two(out + 23, tm.tm_sec);
  out[25] = ' '; out[26] = 'G'; out[27] = 'M'; out[28] = 'T';
}

namespace {

constexpr std::array<std::string_view, 7> kShortDays = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> kLongDays = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                                       "Friday", "Saturday", "Sunday"};
constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool leap(int y) noexcept { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned days_in_month(int y, unsigned m) noexcept {
  static constexpr std::array<unsigned, 12> kDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : kDays[m - 1];
}

// A cursor over the value; every step consumes exactly what the grammar says or fails.
struct Cursor {
  std::string_view s;
  bool ok = true;

  bool literal(std::string_view lit) {
    if (!ok || !s.starts_with(lit)) return ok = false;
    s.remove_prefix(lit.size());
    return true;
  }
  // Exactly `n` digits.
  int digits(std::size_t n) {
    if (!ok || s.size() < n) {
      ok = false;
      return 0;
    }
    int v = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (s[i] < '0' || s[i] > '9') {
        ok = false;
        return 0;
      }
      v = v * 10 + (s[i] - '0');
    }
    s.remove_prefix(n);
    return v;
  }
  template <std::size_t N>
  int one_of(const std::array<std::string_view, N>& names) {
    for (std::size_t i = 0; ok && i < names.size(); ++i) {
      if (s.starts_with(names[i])) {
        s.remove_prefix(names[i].size());
        return static_cast<int>(i);
      }
    }
    ok = false;
    return -1;
  }
};

struct Civil {
  int year = 0;
  int month = 0;  // 1..12
  int day = 0;
  int hour = 0, minute = 0, second = 0;
};

// time-of-day = hour ":" minute ":" second
void time_of_day(Cursor& c, Civil& t) {
  t.hour = c.digits(2);
  c.literal(":");
  t.minute = c.digits(2);
  c.literal(":");
  t.second = c.digits(2);
}

std::optional<std::time_t> to_time(const Civil& t) {
  if (t.month < 1 || t.month > 12 || t.day < 1 ||
      static_cast<unsigned>(t.day) > days_in_month(t.year, static_cast<unsigned>(t.month)) || t.hour > 23 ||
      t.minute > 59 || t.second > 60) {
    return std::nullopt;
  }
  const int second = t.second == 60 ? 59 : t.second;  // a leap second: POSIX time has none
  const std::int64_t days = days_from_civil(t.year, static_cast<unsigned>(t.month), static_cast<unsigned>(t.day));
  return static_cast<std::time_t>(days * 86400 + t.hour * 3600 + t.minute * 60 + second);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<std::time_t> parse_http_date(std::string_view text, std::time_t now) noexcept {
  text = trim(text);
  Civil t;
  Cursor c{text};
  if (text.size() == 29 && text[3] == ',') {
    // IMF-fixdate = day-name "," SP day SP month SP year SP time-of-day SP "GMT"
    c.one_of(kShortDays);
    c.literal(", ");
    t.day = c.digits(2);
    c.literal(" ");
    t.month = c.one_of(kMonths) + 1;
    c.literal(" ");
    t.year = c.digits(4);
    c.literal(" ");
    time_of_day(c, t);
    c.literal(" GMT");
  } else if (text.size() == 24 && text[3] == ' ') {
    // asctime-date = day-name SP month SP ( 2DIGIT / ( SP DIGIT ) ) SP time-of-day SP year
    c.one_of(kShortDays);
    c.literal(" ");
    t.month = c.one_of(kMonths) + 1;
    c.literal(" ");
    if (c.ok && !c.s.empty() && c.s.front() == ' ') {
      c.literal(" ");
      t.day = c.digits(1);
    } else {
      t.day = c.digits(2);
    }
    c.literal(" ");
    time_of_day(c, t);
    c.literal(" ");
    t.year = c.digits(4);
  } else {
    // rfc850-date = day-name-l "," SP day "-" month "-" 2DIGIT SP time-of-day SP "GMT"
    c.one_of(kLongDays);
    c.literal(", ");
    t.day = c.digits(2);
    c.literal("-");
    t.month = c.one_of(kMonths) + 1;
    c.literal("-");
    const int yy = c.digits(2);
    c.literal(" ");
    time_of_day(c, t);
    c.literal(" GMT");
    if (c.ok) {
      // RFC 9110 §5.6.7: more than 50 years in the future → the most recent past year with those digits.
      std::tm tm{};
      gmtime_r(&now, &tm);
      const int current = tm.tm_year + 1900;
      t.year = current - current % 100 + yy;
      if (t.year > current + 50) t.year -= 100;
    }
  }
  if (!c.ok || !c.s.empty()) return std::nullopt;
  return to_time(t);
}

}  // namespace virex::core
