// Request coalescing for the edge cache (node-wide, every worker): concurrent misses for one key make one
// origin request. The first miss leads (fetches and stores); later ones wait until the leader finishes, then
// look the store up again — a hit, or a fetch of their own if the response was not storable or the leader
// failed. Waiters are woken the moment the leader finishes (a post to their worker cancels their timer: no
// polling) and give up after a lock timeout. Any thread; a short mutex per shard, taken on misses only.
#pragma once

#include "worker.hpp"

#include <array>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace virex::server {

class Coalescer {
 public:
  // One waiting request. Only its own worker thread touches `timer` and `woken` (wake-ups are posted there).
  struct Waiter {
    explicit Waiter(Executor e) : ex(e) {}
    Executor ex;
    Timer* timer = nullptr;   // set while the request waits
    bool woken = false;
  };
  static constexpr std::size_t kMaxWaiters = 16384;  // per key; beyond, a request goes to the origin itself

  enum class Role : std::uint8_t {
    lead,   // the caller fetches for the key; it must call finish() when its exchange ends
    wait,   // `w` was queued behind the flight in progress
    alone,  // the flight's queue is full: the caller fetches without leading (and must not call finish())
  };
  Role join(std::uint64_t hash, std::string_view key, const std::shared_ptr<Waiter>& w);
  // Takes the flight for `key` when none is in progress (then the caller must call finish()); never queues.
  bool lead(std::uint64_t hash, std::string_view key);
  // Ends the flight for `key` and wakes its waiters.
  void finish(std::uint64_t hash, std::string_view key);

 private:
  struct Shard {
    std::mutex mu;
    std::unordered_multimap<std::uint64_t, std::pair<std::string, std::vector<std::shared_ptr<Waiter>>>> flights;
  };
  std::array<Shard, 16> shards_;
};

}  // namespace virex::server
