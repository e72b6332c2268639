// IMF-fixdate (RFC 9110 §5.6.7) formatting and a per-worker cache of the `Date:` response line,
// refreshed at most once a second. Not thread-safe: one instance per worker thread.
#pragma once

#include <array>
#include <ctime>
#include <string_view>

namespace virex::core {

// Writes "Sun, 06 Nov 1994 08:49:37 GMT" (29 chars) into out.
void format_imf_fixdate(std::time_t t, char out[29]) noexcept;

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
