// The edge cache's in-process object store: one instance per process, shared by every worker thread, sharded
// by key hash (each shard its own lock, no global lock), bounded exactly in bytes, with a byte-aware
// admission/eviction policy (W-TinyLFU by default, the measured winner on byte hit ratio; S3-FIFO and LRU kept
// for comparison — bench/RESULTS.md, "Edge cache eviction policy"). Entries are immutable once inserted and handed out as shared_ptr<const Entry>: a
// worker keeps the entry it is writing to a socket alive even if the store evicts or purges it meanwhile.
// Every method is thread-safe and never blocks for longer than one shard's critical section (purges and
// clear() take the shards one after the other).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace virex::cache {

// One stored response (one variant of one cache key). Built by the caller, then frozen by insert().
struct Entry {
  std::string key;           // primary cache key (method/host/path/selected key parts; format: cache/key.hpp)
  std::string variant_key;   // the values of the request headers named by `vary` (RFC 9111 §4.1); "" if none
  std::string host;          // authority and path the key was built from: purge_prefix() matches these, so
  std::string path;          // the store needs no knowledge of the key format
  // Pre-serialised response head: status line and header fields, each ending in CRLF, WITHOUT Date, Age,
  // Connection, Cache-Status and the final empty line (those differ per response and are appended per hit).
  std::string head;
  std::string body;
  std::uint16_t status = 200;
  std::chrono::steady_clock::time_point stored_at{};  // when the response was received (RFC 9111 §4.2.3 now)
  std::uint32_t initial_age = 0;  // seconds: corrected_initial_age at storage time (RFC 9111 §4.2.3)
  std::uint32_t ttl = 0;          // seconds of freshness lifetime
  std::uint32_t swr = 0;          // seconds of stale-while-revalidate (RFC 5861 §3)
  std::uint32_t sie = 0;          // seconds of stale-if-error (RFC 5861 §4)
  std::string etag;
  std::string last_modified;
  std::vector<std::string> tags;  // Surrogate-Key / Cache-Tag values and route tags, for purge_tag()
  std::vector<std::string> vary;  // lower-case field names from Vary, in the order they are keyed
  // Set by a soft purge: the entry stays resident (stale-if-error may still serve it) but must be treated as
  // stale. Monotonic: never cleared; a fresh response replaces the entry instead.
  mutable std::atomic<bool> stale{false};

  // Fixed per-entry overhead charged on top of the variable bytes. It bounds, on LP64 libstdc++:
  //   sizeof(Entry) (~400 B: 10 strings, 2 vectors, scalars) + the make_shared control block (16 B)
  //   + the store's node (~96 B: shared_ptr, hash, charge, 4 list links, policy state)
  //   + its slot in the key index (unordered_map node + bucket, ~48 B) + allocator headers (~4 × 16 B).
  // store.cpp static_asserts that the real sizes fit within it.
  static constexpr std::size_t kOverheadBytes = 768;
  // Per tag: the tag index keeps a set node per (tag, entry) (~48 B) and may own a copy of the tag string.
  static constexpr std::size_t kPerTagBytes = 64;
  static constexpr std::size_t kPerStringBytes = 32;  // sizeof(std::string) for each vector element

  // Bytes this entry is accounted for: every string's size (key, variant_key, host, path, head, body, etag,
  // last_modified, each tag counted twice — entry and index key — and each vary name) plus the constants above.
  // Deterministic and constant once the entry is frozen; the store's byte bound is the sum of these.
  std::size_t charge() const noexcept;
};

enum class Policy : std::uint8_t {
  s3fifo,    // Yang et al., SOSP'23: small FIFO (10 %) + main FIFO with 2-bit frequency + ghost FIFO of hashes
  wtinylfu,  // Einziger et al. / Caffeine: 1 % window LRU + 4-bit Count-Min sketch with aging + segmented LRU
  lru,       // plain LRU, the baseline
};

// How each shard is locked. A hit under S3-FIFO only bumps an atomic 2-bit counter, so lookups could share the
// lock; LRU and W-TinyLFU move the entry (and feed the sketch) on every lookup and always lock exclusively.
// Measured (bench/RESULTS.md): shared reads gave S3-FIFO no gain over a plain mutex at 1–8 threads.
enum class Locking : std::uint8_t {
  automatic,  // the measured winner: std::mutex
  mutex,      // std::mutex for everything
  shared,     // std::shared_mutex, lookups shared (s3fifo only; the others fall back to exclusive locking)
};

struct StoreOptions {
  std::size_t max_bytes = 512u << 20;        // total bound on the sum of charge() (cache.edge.max_bytes)
  std::size_t max_object_bytes = 8u << 20;   // larger entries are rejected (cache.edge.max_object_bytes)
  unsigned shards = 0;                       // 0 = auto: next power of two ≥ 4 × hardware threads; rounded up
                                             // to a power of two otherwise. Each shard owns max_bytes/shards.
  Policy policy = Policy::wtinylfu;          // default = the measured winner (bench/RESULTS.md)
  Locking locking = Locking::automatic;
};

struct StoreStats {
  std::uint64_t bytes = 0;              // sum of charge() of resident entries
  std::uint64_t objects = 0;            // resident entries (variants counted one by one)
  std::uint64_t hits = 0;               // lookups that returned an entry
  std::uint64_t misses = 0;
  std::uint64_t inserts = 0;            // accepted inserts (replacements included)
  std::uint64_t evictions = 0;          // entries removed to make room (not purges, erases or replacements)
  std::uint64_t admission_rejects = 0;  // candidates refused by the policy (at the door or leaving the
                                        // admission window) plus oversize inserts
};

class Store {
 public:
  using Options = StoreOptions;
  using Stats = StoreStats;

  explicit Store(Options options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // `hash` must be a function of the primary key alone (e.g. upstream::hash_key(key)); it picks the shard and
  // the index bucket and is never recomputed here.

  // The most recently inserted variant of `key` (its `vary` names the headers to build the variant key from),
  // or null. Counts a hit (unless the entry has `vary`: the variant lookup then counts) or a miss and feeds the
  // policy. The pointer keeps the entry alive.
  std::shared_ptr<const Entry> lookup(std::string_view key, std::uint64_t hash);
  // The variant of `key` whose variant_key equals `variant_key`, or null.
  std::shared_ptr<const Entry> lookup(std::string_view key, std::uint64_t hash, std::string_view variant_key);

  // Inserts (or replaces the same key + variant_key). An entry whose `vary` differs from the resident variants'
  // replaces all of them (the origin changed its Vary). Evicts until the shard fits. Returns false when rejected:
  // null, charge() > max_object_bytes or > the shard's share, or refused by admission (W-TinyLFU, objects larger
  // than the window). Even on false, a resident entry of the same key and variant is removed: the caller holds
  // a newer response, so the old one is superseded.
  bool insert(std::shared_ptr<const Entry> entry, std::uint64_t hash);

  // Removes every variant of `key`; returns how many.
  std::size_t erase(std::string_view key, std::uint64_t hash);
  // Removes `entry` (one variant of `key`) if it is still resident — not a newer response stored meanwhile.
  bool erase(std::string_view key, std::uint64_t hash, const Entry* entry);
  // Entries whose host equals `host` (any host if empty) and whose path starts with `prefix`: removed (hard) or
  // flagged stale (soft). Scans every shard. Returns the number affected.
  std::size_t purge_prefix(std::string_view host, std::string_view prefix, bool soft);
  // Every entry (all variants and key parts) for exactly this host and path (empty host: any); same rules.
  std::size_t purge_path(std::string_view host, std::string_view path, bool soft);
  // Entries carrying `tag`, through the per-shard tag index: O(shards + entries with the tag).
  std::size_t purge_tag(std::string_view tag, bool soft);
  void clear();

  Stats stats() const;
  unsigned shard_count() const noexcept;
  std::size_t shard_capacity() const noexcept;  // max_bytes / shards
  Policy policy() const noexcept;

 private:
  std::size_t purge_paths(std::string_view host, std::string_view prefix, bool soft, bool exact);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace virex::cache
