// Unit syntax of the config file: durations ("250ms", "5s") and sizes ("16KiB", "1MB"), and the one-line
// form of a config error. Pure functions; any thread may call them.
#include <virex/config/loader.hpp>

#include <charconv>
#include <cstdint>
#include <limits>

namespace virex::config {
namespace {

struct Unit {
  std::string_view suffix;
  std::uint64_t factor;
};

// Splits "<digits><suffix>" and scales the amount by the factor of `suffix` in `units`.
// Nullopt when the amount is missing or not a plain decimal, the suffix is unknown, or the result overflows `max`.
std::optional<std::uint64_t> parse_scaled(std::string_view text, std::initializer_list<Unit> units,
                                          std::uint64_t max) {
  std::uint64_t amount = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto [end, ec] = std::from_chars(first, last, amount);
  if (ec != std::errc{} || end == first) return std::nullopt;  // empty, sign, overflow or no digits
  const std::string_view suffix(end, static_cast<std::size_t>(last - end));
  for (const Unit& unit : units) {
    if (unit.suffix != suffix) continue;
    if (amount > max / unit.factor) return std::nullopt;
    return amount * unit.factor;
  }
  return std::nullopt;
}

}  // namespace

std::optional<Duration> parse_duration(std::string_view text) {
  if (text == "0") return Duration::zero();
  constexpr std::uint64_t kMinute = 60 * 1000;
  const auto ms = parse_scaled(
      text, {{"ms", 1}, {"s", 1000}, {"m", kMinute}, {"h", 60 * kMinute}, {"d", 24 * 60 * kMinute}},
      static_cast<std::uint64_t>(std::numeric_limits<Duration::rep>::max()));
  if (!ms) return std::nullopt;
  return Duration(static_cast<Duration::rep>(*ms));
}

std::optional<std::size_t> parse_size(std::string_view text) {
  constexpr std::uint64_t kKiB = 1024;
  const auto bytes = parse_scaled(text,
                                  {{"", 1},
                                   {"B", 1},
                                   {"KiB", kKiB},
                                   {"MiB", kKiB * kKiB},
                                   {"GiB", kKiB * kKiB * kKiB},
                                   {"KB", 1000},
                                   {"MB", 1000 * 1000},
                                   {"GB", 1000 * 1000 * 1000}},
                                  std::numeric_limits<std::size_t>::max());
  if (!bytes) return std::nullopt;
  return static_cast<std::size_t>(*bytes);
}

std::string Error::to_string() const {
  std::string out = location.file;
  out += ':';
  out += std::to_string(location.line);
  out += ':';
  out += std::to_string(location.column);
  out += ": ";
  if (!key.empty()) {  // errors about the document itself (syntax, empty file) have no key
    out += key;
    out += ": ";
  }
  out += reason;
  return out;
}

}  // namespace virex::config
