// Request coalescing (see coalescer.hpp).
#include "coalescer.hpp"

#include <boost/asio/post.hpp>

namespace virex::server {

Coalescer::Role Coalescer::join(std::uint64_t hash, std::string_view key, const std::shared_ptr<Waiter>& w) {
  Shard& s = shards_[hash % shards_.size()];
  std::lock_guard lock(s.mu);
  auto [b, e] = s.flights.equal_range(hash);
  for (auto it = b; it != e; ++it) {
    if (it->second.first != key) continue;
    if (it->second.second.size() >= kMaxWaiters) return Role::alone;  // a bounded queue
    it->second.second.push_back(w);
    return Role::wait;
  }
  s.flights.emplace(hash, std::make_pair(std::string(key), std::vector<std::shared_ptr<Waiter>>{}));
  return Role::lead;
}

bool Coalescer::lead(std::uint64_t hash, std::string_view key) {
  Shard& s = shards_[hash % shards_.size()];
  std::lock_guard lock(s.mu);
  auto [b, e] = s.flights.equal_range(hash);
  for (auto it = b; it != e; ++it)
    if (it->second.first == key) return false;
  s.flights.emplace(hash, std::make_pair(std::string(key), std::vector<std::shared_ptr<Waiter>>{}));
  return true;
}

void Coalescer::finish(std::uint64_t hash, std::string_view key) {
  std::vector<std::shared_ptr<Waiter>> waiters;
  {
    Shard& s = shards_[hash % shards_.size()];
    std::lock_guard lock(s.mu);
    auto [b, e] = s.flights.equal_range(hash);
    for (auto it = b; it != e; ++it) {
      if (it->second.first != key) continue;
      waiters = std::move(it->second.second);
      s.flights.erase(it);
      break;
    }
  }
  for (auto& w : waiters) {
    asio::post(w->ex, [w] {
      w->woken = true;
      if (w->timer) w->timer->cancel();
    });
  }
}

}  // namespace virex::server
