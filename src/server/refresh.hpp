// stale-while-revalidate (RFC 5861 §3): a request answered with a stale entry starts one background fetch that
// refreshes it. The fetch is conditional when the entry has validators (RFC 9111 §4.3.1): a 304 freshens the
// stored response (§4.3.4), a storable answer replaces it, an answer the route may not store removes it, and a
// failure or 5xx leaves it (stale-if-error may still want it). One refresh per key node-wide (it holds the
// key's coalescing flight, so concurrent misses wait for it instead of fetching too), at most kMaxRefreshes per
// worker at a time, each bounded by the route's upstream timeouts. Runs on the worker's thread, owning
// everything it needs: the client connection that started it may be gone long before it ends.
#pragma once

#include "worker.hpp"

#include <virex/cache/store.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace virex::server {

struct RefreshJob {
  std::shared_ptr<const pipeline::Snapshot> snapshot;   // keeps the route and its cluster alive
  const pipeline::CompiledRoute* route = nullptr;       // a caching upstream route of `snapshot`
  std::shared_ptr<const cache::Entry> stale;            // the entry being refreshed
  std::string request;        // the client's request head, re-parsed here (decide(), Vary and tags need it)
  std::string upstream_head;  // the head to send (the route's rewrite and forwarding headers, validators)
  bool conditional = false;   // upstream_head carries the entry's validators
  std::string key;            // the entry's primary key and its hash (the coalescing flight)
  std::uint64_t hash = 0;
  std::string regional_key;   // non-empty: a refreshed entry is written to the regional tier too, with this key
  config::Duration regional_ttl{};
};

inline constexpr unsigned kMaxRefreshes = 16;  // per worker; beyond, a stale hit starts none
// A refresh's overall deadline when neither the route nor its cluster sets a request timeout.
inline constexpr std::chrono::seconds kMaxRefreshTime{30};

// Whether `w` may start another refresh now.
bool refresh_slot_free(const Worker& w) noexcept;

// Runs `job` in the background on `w`. The caller has already taken the key's coalescing flight
// (Coalescer::lead); the refresh ends it.
void start_refresh(Worker& w, std::unique_ptr<RefreshJob> job);

}  // namespace virex::server
