// The regional tier as the server uses it. RegionalNode: node-wide, immutable after start-up (config, this
// instance's id for dropping our own invalidation echoes, the channel name), plus the publish sequence. RegionalTier:
// one per worker (its Redis client on the worker's io_context, its metric cells); worker 0's also holds the
// subscriber that applies other nodes' invalidations to the node's edge cache. Worker thread only.
#pragma once

#include <virex/cache/store.hpp>
#include <virex/config/config.hpp>
#include <virex/observe/metrics.hpp>
#include <virex/regional/client.hpp>
#include <virex/regional/codec.hpp>

#include <array>
#include <atomic>
#include <memory>
#include <string>

namespace virex::server {

struct RegionalNode {
  config::RegionalCache cfg;
  std::string instance;                  // "<node>/<random hex>": the `node` of what we publish
  std::string channel;                   // <prefix>invalidations
  std::atomic<std::uint64_t> sequence{0};
};

// What a regional lookup came to (virex_regional_lookups_total{result}).
enum class RegionalResult : std::uint8_t { hit, miss, error, timeout, skipped };
inline constexpr std::size_t kRegionalResults = 5;

class RegionalTier {
 public:
  // `subscriber`: this worker subscribes to the invalidation channel and applies messages to `edge` (may be null).
  RegionalTier(core::Executor ex, RegionalNode& node, observe::Registry& reg, observe::Shard shard, bool subscriber,
               cache::Store* edge);
  regional::Client& client() noexcept { return client_; }
  const RegionalNode& node() const noexcept { return node_; }
  void start() { client_.start(); }

  // "<prefix>e:<16 hex>" for a public key hash; "<prefix>p:<identity digest>:<16 hex>" for a private one.
  std::string entry_key(std::uint64_t key_hash) const;
  std::string private_key(std::string_view identity_digest, std::uint64_t key_hash) const;

  // Writes `e` (already answered to the client) with PX = `ttl` ± 10% jitter, and indexes its tags (each tag's
  // set gets the key, its lifetime extended to tag_ttl). Fire-and-forget; skipped (counted) when the encoded
  // entry is over max_value_bytes or the breaker is open.
  void store(const cache::Entry& e, const std::string& key, config::Duration ttl);
  // A purge for the whole region: deletes the regional copies `inv` names (through the tag index `t:<tag>`,
  // the path index `k:<path>`, or for a prefix every path index under it, found by SCAN) and then publishes
  // `inv` (our instance id and next sequence filled in) on the invalidation channel — in one Lua script, so no
  // node can refill its edge from a copy the purge has not deleted yet. False when the tier is unavailable
  // (nothing sent, `done` not called; other nodes will not hear of it). Fire-and-forget without `done`; with it,
  // `done` is posted with Redis's answer to the script (or the command's error: a timeout, a lost connection).
  bool purge(regional::Invalidation inv, regional::Client::Handler done = {});
  // Whether purge() would send now (a connection is up and the breaker is not open).
  bool available() const noexcept;

  void count(RegionalResult r) { lookups_[static_cast<std::size_t>(r)].inc(); }
  observe::CounterRef& invalidations_applied() { return invalidations_[2]; }

 private:
  void on_invalidation(std::string_view payload);
  void on_subscribed(bool again);

  RegionalNode& node_;
  regional::Client client_;
  cache::Store* edge_;
  std::string value_;        // encode scratch
  std::uint64_t rng_;
  std::array<observe::CounterRef, kRegionalResults> lookups_;
  std::array<observe::CounterRef, 3> stores_;         // stored, oversized, skipped (no connection / breaker)
  std::array<observe::CounterRef, 4> invalidations_;  // published, received, applied, echo (own, dropped)
  observe::CounterRef resyncs_;                       // edge cache dropped after a lost subscription
};

}  // namespace virex::server
