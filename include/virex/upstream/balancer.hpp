// Endpoint selection for an upstream cluster, sans-IO: round robin, least request (power of two choices) and
// consistent hashing (Maglev, Eisenbud et al., NSDI 2016). A Balancer is built on the control thread from the
// cluster's endpoint names and is immutable afterwards (shared by all workers); the per-worker mutable part
// (round-robin cursor, random state) is a PickState owned by the caller. pick() allocates nothing.
#pragma once

#include <virex/config/config.hpp>
#include <virex/http/request.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace virex::upstream {

// What a worker knows about one endpoint when it picks.
struct Candidate {
  bool available = true;        // resolved, healthy (active checks) and not ejected (outlier detection)
  std::uint32_t active = 0;     // requests in flight to it (node-wide), for least_request
};

struct PickState {              // one per worker per cluster
  std::uint64_t cursor = 0;     // round robin
  std::uint64_t rng = 0x9e3779b97f4a7c15ULL;   // xorshift/splitmix state; seed per worker
};

// 64-bit hash of a key (stable across processes and restarts: nodes of a fleet pick alike).
std::uint64_t hash_key(std::string_view key) noexcept;

// The bytes consistent hashing keys on: the path, a header's value, or one cookie's value (from any Cookie
// header, RFC 6265 §4.2.1). Empty when the header or cookie is absent (the caller then falls back to round robin).
std::string_view hash_input(const http::RequestHead& head, config::HashOn on, std::string_view name) noexcept;

class MaglevTable {
 public:
  static constexpr std::size_t kDefaultSize = 65537;   // prime, ≥ 100 × endpoints for ≤ 655 endpoints
  // `names` identify endpoints stably (e.g. "host:port"), so a table built after adding or removing one
  // endpoint maps all but ~1/N of keys to the same endpoint. `size` must be prime and > names.size().
  explicit MaglevTable(const std::vector<std::string>& names, std::size_t size = kDefaultSize);
  std::uint32_t lookup(std::uint64_t hash) const noexcept;   // endpoint index
  std::size_t size() const noexcept { return table_.size(); }

 private:
  std::vector<std::uint32_t> table_;
};

class Balancer {
 public:
  Balancer(config::Balance policy, const std::vector<std::string>& endpoint_names);

  // The endpoint to use, or nullopt when none is available. `tried` has bit (i % 64) set for endpoints this
  // request already tried (a retry prefers another one; it falls back to a tried one only if nothing else is
  // available). `key_hash` is used by consistent_hash only (when `has_key`); an unavailable endpoint's keys
  // move to others without moving anyone else's.
  std::optional<std::uint32_t> pick(std::span<const Candidate> endpoints, PickState& state, bool has_key,
                                    std::uint64_t key_hash, std::uint64_t tried = 0) const noexcept;

  config::Balance policy() const noexcept { return policy_; }

 private:
  config::Balance policy_;
  std::optional<MaglevTable> maglev_;
};

}  // namespace virex::upstream
