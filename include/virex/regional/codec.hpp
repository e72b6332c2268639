// The regional tier's value formats (protobuf, proto/virex/cache/v1/entry.proto): an edge cache Entry to and from
// the bytes stored in Redis, and the Invalidation messages published to every node. Pure functions, any thread;
// protobuf stays out of this header.
#pragma once

#include <virex/cache/store.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace virex::regional {

inline constexpr std::uint32_t kEntryVersion = 1;
inline constexpr std::uint32_t kInvalidationVersion = 1;

// Serialises `e` (head, body, lifetimes, validators, tags, variant) with its wall-clock storage time and the
// regional copy's expiry. Appends to `out` (cleared first).
void encode_entry(std::string& out, const cache::Entry& e, std::int64_t stored_unix_ms, std::int64_t expires_unix_ms);

struct DecodedEntry {
  std::shared_ptr<cache::Entry> entry;   // stored_at mapped onto this node's steady clock
  std::int64_t stored_unix_ms = 0;
  std::int64_t expires_unix_ms = 0;
};
// Parses a stored value; nullopt for bytes that are not an Entry of kEntryVersion (or whose status is not an HTTP
// status). `now_unix_ms` / `now` map the storage time onto the steady clock (Age keeps counting across nodes).
std::optional<DecodedEntry> decode_entry(std::string_view bytes, std::int64_t now_unix_ms,
                                         std::chrono::steady_clock::time_point now);

struct Invalidation {
  enum class Kind : std::uint8_t { path = 1, prefix = 2, tag = 3, all = 4 };
  std::string node;         // the sender's instance id
  std::uint64_t sequence = 0;
  Kind kind = Kind::path;
  std::string host;         // "" = any
  std::string value;        // path, prefix or tag
  bool soft = false;
  std::int64_t issued_unix_ms = 0;
};
std::string encode_invalidation(const Invalidation& inv);
std::optional<Invalidation> decode_invalidation(std::string_view bytes);

}  // namespace virex::regional
