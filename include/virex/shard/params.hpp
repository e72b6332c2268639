// Query parameters and the shard map, sans-IO: a parameter's text checked against its declared type and
// normalised into what PostgreSQL is sent as a bound parameter (never spliced into SQL), and the customer id →
// shard lookup. Any thread.
#pragma once

#include <virex/config/config.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace virex::shard {

inline constexpr std::size_t kMaxParamBytes = 64 * 1024;

// The text to bind for `text` as a `type` value, or nullopt with `why` set ("expected an integer", …).
// int64: decimal, optional sign; bool: true/false/1/0 (any case); timestamp: ISO-8601 date or date-time
// (YYYY-MM-DD[THH:MM[:SS[.ffffff]]][Z|±HH:MM]); numeric: decimal with optional exponent; text: UTF-8, no NUL.
std::optional<std::string> normalize_param(config::QueryParamType type, std::string_view text, std::string& why);

// The index into `db.shards` of the shard holding `customer_id`, or nullopt (outside the map).
std::optional<std::size_t> shard_of(const config::Databases& db, std::int64_t customer_id) noexcept;

}  // namespace virex::shard
