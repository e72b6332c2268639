// Loads YAML text into a validated config::Config, collecting every error (not just the first),
// each as `file:line:col: path.to.key: reason` — the shape `virex-edge check-config` prints.
// Pure: reads no file itself; main thread only.
#pragma once

#include <virex/config/config.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace virex::config {

struct Error {
  Location location;
  std::string key;      // dotted path, e.g. "routes[2].match.path"
  std::string reason;
  std::string to_string() const;   // "file:line:col: key: reason"
};

struct LoadResult {
  std::optional<Config> config;   // set when errors is empty
  std::vector<Error> errors;
};

// Parses and validates `yaml` (named `source` in messages). Never throws.
LoadResult load(std::string_view yaml, std::string source);

// "250ms", "5s", "10m", "1h", "1d" (integer amounts; "0" alone allowed) → milliseconds; nullopt if malformed.
std::optional<Duration> parse_duration(std::string_view text);
// "512", "16KiB", "512MiB", "1GiB", also "KB/MB/GB" (powers of 1000) → bytes; nullopt if malformed/overflow.
std::optional<std::size_t> parse_size(std::string_view text);
// Why `token` cannot be the admin token (`admin.token`, or the contents of `admin.token_file` once the server has
// read it and dropped one trailing newline), or "" when it can: at least 16 characters, RFC 6750 b64token.
std::string admin_token_error(std::string_view token);

}  // namespace virex::config
