// Edge cache policy simulator and store throughput (a plain executable printing tables, Release build).
// Part 1 replays synthetic traces through a one-shard Store per policy and prints byte and object hit ratios:
// Zipf α ∈ {0.8, 1.0, 1.2} over 100k keys, object sizes lognormal (median 8 KiB, σ = 1, 256 B .. 1 MiB), cache =
// 1 % / 10 % of the working set's bytes (sum of charge()), and a scan-heavy trace (Zipf 1.0 where every 2,000
// requests a run of 1,000 never-repeated keys is read: one-hit wonders, a third of all requests). Each request:
// lookup, and on a miss insert the object (as the edge does after the origin answers). The first quarter of a
// trace warms the cache and is not counted.
// Part 2: lookup/insert ops/s with 1, 2, 4, 8 threads, 95 % lookups (hits) / 5 % inserts (replacements), Zipf 1.0
// over 20k small entries, default shard count, per policy and lock kind.
// Usage: cache_eviction_bench [--requests N] [--ops N] [--rounds N] [--no-sim] [--no-threads]
#include <virex/cache/store.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace virex::cache;

std::uint64_t hash_of(std::uint64_t id) {   // splitmix64 finaliser over the key id
  std::uint64_t z = id + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
std::string key_of(std::uint64_t id) { return "GET|bench.example|/objects/" + std::to_string(id); }

std::shared_ptr<const Entry> make_entry(std::uint64_t id, std::size_t body) {
  auto e = std::make_shared<Entry>();
  e->key = key_of(id);
  e->host = "bench.example";
  e->path = "/objects/" + std::to_string(id);
  e->head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nCache-Control: max-age=60\r\n"
            "Content-Length: " + std::to_string(body) + "\r\n";
  e->body.resize(body);
  e->ttl = 60;
  return e;
}

class Zipf {
 public:
  Zipf(std::size_t n, double alpha) : cdf_(n) {
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) cdf_[i] = (sum += 1.0 / std::pow(double(i + 1), alpha));
    for (auto& c : cdf_) c /= sum;
  }
  std::size_t operator()(std::mt19937_64& rng) const {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return std::min<std::size_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin(), cdf_.size() - 1);
  }

 private:
  std::vector<double> cdf_;
};

constexpr std::size_t kKeys = 100'000;

struct Trace {
  std::string name;
  std::vector<std::uint64_t> ids;
};

// Sizes per id (ids ≥ kKeys are scan keys), drawn once, independent of popularity.
std::size_t size_of(std::uint64_t id) {
  std::mt19937_64 rng(hash_of(id ^ 0x5eed));
  std::lognormal_distribution<double> d(std::log(8192.0), 1.0);
  return static_cast<std::size_t>(std::clamp(d(rng), 256.0, 1048576.0));
}

Trace zipf_trace(double alpha, std::size_t requests, bool scans) {
  Zipf z(kKeys, alpha);
  std::mt19937_64 rng(static_cast<std::uint64_t>(alpha * 1000) + scans);
  std::vector<std::uint64_t> perm(kKeys);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);   // popularity rank → key id
  Trace t;
  char name[64];
  std::snprintf(name, sizeof name, scans ? "zipf %.1f + scans" : "zipf %.1f", alpha);
  t.name = name;
  t.ids.reserve(requests);
  std::uint64_t next_scan = kKeys;
  while (t.ids.size() < requests) {
    for (int i = 0; i < 2000 && t.ids.size() < requests; ++i) t.ids.push_back(perm[z(rng)]);
    if (scans)
      for (int i = 0; i < 1000 && t.ids.size() < requests; ++i) t.ids.push_back(next_scan++);
  }
  return t;
}

struct Ratio {
  double bytes, objects;
};

Ratio replay(const Trace& t, Policy p, std::size_t cap) {
  Store::Options o;
  o.max_bytes = cap;
  o.max_object_bytes = cap;
  o.shards = 1;
  o.policy = p;
  Store st(o);
  const std::size_t warm = t.ids.size() / 4;
  std::uint64_t req = 0, hit = 0, req_bytes = 0, hit_bytes = 0;
  for (std::size_t i = 0; i < t.ids.size(); ++i) {
    const std::uint64_t id = t.ids[i];
    const std::string key = key_of(id);
    const std::uint64_t h = hash_of(id);
    const std::size_t size = size_of(id);
    const bool found = st.lookup(key, h) != nullptr;
    if (!found) (void)st.insert(make_entry(id, size), h);
    if (i >= warm) {
      ++req;
      req_bytes += size;
      if (found) {
        ++hit;
        hit_bytes += size;
      }
    }
  }
  return {double(hit_bytes) / double(req_bytes), double(hit) / double(req)};
}

void simulate(std::size_t requests) {
  std::size_t working_set = 0;
  for (std::uint64_t id = 0; id < kKeys; ++id) working_set += make_entry(id, size_of(id))->charge();
  std::printf("working set: %zu keys, %.1f MiB (sum of charge()); %zu requests per trace, first 25%% warm-up\n\n",
              kKeys, double(working_set) / (1 << 20), requests);
  std::printf("| trace | cache | s3fifo bytes | wtinylfu bytes | lru bytes | s3fifo objects | wtinylfu objects | lru objects |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  std::vector<Trace> traces;
  for (double a : {0.8, 1.0, 1.2}) traces.push_back(zipf_trace(a, requests, false));
  traces.push_back(zipf_trace(1.0, requests, true));
  const Policy policies[] = {Policy::s3fifo, Policy::wtinylfu, Policy::lru};
  for (const auto& t : traces) {
    for (double frac : {0.01, 0.10}) {
      const auto cap = static_cast<std::size_t>(double(working_set) * frac);
      Ratio r[3];
      for (int i = 0; i < 3; ++i) r[i] = replay(t, policies[i], cap);
      std::printf("| %s | %.0f%% (%.1f MiB) | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f |\n", t.name.c_str(),
                  frac * 100, double(cap) / (1 << 20), r[0].bytes, r[1].bytes, r[2].bytes, r[0].objects,
                  r[1].objects, r[2].objects);
      std::fflush(stdout);
    }
  }
}

void throughput(std::size_t ops_per_thread, int rounds) {
  constexpr std::size_t kSmallKeys = 20'000;
  std::vector<std::shared_ptr<const Entry>> entries;
  for (std::uint64_t id = 0; id < kSmallKeys; ++id) entries.push_back(make_entry(id, 512));
  struct Variant {
    Policy p;
    Locking l;
    const char* name;
  };
  const Variant variants[] = {{Policy::s3fifo, Locking::shared, "s3fifo, rw lock (reads shared)"},
                              {Policy::s3fifo, Locking::mutex, "s3fifo, mutex"},
                              {Policy::wtinylfu, Locking::mutex, "wtinylfu, mutex"},
                              {Policy::lru, Locking::mutex, "lru, mutex"}};
  std::printf("\nthroughput: 95%% lookup (hit) / 5%% insert (replace), zipf 1.0 over %zu entries of 512 B, "
              "%zu ops per thread, best of %d interleaved rounds, hardware threads: %u\n\n",
              kSmallKeys, ops_per_thread, rounds, std::thread::hardware_concurrency());
  std::printf("| store | shards | 1 thread | 2 threads | 4 threads | 8 threads |\n|---|---|---|---|---|---|\n");
  Zipf z(kSmallKeys, 1.0);
  const unsigned thread_counts[] = {1, 2, 4, 8};
  double best[4][4] = {};
  unsigned shards = 0;
  for (int round = 0; round < rounds; ++round)
  for (int vi = 0; vi < 4; ++vi) {
    const auto& v = variants[vi];
    Store::Options o;
    o.max_bytes = 256u << 20;
    o.policy = v.p;
    o.locking = v.l;
    Store st(o);
    for (std::uint64_t id = 0; id < kSmallKeys; ++id) (void)st.insert(entries[id], hash_of(id));
    shards = st.shard_count();
    for (int ti = 0; ti < 4; ++ti) {
      const unsigned threads = thread_counts[ti];
      std::vector<std::vector<std::uint32_t>> seqs(threads);
      for (unsigned t = 0; t < threads; ++t) {
        std::mt19937_64 rng(t + 1);
        seqs[t].resize(ops_per_thread);
        for (auto& x : seqs[t]) x = static_cast<std::uint32_t>(z(rng));
      }
      std::vector<std::string> keys(kSmallKeys);
      for (std::uint64_t id = 0; id < kSmallKeys; ++id) keys[id] = key_of(id);
      std::atomic<unsigned> ready{0};
      std::atomic<bool> go{false};
      std::vector<std::thread> pool;
      for (unsigned t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
          ready.fetch_add(1);
          while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
          std::size_t sink = 0;
          const auto& seq = seqs[t];
          for (std::size_t i = 0; i < seq.size(); ++i) {
            const std::uint32_t id = seq[i];
            if (i % 20 == 19) {
              (void)st.insert(entries[id], hash_of(id));
            } else if (auto e = st.lookup(keys[id], hash_of(id))) {
              sink += e->body.size();
            }
          }
          if (sink == 42) std::puts("");
        });
      while (ready.load() < threads) std::this_thread::yield();
      const auto start = std::chrono::steady_clock::now();
      go.store(true, std::memory_order_release);
      for (auto& th : pool) th.join();
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      best[vi][ti] = std::max(best[vi][ti], double(ops_per_thread) * threads / secs / 1e6);
    }
  }
  for (int vi = 0; vi < 4; ++vi) {
    std::printf("| %s | %u |", variants[vi].name, shards);
    for (int ti = 0; ti < 4; ++ti) std::printf(" %.2f M/s |", best[vi][ti]);
    std::printf("\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t requests = 1'000'000, ops = 2'000'000;
  bool sim = true, thr = true;
  int rounds = 3;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--requests") && i + 1 < argc) requests = std::stoul(argv[++i]);
    else if (!std::strcmp(argv[i], "--ops") && i + 1 < argc) ops = std::stoul(argv[++i]);
    else if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = std::stoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--no-sim")) sim = false;
    else if (!std::strcmp(argv[i], "--no-threads")) thr = false;
  }
  if (sim) simulate(requests);
  if (thr) throughput(ops, rounds);
}
