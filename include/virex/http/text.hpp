// Small text helpers for HTTP fields, shared by the codecs and the proxy's header rewriting: ASCII
// case-insensitive comparison and optional-whitespace trimming. Pure, allocation-free, any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace virex::http {

// ASCII case-insensitive equality (field names and tokens, RFC 9110 §5.1).
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x == y) continue;
    if ((x | 0x20) != (y | 0x20) || (x | 0x20) < 'a' || (x | 0x20) > 'z') return false;
  }
  return true;
}

// Strips optional whitespace (RFC 9110 §5.6.3: SP / HTAB) from both ends.
inline std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Appends `tpl` to `out` with every `{name}` replaced by what `value(name)` appends (route templates such as
// "customer:{customer_id}"); text after an unclosed '{' is copied as it is.
template <class AppendValue>
void expand_template(std::string& out, std::string_view tpl, AppendValue&& value) {
  while (!tpl.empty()) {
    const auto open = tpl.find('{');
    const auto close = open == std::string_view::npos ? open : tpl.find('}', open);
    if (close == std::string_view::npos) {
      out.append(tpl);
      return;
    }
    out.append(tpl.substr(0, open));
    value(tpl.substr(open + 1, close - open - 1));
    tpl.remove_prefix(close + 1);
  }
}

}  // namespace virex::http
