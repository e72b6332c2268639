// The edge cache store: shards (lock, key index with variant chains, tag index, policy) and the three policies.
// Any thread may call any method; a shard's lock is held only for index and list updates — entries released
// by a removal are destroyed after the lock is dropped, so freeing a large body never happens inside it.
#include <virex/cache/store.hpp>

#include "cache/store_policy.hpp"

#include <algorithm>
#include <bit>
#include <cassert>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_set>

namespace virex::cache {

namespace {

// glibc malloc chunk for a request of n bytes: n + 8 (size header), rounded up to 16, at least 32.
constexpr std::size_t malloc_chunk(std::size_t n) noexcept {
  return std::max<std::size_t>(32, (n + 8 + 15) & ~std::size_t{15});
}

// Heap bytes a string owns: none while its characters live inside the object (small-string optimisation).
std::size_t heap_bytes(const std::string& s) noexcept {
  const auto* obj = reinterpret_cast<const char*>(&s);
  const char* data = s.data();
  if (data >= obj && data < obj + sizeof(std::string)) return 0;
  return malloc_chunk(s.capacity() + 1);
}

template <class T>
std::size_t heap_bytes(const std::vector<T>& v) noexcept {
  return v.capacity() == 0 ? 0 : malloc_chunk(v.capacity() * sizeof(T));
}

}  // namespace

std::size_t Entry::charge() const noexcept {
  std::size_t n = kOverheadBytes;
  for (const std::string* s : {&key, &variant_key, &host, &path, &head, &body, &etag, &last_modified})
    n += heap_bytes(*s);
  n += heap_bytes(tags) + heap_bytes(vary);
  for (const auto& t : tags) n += heap_bytes(t) + malloc_chunk(t.size() + 1) + kPerTagBytes;  // + index copy
  for (const auto& v : vary) n += heap_bytes(v);
  return n;
}

namespace detail {

// The fixed overhead must cover what every entry costs besides its strings' heap bytes.
static_assert(sizeof(Entry) + 16 /* make_shared control block */ + malloc_chunk(sizeof(Entry) + 16) -
                      (sizeof(Entry) + 16) /* its chunk rounding */ + malloc_chunk(sizeof(Node)) +
                      64 /* key index: unordered_map node (next, KeyRef, Node*) + bucket slot */ <=
                  Entry::kOverheadBytes,
              "Entry::kOverheadBytes no longer covers the fixed per-entry cost");
static_assert(64 /* unordered_set<Node*> node (next, value, cached hash) + bucket */ <= Entry::kPerTagBytes);

// ---- GhostFifo -----------------------------------------------------------------------------------------------

void GhostFifo::add(std::uint64_t hash, std::size_t charge) {
  const std::uint64_t seq = ++seq_;
  fifo_.push_back({hash, charge, seq});
  live_[hash] = seq;
  bytes_ += charge;
  while (bytes_ > capacity_ && !fifo_.empty()) {
    const Item old = fifo_.front();
    fifo_.pop_front();
    bytes_ -= old.charge;
    if (auto it = live_.find(old.hash); it != live_.end() && it->second == old.seq) live_.erase(it);
  }
}

bool GhostFifo::take(std::uint64_t hash) {
  auto it = live_.find(hash);
  if (it == live_.end()) return false;
  live_.erase(it);   // its FIFO slot stays until it falls out (its seq no longer matches)
  return true;
}

void GhostFifo::clear() noexcept {
  fifo_.clear();
  live_.clear();
  bytes_ = 0;
}

// ---- FrequencySketch -----------------------------------------------------------------------------------------

FrequencySketch::FrequencySketch(std::size_t expected_entries)
    : table_(std::bit_ceil(std::max<std::size_t>(expected_entries, 64)), 0),
      mask_(table_.size() - 1),
      sample_size_(10 * table_.size()) {}

namespace {
constexpr std::uint64_t kSeeds[4] = {0xc3a5c85c97cb3127ULL, 0xb492b66fbe98f273ULL, 0x9ae16a3b2f90404fULL,
                                     0xcbf29ce484222325ULL};
// Word index and bit offset of the i-th counter of `hash`.
inline std::pair<std::size_t, unsigned> counter(std::uint64_t hash, int i, std::uint64_t mask) noexcept {
  std::uint64_t x = (hash ^ kSeeds[i]) * 0x9e3779b97f4a7c15ULL;
  x ^= x >> 29;
  return {static_cast<std::size_t>(x & mask), static_cast<unsigned>((x >> 58) & 15) * 4};
}
}  // namespace

void FrequencySketch::increment(std::uint64_t hash) noexcept {
  bool added = false;
  for (int i = 0; i < 4; ++i) {
    auto [w, off] = counter(hash, i, mask_);
    if (((table_[w] >> off) & 15) < 15) {
      table_[w] += std::uint64_t{1} << off;
      added = true;
    }
  }
  if (added && ++additions_ >= sample_size_) age();
}

unsigned FrequencySketch::frequency(std::uint64_t hash) const noexcept {
  unsigned f = 15;
  for (int i = 0; i < 4; ++i) {
    auto [w, off] = counter(hash, i, mask_);
    f = std::min(f, static_cast<unsigned>((table_[w] >> off) & 15));
  }
  return f;
}

void FrequencySketch::age() noexcept {
  for (auto& w : table_) w = (w >> 1) & 0x7777777777777777ULL;
  additions_ /= 2;
}

void FrequencySketch::clear() noexcept {
  std::fill(table_.begin(), table_.end(), 0);
  additions_ = 0;
}

// ---- LRU -----------------------------------------------------------------------------------------------------

namespace {

class LruPolicy final : public ShardPolicy {
 public:
  using ShardPolicy::ShardPolicy;
  void on_hit(Node& n) noexcept override { list_.move_to_front(&n); }
  void insert(Node& n, PriorState, std::vector<Removed>& out) override {
    n.queue = Queue::single;
    list_.push_front(&n);
    while (list_.bytes > capacity_) {
      Node* v = list_.back();
      list_.unlink(v);
      v->queue = Queue::none;
      out.push_back({v, v == &n});
    }
  }
  void remove(Node& n) noexcept override {
    list_.unlink(&n);
    n.queue = Queue::none;
  }
  void clear() noexcept override { list_.reset(); }
  std::size_t bytes() const noexcept override { return list_.bytes; }

 private:
  NodeList list_;
};

// ---- S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction", SOSP'23, Algorithm 1) ---------
// Byte-aware: the small queue's target is 10 % of the shard's bytes, the ghost remembers as many bytes as the
// main queue holds. A replacement of an entry that was in main goes straight to main with its frequency
// (the key is known to be popular; a refresh after expiry should not have to re-earn its place).
class S3FifoPolicy final : public ShardPolicy {
 public:
  explicit S3FifoPolicy(std::size_t capacity)
      : ShardPolicy(capacity), small_target_(capacity / 10), ghost_(capacity - capacity / 10) {}

  bool shared_hits() const noexcept override { return true; }
  void on_hit(Node& n) noexcept override {
    const auto f = n.freq.load(std::memory_order_relaxed);
    if (f < 3) n.freq.store(f + 1, std::memory_order_relaxed);   // lost updates are harmless
  }
  void insert(Node& n, PriorState replaced, std::vector<Removed>& out) override {
    if (replaced.queue == Queue::main) {
      n.freq.store(replaced.freq, std::memory_order_relaxed);
      push(main_, n, Queue::main);
    } else if (ghost_.take(n.hash)) {
      n.freq.store(0, std::memory_order_relaxed);
      push(main_, n, Queue::main);
    } else {
      n.freq.store(0, std::memory_order_relaxed);
      push(small_, n, Queue::small);
    }
    while (small_.bytes + main_.bytes > capacity_) {
      if (small_.bytes > small_target_ || main_.empty()) evict_small(&n, out);
      else evict_main(&n, out);
    }
  }
  void remove(Node& n) noexcept override {
    (n.queue == Queue::main ? main_ : small_).unlink(&n);
    n.queue = Queue::none;
  }
  void clear() noexcept override {
    small_.reset();
    main_.reset();
    ghost_.clear();
  }
  std::size_t bytes() const noexcept override { return small_.bytes + main_.bytes; }

 private:
  static void push(NodeList& l, Node& n, Queue q) noexcept {
    n.queue = q;
    l.push_front(&n);
  }
  // Oldest of the small queue: accessed while there → main (frequency reset), else evicted into the ghost.
  void evict_small(const Node* candidate, std::vector<Removed>& out) {
    while (!small_.empty()) {
      Node* t = small_.back();
      small_.unlink(t);
      if (t->freq.load(std::memory_order_relaxed) >= 1) {
        t->freq.store(0, std::memory_order_relaxed);
        push(main_, *t, Queue::main);
        continue;
      }
      t->queue = Queue::none;
      ghost_.add(t->hash, t->charge);
      out.push_back({t, t == candidate});
      return;
    }
  }
  // Oldest of the main queue: reinserted with frequency − 1 while it has some (CLOCK-like), else evicted.
  void evict_main(const Node* candidate, std::vector<Removed>& out) {
    while (!main_.empty()) {
      Node* t = main_.back();
      const auto f = t->freq.load(std::memory_order_relaxed);
      if (f > 0) {
        t->freq.store(f - 1, std::memory_order_relaxed);
        main_.move_to_front(t);
        continue;
      }
      main_.unlink(t);
      t->queue = Queue::none;
      out.push_back({t, t == candidate});
      return;
    }
  }

  std::size_t small_target_;
  NodeList small_;
  NodeList main_;
  GhostFifo ghost_;
};

// ---- W-TinyLFU (Einziger, Friedman, Manes, "TinyLFU", ACM ToS 2017; Caffeine's layout) -----------------------
// Byte-aware: window LRU of 1 % of the bytes, main SLRU of the rest (protected 80 %, probation 20 %). A candidate
// leaving the window (or an object larger than the window, at once) enters main only if its estimated frequency
// beats that of every victim it would displace, taken from probation's LRU end, then protected's.
class WTinyLfuPolicy final : public ShardPolicy {
 public:
  explicit WTinyLfuPolicy(std::size_t capacity)
      : ShardPolicy(capacity),
        window_cap_(std::max<std::size_t>(capacity / 100, 1)),
        main_cap_(capacity - window_cap_),
        protected_cap_(main_cap_ / 10 * 8),
        sketch_(capacity / 2048) {}

  void on_lookup(std::uint64_t hash) noexcept override { sketch_.increment(hash); }
  void on_hit(Node& n) noexcept override {
    switch (n.queue) {
      case Queue::window: window_.move_to_front(&n); break;
      case Queue::protect: protected_.move_to_front(&n); break;
      case Queue::probation:
        probation_.unlink(&n);
        n.queue = Queue::protect;
        protected_.push_front(&n);
        while (protected_.bytes > protected_cap_) {
          Node* d = protected_.back();
          protected_.unlink(d);
          d->queue = Queue::probation;
          probation_.push_front(d);
        }
        break;
      default: break;
    }
  }
  void insert(Node& n, PriorState, std::vector<Removed>& out) override {
    if (n.charge > window_cap_) {
      admit(&n, out);
      return;
    }
    n.queue = Queue::window;
    window_.push_front(&n);
    while (window_.bytes > window_cap_) {
      Node* c = window_.back();
      window_.unlink(c);
      c->queue = Queue::none;
      admit(c, out);
    }
  }
  void remove(Node& n) noexcept override {
    list_of(n.queue).unlink(&n);
    n.queue = Queue::none;
  }
  void clear() noexcept override {
    window_.reset();
    probation_.reset();
    protected_.reset();
    sketch_.clear();
  }
  std::size_t bytes() const noexcept override { return window_.bytes + probation_.bytes + protected_.bytes; }

 private:
  NodeList& list_of(Queue q) noexcept {
    return q == Queue::window ? window_ : q == Queue::probation ? probation_ : protected_;
  }
  // Victims in eviction order: probation from its LRU end, then protected from its LRU end.
  Node* next_victim(Node* v) const noexcept {
    if (v == nullptr) return probation_.tail ? probation_.tail : protected_.tail;
    if (v->prev) return v->prev;
    return v->queue == Queue::probation ? protected_.tail : nullptr;
  }
  void admit(Node* c, std::vector<Removed>& out) {
    const std::size_t resident = probation_.bytes + protected_.bytes;
    if (c->charge > main_cap_) {
      out.push_back({c, true});
      return;
    }
    if (resident + c->charge > main_cap_) {
      // First pass: would the candidate beat every victim needed to make room?
      const unsigned cf = sketch_.frequency(c->hash);
      std::size_t freed = 0;
      Node* v = nullptr;
      while (resident - freed + c->charge > main_cap_) {
        v = next_victim(v);
        if (v == nullptr || cf <= sketch_.frequency(v->hash)) {
          out.push_back({c, true});
          return;
        }
        freed += v->charge;
      }
      // Second pass: evict them.
      freed = 0;
      while (resident - freed + c->charge > main_cap_) {
        Node* victim = next_victim(nullptr);
        freed += victim->charge;
        remove(*victim);
        out.push_back({victim, false});
      }
    }
    c->queue = Queue::probation;
    probation_.push_front(c);
  }

  std::size_t window_cap_;
  std::size_t main_cap_;
  std::size_t protected_cap_;
  NodeList window_;
  NodeList probation_;
  NodeList protected_;
  FrequencySketch sketch_;
};

}  // namespace

std::unique_ptr<ShardPolicy> make_policy(Policy policy, std::size_t capacity) {
  switch (policy) {
    case Policy::lru: return std::make_unique<LruPolicy>(capacity);
    case Policy::wtinylfu: return std::make_unique<WTinyLfuPolicy>(capacity);
    case Policy::s3fifo: break;
  }
  return std::make_unique<S3FifoPolicy>(capacity);
}

}  // namespace detail

// ---- Store ---------------------------------------------------------------------------------------------------

namespace {

using detail::Node;
using detail::Removed;

// Key index slot: the key viewed inside the head variant's entry, plus the caller's hash. `key` is re-pointed
// (same characters) when the head variant changes; neither hash nor equality depend on where it points.
struct KeyRef {
  mutable std::string_view key;
  std::uint64_t hash;
};
struct KeyRefHash {
  std::size_t operator()(const KeyRef& k) const noexcept { return static_cast<std::size_t>(k.hash); }
};
struct KeyRefEq {
  bool operator()(const KeyRef& a, const KeyRef& b) const noexcept { return a.hash == b.hash && a.key == b.key; }
};
struct TagHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

constexpr std::size_t kMaxVariants = 32;   // per key; inserting more drops the oldest (bounds a chain walk)

using Graveyard = std::vector<std::unique_ptr<Node>>;   // freed after the lock is released

struct alignas(64) Shard {
  std::mutex mu;
  std::shared_mutex rw;
  bool shared_reads = false;   // lookups take rw shared; everything else rw exclusive. Else: mu.

  std::unordered_map<KeyRef, Node*, KeyRefHash, KeyRefEq> index;   // head (newest) variant per key
  std::unordered_map<std::string, std::unordered_set<Node*>, TagHash, std::equal_to<>> tags;
  std::unique_ptr<detail::ShardPolicy> policy;

  alignas(64) std::atomic<std::uint64_t> hits{0};
  std::atomic<std::uint64_t> misses{0};
  alignas(64) std::atomic<std::uint64_t> bytes{0};   // written under the exclusive lock, read by stats()
  std::atomic<std::uint64_t> objects{0};
  std::atomic<std::uint64_t> inserts{0};
  std::atomic<std::uint64_t> evictions{0};
  std::atomic<std::uint64_t> rejects{0};

  void lock() {
    if (shared_reads) rw.lock(); else mu.lock();
  }
  void unlock() {
    if (shared_reads) rw.unlock(); else mu.unlock();
  }

  // Links a new node as its key's newest variant and into the tag index.
  void link(Node* n) {
    auto [it, fresh] = index.try_emplace(KeyRef{n->entry->key, n->hash}, n);
    if (!fresh) {
      n->vnext = it->second;
      it->second = n;
      it->first.key = n->entry->key;
    }
    for (const auto& t : n->entry->tags) {
      auto ti = tags.find(std::string_view(t));
      if (ti == tags.end()) ti = tags.emplace(t, std::unordered_set<Node*>{}).first;
      ti->second.insert(n);
    }
  }
  // Unlinks a node from the key and tag indexes (not from the policy).
  void unlink(Node* n) {
    auto it = index.find(KeyRef{n->entry->key, n->hash});
    assert(it != index.end());
    if (it->second == n) {
      if (n->vnext) {
        it->second = n->vnext;
        it->first.key = n->vnext->entry->key;
      } else {
        index.erase(it);
      }
    } else {
      Node* p = it->second;
      while (p->vnext != n) p = p->vnext;
      p->vnext = n->vnext;
    }
    n->vnext = nullptr;
    for (const auto& t : n->entry->tags) {
      if (auto ti = tags.find(std::string_view(t)); ti != tags.end()) {
        ti->second.erase(n);
        if (ti->second.empty()) tags.erase(ti);
      }
    }
  }
  // Removes a resident node entirely (not an eviction); the node is freed later, with the graveyard.
  void remove(Node* n, Graveyard& dead) {
    policy->remove(*n);
    unlink(n);
    dead.emplace_back(n);
    --objects_;
    publish();
  }
  void publish() noexcept {
    bytes.store(policy->bytes(), std::memory_order_relaxed);
    objects.store(objects_, std::memory_order_relaxed);
  }
  std::size_t objects_ = 0;   // under the lock
};

unsigned resolve_shards(unsigned requested) {
  if (requested == 0) {
    const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    requested = 4 * hw;
  }
  return std::bit_ceil(std::max(1u, requested));
}

}  // namespace

struct Store::Impl {
  Options options;
  unsigned shard_bits;
  std::size_t shard_capacity;
  std::unique_ptr<Shard[]> shards;

  Shard& shard_for(std::uint64_t hash) noexcept {
    return shards[shard_bits == 0 ? 0 : static_cast<std::size_t>(hash >> (64 - shard_bits))];
  }
  unsigned count() const noexcept { return 1u << shard_bits; }
};

Store::Store(Options options) : impl_(std::make_unique<Impl>()) {
  const unsigned n = resolve_shards(options.shards);
  impl_->options = options;
  impl_->options.shards = n;
  impl_->shard_bits = static_cast<unsigned>(std::countr_zero(n));
  impl_->shard_capacity = options.max_bytes / n;
  impl_->shards = std::make_unique<Shard[]>(n);
  const bool shared = options.locking == Locking::shared;   // automatic = mutex (measured)
  for (unsigned i = 0; i < n; ++i) {
    impl_->shards[i].policy = detail::make_policy(options.policy, impl_->shard_capacity);
    impl_->shards[i].shared_reads = shared && impl_->shards[i].policy->shared_hits();
  }
}

Store::~Store() { clear(); }

namespace {

// Finds the variant (or, with no variant key, the newest) under whichever lock the caller holds.
Node* find(Shard& s, std::string_view key, std::uint64_t hash, const std::string_view* variant) {
  auto it = s.index.find(KeyRef{key, hash});
  if (it == s.index.end()) return nullptr;
  Node* n = it->second;
  if (variant)
    while (n && n->entry->variant_key != *variant) n = n->vnext;
  return n;
}

std::shared_ptr<const Entry> lookup_in(Shard& s, std::string_view key, std::uint64_t hash,
                                       const std::string_view* variant) {
  std::shared_ptr<const Entry> found;
  if (s.shared_reads) {
    std::shared_lock lock(s.rw);
    if (Node* n = find(s, key, hash, variant)) {
      s.policy->on_hit(*n);
      found = n->entry;
    }
  } else {
    std::lock_guard lock(s.mu);
    s.policy->on_lookup(hash);
    if (Node* n = find(s, key, hash, variant)) {
      s.policy->on_hit(*n);
      found = n->entry;
    }
  }
  // A Vary'd entry found by key alone is counted by the variant lookup that follows (one count per request).
  if (!found) s.misses.fetch_add(1, std::memory_order_relaxed);
  else if (variant || found->vary.empty()) s.hits.fetch_add(1, std::memory_order_relaxed);
  return found;
}

}  // namespace

std::shared_ptr<const Entry> Store::lookup(std::string_view key, std::uint64_t hash) {
  return lookup_in(impl_->shard_for(hash), key, hash, nullptr);
}

std::shared_ptr<const Entry> Store::lookup(std::string_view key, std::uint64_t hash,
                                           std::string_view variant_key) {
  return lookup_in(impl_->shard_for(hash), key, hash, &variant_key);
}

bool Store::insert(std::shared_ptr<const Entry> entry, std::uint64_t hash) {
  if (!entry) return false;
  Shard& s = impl_->shard_for(hash);
  const std::size_t charge = entry->charge();
  const bool fits = charge <= impl_->options.max_object_bytes && charge <= impl_->shard_capacity;
  auto node = fits ? std::make_unique<Node>() : nullptr;   // allocated outside the lock
  if (node) {
    node->entry = std::move(entry);
    node->hash = hash;
    node->charge = charge;
  }
  const Entry& e = node ? *node->entry : *entry;

  Graveyard dead;
  std::vector<Removed> removed;
  bool accepted = false;
  {
    std::lock_guard lock(s);
    // Superseded variants: the same variant, or all of them if the origin now varies on other fields
    // (RFC 9111 §4.1). Removed even when the new entry is rejected: the caller holds a newer response.
    detail::PriorState replaced;
    std::size_t chain = 0;
    if (auto it = s.index.find(KeyRef{e.key, hash}); it != s.index.end()) {
      for (Node* v = it->second; v;) {
        Node* next = v->vnext;
        if (v->entry->variant_key == e.variant_key || v->entry->vary != e.vary) {
          if (v->entry->variant_key == e.variant_key)
            replaced = {v->queue, v->freq.load(std::memory_order_relaxed)};
          s.remove(v, dead);
        } else if (++chain >= kMaxVariants) {
          s.remove(v, dead);   // the oldest variants beyond the bound
        }
        v = next;
      }
    }
    if (node) {
      Node* n = node.release();
      accepted = true;
      s.link(n);
      ++s.objects_;
      s.policy->insert(*n, replaced, removed);
      for (const Removed& r : removed) {
        s.unlink(r.node);
        --s.objects_;
        dead.emplace_back(r.node);
        if (r.node == n) accepted = false;
        (r.rejected ? s.rejects : s.evictions).fetch_add(1, std::memory_order_relaxed);
      }
      if (accepted) s.inserts.fetch_add(1, std::memory_order_relaxed);
      s.publish();
      assert(s.policy->bytes() <= impl_->shard_capacity);
    } else {
      s.rejects.fetch_add(1, std::memory_order_relaxed);
    }
  }
  return accepted;   // `dead` (and the entries only it kept alive) freed here, outside the lock
}

std::size_t Store::erase(std::string_view key, std::uint64_t hash) {
  Shard& s = impl_->shard_for(hash);
  Graveyard dead;
  {
    std::lock_guard lock(s);
    auto it = s.index.find(KeyRef{key, hash});
    if (it == s.index.end()) return 0;
    for (Node* v = it->second; v;) {
      Node* next = v->vnext;
      s.remove(v, dead);
      v = next;
    }
  }
  return dead.size();
}

bool Store::erase(std::string_view key, std::uint64_t hash, const Entry* entry) {
  Shard& s = impl_->shard_for(hash);
  Graveyard dead;
  {
    std::lock_guard lock(s);
    auto it = s.index.find(KeyRef{key, hash});
    if (it == s.index.end()) return false;
    for (Node* v = it->second; v; v = v->vnext) {
      if (v->entry.get() != entry) continue;
      s.remove(v, dead);
      break;
    }
  }
  return !dead.empty();
}

std::size_t Store::purge_prefix(std::string_view host, std::string_view prefix, bool soft) {
  return purge_paths(host, prefix, soft, false);
}

std::size_t Store::purge_path(std::string_view host, std::string_view path, bool soft) {
  return purge_paths(host, path, soft, true);
}

std::size_t Store::purge_paths(std::string_view host, std::string_view prefix, bool soft, bool exact) {
  std::size_t affected = 0;
  for (unsigned i = 0; i < impl_->count(); ++i) {
    Shard& s = impl_->shards[i];
    Graveyard dead;
    std::vector<Node*> matched;
    std::lock_guard lock(s);
    for (const auto& [k, head] : s.index)
      for (Node* v = head; v; v = v->vnext)
        if ((host.empty() || v->entry->host == host) &&
            (exact ? v->entry->path == prefix : v->entry->path.starts_with(prefix)))
          matched.push_back(v);
    for (Node* v : matched) {
      if (soft) v->entry->stale.store(true, std::memory_order_relaxed);
      else s.remove(v, dead);
    }
    affected += matched.size();
  }
  return affected;
}

std::size_t Store::purge_tag(std::string_view tag, bool soft) {
  std::size_t affected = 0;
  for (unsigned i = 0; i < impl_->count(); ++i) {
    Shard& s = impl_->shards[i];
    Graveyard dead;
    std::lock_guard lock(s);
    auto ti = s.tags.find(tag);
    if (ti == s.tags.end()) continue;
    affected += ti->second.size();
    if (soft) {
      for (Node* v : ti->second) v->entry->stale.store(true, std::memory_order_relaxed);
    } else {
      const std::vector<Node*> matched(ti->second.begin(), ti->second.end());   // removal erases from the set
      for (Node* v : matched) s.remove(v, dead);
    }
  }
  return affected;
}

void Store::clear() {
  for (unsigned i = 0; i < impl_->count(); ++i) {
    Shard& s = impl_->shards[i];
    Graveyard dead;
    std::lock_guard lock(s);
    for (auto& [k, head] : s.index)
      for (Node* v = head; v;) {
        Node* next = v->vnext;
        dead.emplace_back(v);
        v = next;
      }
    s.index.clear();
    s.tags.clear();
    s.policy->clear();
    s.objects_ = 0;
    s.publish();
  }
}

Store::Stats Store::stats() const {
  Stats st;
  for (unsigned i = 0; i < impl_->count(); ++i) {
    const Shard& s = impl_->shards[i];
    st.bytes += s.bytes.load(std::memory_order_relaxed);
    st.objects += s.objects.load(std::memory_order_relaxed);
    st.hits += s.hits.load(std::memory_order_relaxed);
    st.misses += s.misses.load(std::memory_order_relaxed);
    st.inserts += s.inserts.load(std::memory_order_relaxed);
    st.evictions += s.evictions.load(std::memory_order_relaxed);
    st.admission_rejects += s.rejects.load(std::memory_order_relaxed);
  }
  return st;
}

unsigned Store::shard_count() const noexcept { return impl_->count(); }
std::size_t Store::shard_capacity() const noexcept { return impl_->shard_capacity; }
Policy Store::policy() const noexcept { return impl_->options.policy; }

}  // namespace virex::cache
