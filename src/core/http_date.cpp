// IMF-fixdate formatting without locale or strftime (RFC 9110 §5.6.7).
#include <virex/core/http_date.hpp>

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

}  // namespace virex::core
