// Private to the store: the per-shard node, intrusive lists and the three byte-aware eviction/admission
// policies (S3-FIFO, W-TinyLFU, LRU). Everything here runs under its shard's lock — exclusive, except
// S3FifoPolicy::on_hit(), which only bumps an atomic counter and may run under a shared lock.
// A policy owns the order of resident nodes and their byte count; the shard owns the nodes and the indexes.
#pragma once

#include <virex/cache/store.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>
#include <vector>

namespace virex::cache::detail {

enum class Queue : std::uint8_t { none, single, small, main, window, probation, protect };

// One resident entry. Allocated by the shard, linked into one policy list, the key index (as the head of or a
// link in its key's variant chain) and the tag index.
struct Node {
  std::shared_ptr<const Entry> entry;
  std::uint64_t hash = 0;
  std::size_t charge = 0;       // entry->charge(), computed once
  Node* prev = nullptr;         // policy list (towards the newest / most recently used)
  Node* next = nullptr;         // policy list (towards the oldest / least recently used)
  Node* vnext = nullptr;        // next older variant of the same key
  std::atomic<std::uint8_t> freq{0};  // S3-FIFO: 0..3, may be bumped under a shared lock (relaxed, racy by design)
  Queue queue = Queue::none;
};

// Intrusive doubly-linked list, newest at the front. Keeps its byte and object counts.
struct NodeList {
  Node* head = nullptr;
  Node* tail = nullptr;
  std::size_t bytes = 0;
  std::size_t count = 0;

  bool empty() const noexcept { return head == nullptr; }
  Node* back() const noexcept { return tail; }
  void push_front(Node* n) noexcept {
    n->prev = nullptr;
    n->next = head;
    if (head) head->prev = n; else tail = n;
    head = n;
    bytes += n->charge;
    ++count;
  }
  void unlink(Node* n) noexcept {
    if (n->prev) n->prev->next = n->next; else head = n->next;
    if (n->next) n->next->prev = n->prev; else tail = n->prev;
    n->prev = n->next = nullptr;
    bytes -= n->charge;
    --count;
  }
  void move_to_front(Node* n) noexcept {
    if (head == n) return;
    unlink(n);
    push_front(n);
  }
  void reset() noexcept { *this = NodeList{}; }
};

// What a replaced node (same key and variant) left behind, for policies that carry state over.
struct PriorState {
  Queue queue = Queue::none;   // none: nothing was replaced
  std::uint8_t freq = 0;
};

struct Removed {
  Node* node;
  bool rejected;   // refused by admission (the candidate itself), as opposed to evicted to make room
};

class ShardPolicy {
 public:
  explicit ShardPolicy(std::size_t capacity) : capacity_(capacity) {}
  virtual ~ShardPolicy() = default;

  // True if on_hit() is safe under a shared lock (it touches only atomics).
  virtual bool shared_hits() const noexcept { return false; }
  // Every lookup, hit or miss, under the exclusive lock (W-TinyLFU's frequency sketch). Not called when
  // shared_hits().
  virtual void on_lookup(std::uint64_t /*hash*/) noexcept {}
  virtual void on_hit(Node& n) noexcept = 0;
  // Places `n` (n.charge ≤ capacity) and removes nodes until bytes() ≤ capacity; every node removed goes to
  // `out`, `n` itself (flagged rejected) if the policy refuses it. `replaced` describes the node of the
  // same key and variant this one replaces (already removed): a policy may carry its state over.
  virtual void insert(Node& n, PriorState replaced, std::vector<Removed>& out) = 0;
  // Unlinks a resident node (erase, purge, replacement).
  virtual void remove(Node& n) noexcept = 0;
  virtual void clear() noexcept = 0;
  virtual std::size_t bytes() const noexcept = 0;

  std::size_t capacity() const noexcept { return capacity_; }

 protected:
  std::size_t capacity_;
};

std::unique_ptr<ShardPolicy> make_policy(Policy policy, std::size_t capacity);

// --- pieces exposed for unit tests -------------------------------------------------------------------------

// S3-FIFO's ghost queue: hashes of nodes recently evicted from the small queue, FIFO, bounded by the bytes
// they were charged (Yang et al. size it like the main queue). Not part of the byte bound: ~48 B per hash.
class GhostFifo {
 public:
  explicit GhostFifo(std::size_t capacity_bytes) : capacity_(capacity_bytes) {}
  void add(std::uint64_t hash, std::size_t charge);
  bool take(std::uint64_t hash);   // true (and forgets it) if `hash` is remembered
  void clear() noexcept;
  std::size_t size() const noexcept { return live_.size(); }

 private:
  struct Item { std::uint64_t hash; std::size_t charge; std::uint64_t seq; };
  std::size_t capacity_;
  std::size_t bytes_ = 0;
  std::uint64_t seq_ = 0;
  std::deque<Item> fifo_;
  std::unordered_map<std::uint64_t, std::uint64_t> live_;   // hash → seq of its latest add
};

// Count-Min sketch of 4-bit counters, 4 per key, in 64-bit words (Caffeine's layout), halved every
// 10 × width increments so that old popularity fades (TinyLFU aging, Einziger et al. 2017 §3.3).
class FrequencySketch {
 public:
  explicit FrequencySketch(std::size_t expected_entries);
  void increment(std::uint64_t hash) noexcept;
  unsigned frequency(std::uint64_t hash) const noexcept;   // 0..15
  void clear() noexcept;

 private:
  void age() noexcept;
  std::vector<std::uint64_t> table_;
  std::uint64_t mask_;
  std::size_t sample_size_;
  std::size_t additions_ = 0;
};

}  // namespace virex::cache::detail
