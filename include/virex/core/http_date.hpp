// HTTP-date (RFC 9110 §5.6.7): IMF-fixdate formatting, parsing of all three formats, and a per-worker cache of
// the `Date:` response line, refreshed at most once a second. The free functions are pure (any thread);
// DateLine is not thread-safe: one instance per worker thread.
#pragma once

#include <array>
#include <ctime>
#include <optional>
#include <string_view>

namespace virex::core {

// Writes "Sun, 06 Nov 1994 08:49:37 GMT" (29 chars) into out.
void format_imf_fixdate(std::time_t t, char out[29]) noexcept;

// Parses an HTTP-date (RFC 9110 §5.6.7) into seconds since the Unix epoch (UTC): the preferred IMF-fixdate
// ("Sun, 06 Nov 1994 08:49:37 GMT") and the obsolete RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime
// ("Sun Nov  6 08:49:37 1994") formats. Nullopt when the text is none of them or names an impossible date or
// time (a leap second, 60, is accepted and read as :59; the weekday name is checked for form only, not against
// the date). Optional whitespace around the value is ignored. `now` resolves RFC 850's two-digit year: a year
// more than 50 years after `now` is the most recent past year with the same last two digits.
std::optional<std::time_t> parse_http_date(std::string_view text, std::time_t now) noexcept;

class DateLine {
 public:
  DateLine() { refresh(std::time(nullptr)); }
  // Re-formats when `now` differs from the last second seen. Cheap to call per read batch.
  void refresh(std::time_t now) noexcept {
    if (now == last_) return;
    last_ = now;
    format_imf_fixdate(now, buf_.data() + 6);
  }
  // "Date: <imf-fixdate>\r\n"
  std::string_view line() const noexcept { return {buf_.data(), buf_.size()}; }

 private:
  std::time_t last_ = -1;
  std::array<char, 37> buf_{'D', 'a', 't', 'e', ':', ' ', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                            0,   0,   0,   0,   0,   0,   0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '\r', '\n'};
};

}  // namespace virex::core
