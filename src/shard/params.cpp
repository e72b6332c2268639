// Parameter checks and the shard map lookup (params.hpp).
#include <virex/shard/params.hpp>

#include <algorithm>
#include <charconv>

namespace virex::shard {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;
    std::size_t n;
    if (c < 0x80) n = 0;
    else if (c >= 0xc2 && c <= 0xdf) n = 1;   // 0xc0/0xc1 would be overlong
    else if ((c & 0xf0) == 0xe0) n = 2;
    else if (c >= 0xf0 && c <= 0xf4) n = 3;
    else return false;
    if (s.size() - i <= n) return false;
    for (std::size_t k = 1; k <= n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    i += n + 1;
  }
  return true;
}

bool fixed_digits(std::string_view s, std::size_t pos, std::size_t n, int lo, int hi) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (!is_digit(s[i])) return false;
    v = v * 10 + (s[i] - '0');
  }
  return v >= lo && v <= hi;
}

bool valid_timestamp(std::string_view t) {
  if (!fixed_digits(t, 0, 4, 1, 9999) || t.size() < 10 || t[4] != '-' || !fixed_digits(t, 5, 2, 1, 12) ||
      t[7] != '-' || !fixed_digits(t, 8, 2, 1, 31))
    return false;
  if (t.size() == 10) return true;
  if ((t[10] != 'T' && t[10] != ' ') || !fixed_digits(t, 11, 2, 0, 23) || t.size() < 16 || t[13] != ':' ||
      !fixed_digits(t, 14, 2, 0, 59))
    return false;
  std::size_t pos = 16;
  if (pos < t.size() && t[pos] == ':') {
    if (!fixed_digits(t, pos + 1, 2, 0, 60)) return false;
    pos += 3;
    if (pos < t.size() && t[pos] == '.') {
      const std::size_t start = ++pos;
      while (pos < t.size() && is_digit(t[pos])) ++pos;
      if (pos == start || pos - start > 6) return false;
    }
  }
  if (pos == t.size()) return true;
  if (t[pos] == 'Z') return pos + 1 == t.size();
  if (t[pos] != '+' && t[pos] != '-') return false;
  if (!fixed_digits(t, pos + 1, 2, 0, 15)) return false;
  pos += 3;
  if (pos == t.size()) return true;
  if (t[pos] == ':') ++pos;
  return fixed_digits(t, pos, 2, 0, 59) && pos + 2 == t.size();
}

bool valid_numeric(std::string_view t) {
  std::size_t i = 0;
  if (i < t.size() && (t[i] == '-' || t[i] == '+')) ++i;
  std::size_t int_digits = 0, frac_digits = 0;
  while (i < t.size() && is_digit(t[i])) ++i, ++int_digits;
  if (i < t.size() && t[i] == '.') {
    ++i;
    while (i < t.size() && is_digit(t[i])) ++i, ++frac_digits;
  }
  if (int_digits + frac_digits == 0) return false;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '-' || t[i] == '+')) ++i;
    const std::size_t start = i;
    while (i < t.size() && is_digit(t[i])) ++i;
    if (i == start || i - start > 4) return false;
  }
  return i == t.size() && t.size() <= 1000;
}

}  // namespace

std::optional<std::string> normalize_param(config::QueryParamType type, std::string_view text, std::string& why) {
  using T = config::QueryParamType;
  switch (type) {
    case T::int64: {
      std::int64_t v = 0;
      std::string_view t = text;
      if (!t.empty() && t.front() == '+') t.remove_prefix(1);
      const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
      if (t.empty() || ec != std::errc{} || end != t.data() + t.size()) {
        why = ec == std::errc::result_out_of_range ? "integer out of range (int64)" : "expected an integer";
        return std::nullopt;
      }
      return std::to_string(v);
    }
    case T::boolean: {
      std::string l(text.substr(0, 8));
      for (char& c : l) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
      if (text.size() <= 5 && (l == "true" || l == "1")) return "true";
      if (text.size() <= 5 && (l == "false" || l == "0")) return "false";
      why = "expected true or false";
      return std::nullopt;
    }
    case T::timestamp:
      if (!valid_timestamp(text)) {
        why = "expected an ISO-8601 timestamp (YYYY-MM-DDTHH:MM:SS[.ffffff][Z|+HH:MM])";
        return std::nullopt;
      }
      return std::string(text);
    case T::numeric:
      if (!valid_numeric(text)) {
        why = "expected a decimal number";
        return std::nullopt;
      }
      return std::string(text);
    case T::text:
      if (text.size() > kMaxParamBytes) {
        why = "too long (at most 64 KiB)";
        return std::nullopt;
      }
      if (!valid_utf8(text)) {
        why = "expected UTF-8 text without NUL";
        return std::nullopt;
      }
      return std::string(text);
  }
  why = "unknown type";
  return std::nullopt;
}

std::optional<std::size_t> shard_of(const config::Databases& db, std::int64_t id) noexcept {
  // Shards are sorted by range and contiguous (the loader checked): binary search on the upper bounds.
  const auto it = std::lower_bound(db.shards.begin(), db.shards.end(), id,
                                   [](const config::ShardConfig& s, std::int64_t v) { return s.hi < v; });
  if (it == db.shards.end() || id < it->lo) return std::nullopt;
  return static_cast<std::size_t>(it - db.shards.begin());
}

}  // namespace virex::shard
