// Unit tests of the edge cache store: byte accounting and bound, lookups, replacement, variants, erase, purges,
// stats, the policies' distinguishing behaviour, and a bounded-iteration concurrency test (run it under ASan and
// TSan). No sockets, no sleeps.
#include <virex/cache/store.hpp>

#include "cache/store_policy.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace virex::cache;

std::uint64_t hash_of(std::string_view s) {   // FNV-1a + a final mix (the top bits pick the shard)
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

struct Spec {
  std::string key;
  std::size_t body = 100;
  std::string variant_key{};
  std::vector<std::string> vary{};
  std::vector<std::string> tags{};
  std::string host = "example.com";
  std::string path{};
};

std::shared_ptr<const Entry> make(Spec s) {
  auto e = std::make_shared<Entry>();
  e->key = s.key;
  e->variant_key = s.variant_key;
  e->host = s.host;
  e->path = s.path.empty() ? s.key : s.path;
  e->head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(s.body) + "\r\n";
  e->body.assign(s.body, 'x');
  e->ttl = 60;
  e->tags = std::move(s.tags);
  e->vary = std::move(s.vary);
  return e;
}

bool put(Store& st, Spec s) {
  const auto h = hash_of(s.key);
  return st.insert(make(std::move(s)), h);
}
std::shared_ptr<const Entry> get(Store& st, std::string_view key) { return st.lookup(key, hash_of(key)); }

Store::Options opts(std::size_t max_bytes, unsigned shards = 1, Policy p = Policy::s3fifo) {
  Store::Options o;
  o.max_bytes = max_bytes;
  o.max_object_bytes = max_bytes;
  o.shards = shards;
  o.policy = p;
  return o;
}

const Policy kPolicies[] = {Policy::s3fifo, Policy::wtinylfu, Policy::lru};

TEST(Entry, ChargeCountsEveryPartAndTheOverhead) {
  auto small = make({.key = "/a", .body = 10});
  auto big = make({.key = "/a", .body = 10'000});
  EXPECT_GE(small->charge(), Entry::kOverheadBytes);
  EXPECT_GE(big->charge() - small->charge(), 10'000u - 16);   // the body's heap chunk
  auto tagged = make({.key = "/a", .body = 10, .tags = {"customer:1234567890123456789"}});
  EXPECT_GE(tagged->charge() - small->charge(), 2 * 27 + Entry::kPerTagBytes);
  EXPECT_EQ(big->charge(), big->charge());   // deterministic
}

TEST(Store, ShardsRoundUpToAPowerOfTwoAndAutoIsAtLeastFour) {
  EXPECT_EQ(Store(opts(1 << 20, 3)).shard_count(), 4u);
  Store a(opts(1 << 20, 0));
  EXPECT_GE(a.shard_count(), 4u);
  EXPECT_EQ(a.shard_count() & (a.shard_count() - 1), 0u);
  EXPECT_EQ(a.shard_capacity(), (1u << 20) / a.shard_count());
}

TEST(Store, LookupAfterInsertAndMiss) {
  for (Policy p : kPolicies) {
    Store st(opts(1 << 20, 4, p));
    EXPECT_EQ(get(st, "/x"), nullptr);
    ASSERT_TRUE(put(st, {.key = "/x", .body = 1234}));
    auto e = get(st, "/x");
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->body.size(), 1234u);
    EXPECT_EQ(e->key, "/x");
    auto s = st.stats();
    EXPECT_EQ(s.hits, 1u);
    EXPECT_EQ(s.misses, 1u);
    EXPECT_EQ(s.inserts, 1u);
    EXPECT_EQ(s.objects, 1u);
    EXPECT_EQ(s.bytes, e->charge());
  }
}

TEST(Store, OversizeObjectsAreRejected) {
  Store::Options o = opts(1 << 20, 4);
  o.max_object_bytes = 10'000;
  Store st(o);
  EXPECT_FALSE(put(st, {.key = "/big", .body = 20'000}));
  EXPECT_TRUE(put(st, {.key = "/ok", .body = 5'000}));
  EXPECT_EQ(get(st, "/big"), nullptr);
  // Larger than one shard's share (max_bytes / shards) although under max_object_bytes.
  Store::Options o2 = opts(64 << 10, 4);
  Store st2(o2);
  EXPECT_FALSE(put(st2, {.key = "/half", .body = 20'000}));
  EXPECT_EQ(st.stats().admission_rejects, 1u);
  EXPECT_EQ(st2.stats().objects, 0u);
  EXPECT_FALSE(st.insert(nullptr, 1));
}

TEST(Store, RejectedReplacementDropsTheSupersededEntry) {
  Store::Options o = opts(1 << 20, 1);
  o.max_object_bytes = 10'000;
  Store st(o);
  ASSERT_TRUE(put(st, {.key = "/k", .body = 100}));
  EXPECT_FALSE(put(st, {.key = "/k", .body = 20'000}));
  EXPECT_EQ(get(st, "/k"), nullptr);
  EXPECT_EQ(st.stats().bytes, 0u);
}

TEST(Store, ReplaceSameKey) {
  for (Policy p : kPolicies) {
    Store st(opts(1 << 20, 2, p));
    ASSERT_TRUE(put(st, {.key = "/r", .body = 100}));
    auto old = get(st, "/r");
    ASSERT_TRUE(put(st, {.key = "/r", .body = 300}));
    auto now = get(st, "/r");
    ASSERT_NE(now, nullptr);
    EXPECT_EQ(now->body.size(), 300u);
    EXPECT_EQ(old->body.size(), 100u);   // the old entry stays alive for whoever holds it
    auto s = st.stats();
    EXPECT_EQ(s.objects, 1u);
    EXPECT_EQ(s.bytes, now->charge());
    EXPECT_EQ(s.inserts, 2u);
    EXPECT_EQ(s.evictions, 0u);
  }
}

TEST(Store, Variants) {
  Store st(opts(1 << 20, 2));
  const std::vector<std::string> ae{"accept-encoding"};
  ASSERT_TRUE(put(st, {.key = "/v", .body = 10, .variant_key = "gzip", .vary = ae}));
  ASSERT_TRUE(put(st, {.key = "/v", .body = 20, .variant_key = "br", .vary = ae}));
  ASSERT_TRUE(put(st, {.key = "/v", .body = 30, .variant_key = "", .vary = ae}));
  const auto h = hash_of("/v");
  EXPECT_EQ(st.lookup("/v", h, "gzip")->body.size(), 10u);
  EXPECT_EQ(st.lookup("/v", h, "br")->body.size(), 20u);
  EXPECT_EQ(st.lookup("/v", h, "")->body.size(), 30u);
  EXPECT_EQ(st.lookup("/v", h, "zstd"), nullptr);
  EXPECT_EQ(st.lookup("/v", h)->body.size(), 30u);   // newest variant: its `vary` says how to key
  EXPECT_EQ(st.lookup("/v", h)->vary, ae);
  EXPECT_EQ(st.stats().objects, 3u);
  // One count per request: the key lookup of a Vary'd entry leaves the count to the variant lookup.
  EXPECT_EQ(st.stats().hits, 3u);
  EXPECT_EQ(st.stats().misses, 1u);
  // Replacing one variant keeps the others.
  ASSERT_TRUE(put(st, {.key = "/v", .body = 11, .variant_key = "gzip", .vary = ae}));
  EXPECT_EQ(st.lookup("/v", h, "gzip")->body.size(), 11u);
  EXPECT_EQ(st.lookup("/v", h, "br")->body.size(), 20u);
  EXPECT_EQ(st.stats().objects, 3u);
  // The origin now varies on something else: the old variants are gone.
  ASSERT_TRUE(put(st, {.key = "/v", .body = 40, .variant_key = "en", .vary = {"accept-language"}}));
  EXPECT_EQ(st.lookup("/v", h, "br"), nullptr);
  EXPECT_EQ(st.lookup("/v", h, "en")->body.size(), 40u);
  EXPECT_EQ(st.stats().objects, 1u);
  EXPECT_EQ(st.erase("/v", h), 1u);
}

TEST(Store, VariantsPerKeyAreBounded) {
  Store st(opts(16 << 20, 1));
  const auto h = hash_of("/many");
  for (int i = 0; i < 100; ++i)
    ASSERT_TRUE(put(st, {.key = "/many", .body = 10, .variant_key = std::to_string(i), .vary = {"x-v"}}));
  EXPECT_LE(st.stats().objects, 32u);
  EXPECT_NE(st.lookup("/many", h, "99"), nullptr);
  EXPECT_EQ(st.lookup("/many", h, "0"), nullptr);
}

TEST(Store, Erase) {
  Store st(opts(1 << 20, 4));
  ASSERT_TRUE(put(st, {.key = "/e", .body = 10, .variant_key = "a", .vary = {"x"}}));
  ASSERT_TRUE(put(st, {.key = "/e", .body = 10, .variant_key = "b", .vary = {"x"}}));
  ASSERT_TRUE(put(st, {.key = "/f", .body = 10}));
  EXPECT_EQ(st.erase("/e", hash_of("/e")), 2u);
  EXPECT_EQ(st.erase("/e", hash_of("/e")), 0u);
  EXPECT_EQ(get(st, "/e"), nullptr);
  EXPECT_NE(get(st, "/f"), nullptr);
  EXPECT_EQ(st.stats().objects, 1u);
  EXPECT_EQ(st.stats().bytes, get(st, "/f")->charge());
}

TEST(Store, PurgeTagHardAndSoft) {
  for (Policy p : kPolicies) {
    Store st(opts(16 << 20, 8, p));
    for (int i = 0; i < 200; ++i) {
      std::vector<std::string> tags{"all"};
      if (i % 2 == 0) tags.push_back("even");
      if (i % 10 == 0) tags.push_back("tenth");
      ASSERT_TRUE(put(st, {.key = "/t/" + std::to_string(i), .body = 50, .tags = tags}));
    }
    EXPECT_EQ(st.purge_tag("tenth", /*soft=*/true), 20u);
    EXPECT_EQ(st.stats().objects, 200u);
    EXPECT_TRUE(get(st, "/t/10")->stale.load());
    EXPECT_FALSE(get(st, "/t/11")->stale.load());
    EXPECT_EQ(st.purge_tag("even", /*soft=*/false), 100u);
    EXPECT_EQ(st.stats().objects, 100u);
    EXPECT_EQ(get(st, "/t/10"), nullptr);
    EXPECT_NE(get(st, "/t/11"), nullptr);
    EXPECT_EQ(st.purge_tag("even", false), 0u);
    EXPECT_EQ(st.purge_tag("tenth", false), 0u);
    EXPECT_EQ(st.purge_tag("nope", false), 0u);
    EXPECT_EQ(st.purge_tag("all", false), 100u);
    EXPECT_EQ(st.stats().objects, 0u);
    EXPECT_EQ(st.stats().bytes, 0u);
  }
}

TEST(Store, PurgePrefix) {
  Store st(opts(16 << 20, 8));
  ASSERT_TRUE(put(st, {.key = "a|/img/1", .host = "a.example", .path = "/img/1"}));
  ASSERT_TRUE(put(st, {.key = "a|/img/2", .host = "a.example", .path = "/img/2"}));
  ASSERT_TRUE(put(st, {.key = "a|/api/1", .host = "a.example", .path = "/api/1"}));
  ASSERT_TRUE(put(st, {.key = "b|/img/1", .host = "b.example", .path = "/img/1"}));
  EXPECT_EQ(st.purge_prefix("a.example", "/img/", /*soft=*/true), 2u);
  EXPECT_TRUE(get(st, "a|/img/1")->stale.load());
  EXPECT_FALSE(get(st, "b|/img/1")->stale.load());
  EXPECT_EQ(st.purge_prefix("a.example", "/img/", false), 2u);
  EXPECT_EQ(get(st, "a|/img/2"), nullptr);
  EXPECT_NE(get(st, "b|/img/1"), nullptr);
  EXPECT_EQ(st.purge_prefix("", "/", false), 2u);   // any host
  EXPECT_EQ(st.stats().objects, 0u);
}

TEST(Store, ClearEmptiesEverything) {
  Store st(opts(1 << 20, 4));
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(put(st, {.key = std::to_string(i), .tags = {"t"}}));
  st.clear();
  EXPECT_EQ(st.stats().objects, 0u);
  EXPECT_EQ(st.stats().bytes, 0u);
  EXPECT_EQ(st.purge_tag("t", false), 0u);
  EXPECT_TRUE(put(st, {.key = "again"}));
}

// Random inserts of varied sizes (log-uniform 10 B .. 200 KiB) with lookups and erases: the sum of charges
// never exceeds max_bytes after any insert, and erasing every key brings the accounting back to exactly zero.
TEST(Store, ExactByteBoundUnderRandomInserts) {
  for (Policy p : kPolicies) {
    for (unsigned shards : {1u, 8u}) {
      const std::size_t max_bytes = 4 << 20;
      Store st(opts(max_bytes, shards, p));
      std::mt19937_64 rng(42);
      std::uniform_real_distribution<double> logsize(std::log(10.0), std::log(200'000.0));
      std::uniform_int_distribution<int> keyd(0, 2999);
      for (int i = 0; i < 6000; ++i) {
        const std::string key = "/r/" + std::to_string(keyd(rng));
        if (rng() % 3 == 0) {
          (void)get(st, key);
          (void)get(st, key);
        }
        (void)put(st, {.key = key, .body = static_cast<std::size_t>(std::exp(logsize(rng))),
                       .tags = {"t" + std::to_string(rng() % 7)}});
        const auto s = st.stats();
        ASSERT_LE(s.bytes, max_bytes) << "policy " << int(p) << " shards " << shards << " step " << i;
        if (rng() % 50 == 0) (void)st.erase(key, hash_of(key));
      }
      const auto s = st.stats();
      EXPECT_GT(s.evictions, 0u);
      EXPECT_GT(s.objects, 0u);
      std::uint64_t resident = 0, bytes = 0;
      for (int k = 0; k < 3000; ++k) {
        if (auto e = get(st, "/r/" + std::to_string(k))) {
          ++resident;
          bytes += e->charge();
        }
      }
      EXPECT_EQ(resident, s.objects);
      EXPECT_EQ(bytes, s.bytes);
      for (int k = 0; k < 3000; ++k) (void)st.erase("/r/" + std::to_string(k), hash_of("/r/" + std::to_string(k)));
      EXPECT_EQ(st.stats().bytes, 0u);
      EXPECT_EQ(st.stats().objects, 0u);
    }
  }
}

TEST(Store, StatsCountEvictions) {
  Store st(opts(64 << 10, 1, Policy::lru));
  int accepted = 0;
  for (int i = 0; i < 100; ++i) accepted += put(st, {.key = std::to_string(i), .body = 4000});
  auto s = st.stats();
  EXPECT_EQ(accepted, 100);
  EXPECT_EQ(s.inserts, 100u);
  EXPECT_EQ(s.objects + s.evictions, 100u);
  EXPECT_LE(s.bytes, 64u << 10);
  EXPECT_NE(get(st, "99"), nullptr);   // LRU keeps the newest
  EXPECT_EQ(get(st, "0"), nullptr);
}

// A key that is read often survives a one-pass scan larger than the cache under S3-FIFO and W-TinyLFU, and
// does not under LRU (the scan-resistance the policy is chosen for).
TEST(Store, FrequentKeySurvivesAScanExceptUnderLru) {
  for (Policy p : {Policy::s3fifo, Policy::wtinylfu}) {   // with a read of /hot every 50 inserts
    Store st(opts(256 << 10, 1, p));
    for (int i = 0; i < 20; ++i) {
      if (!get(st, "/hot")) {
        ASSERT_TRUE(put(st, {.key = "/hot", .body = 2000}));
      }
    }
    for (int i = 0; i < 2000; ++i) {
      const std::string k = "/scan/" + std::to_string(i);
      (void)get(st, k);
      (void)put(st, {.key = k, .body = 2000});
      if (i % 50 == 0) (void)get(st, "/hot");
    }
    EXPECT_NE(get(st, "/hot"), nullptr) << int(p);
  }
  // Without further reads: LRU loses it, S3-FIFO keeps it (promoted to main with frequency 3).
  Store lru(opts(256 << 10, 1, Policy::lru));
  for (int i = 0; i < 20; ++i) {
    if (!get(lru, "/hot")) {
      ASSERT_TRUE(put(lru, {.key = "/hot", .body = 2000}));
    }
  }
  for (int i = 0; i < 2000; ++i) (void)put(lru, {.key = "/scan/" + std::to_string(i), .body = 2000});
  EXPECT_EQ(get(lru, "/hot"), nullptr);
  Store s3(opts(256 << 10, 1, Policy::s3fifo));
  for (int i = 0; i < 20; ++i) {
    if (!get(s3, "/hot")) {
      ASSERT_TRUE(put(s3, {.key = "/hot", .body = 2000}));
    }
  }
  for (int i = 0; i < 2000; ++i) (void)put(s3, {.key = "/scan/" + std::to_string(i), .body = 2000});
  EXPECT_NE(get(s3, "/hot"), nullptr);
}

TEST(Store, WTinyLfuRejectsAColdCandidateAgainstHotVictims) {
  Store st(opts(64 << 10, 1, Policy::wtinylfu));
  std::vector<std::string> hot;
  for (int i = 0; i < 12; ++i) hot.push_back("/hot/" + std::to_string(i));
  for (int round = 0; round < 5; ++round)
    for (const auto& k : hot)
      if (!get(st, k)) (void)put(st, {.key = k, .body = 4000});
  const auto before = st.stats().admission_rejects;
  EXPECT_FALSE(put(st, {.key = "/cold-and-big", .body = 20'000}));   // bigger than the window: judged at once
  EXPECT_GT(st.stats().admission_rejects, before);
  for (const auto& k : hot) EXPECT_NE(get(st, k), nullptr) << k;
}

TEST(GhostFifo, RemembersByBytesAndForgetsOnTake) {
  virex::cache::detail::GhostFifo g(1000);
  g.add(1, 400);
  g.add(2, 400);
  EXPECT_TRUE(g.take(1));
  EXPECT_FALSE(g.take(1));
  g.add(3, 400);   // 1200 > 1000: the oldest slot (hash 1, already taken) falls out
  EXPECT_TRUE(g.take(2));
  g.add(4, 900);   // pushes out 3
  EXPECT_FALSE(g.take(3));
  EXPECT_TRUE(g.take(4));
}

TEST(FrequencySketch, CountsSaturatesAndAges) {
  virex::cache::detail::FrequencySketch s(64);   // 64 words, aged after 640 additions
  for (int i = 0; i < 5; ++i) s.increment(7);
  EXPECT_GE(s.frequency(7), 5u);
  EXPECT_LE(s.frequency(7), 6u);   // a collision may add one; min over 4 counters rarely does
  for (int i = 0; i < 40; ++i) s.increment(9);
  EXPECT_EQ(s.frequency(9), 15u);
  for (std::uint64_t k = 100; k < 1000; ++k) s.increment(hash_of(std::to_string(k)));   // crosses 640
  EXPECT_LE(s.frequency(9), 8u);
  EXPECT_LE(s.frequency(7), 3u);
}

// 8 threads, mixed lookups / inserts / erases / purges, bounded by iterations. Invariants: the byte bound holds
// at every observation, every entry returned is the one asked for, and the accounting ends consistent.
TEST(StoreConcurrency, MixedOperationsKeepTheInvariants) {
  const std::pair<Policy, Locking> configs[] = {{Policy::wtinylfu, Locking::automatic}, {Policy::s3fifo, Locking::mutex},
                                                {Policy::s3fifo, Locking::shared}, {Policy::lru, Locking::automatic}};
  for (auto [p, locking] : configs) {
    const std::size_t max_bytes = 2 << 20;
    Store::Options o = opts(max_bytes, 8, p);
    o.locking = locking;
    Store st(o);
    constexpr int kThreads = 8;
    constexpr int kIterations = 15'000;
    constexpr int kKeys = 2000;
    std::atomic<bool> bad{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937_64 rng(1000 + t);
        for (int i = 0; i < kIterations; ++i) {
          const int k = static_cast<int>(rng() % kKeys);
          const std::string key = "/c/" + std::to_string(k);
          const auto h = hash_of(key);
          const unsigned op = rng() % 1000;
          if (op < 700) {
            auto e = (op % 2) ? st.lookup(key, h) : st.lookup(key, h, std::to_string(k % 3));
            if (e && (e->key != key || e->body.size() != static_cast<std::size_t>(100 + k * 7 % 5000)))
              bad = true;
          } else if (op < 950) {
            (void)st.insert(make({.key = key, .body = static_cast<std::size_t>(100 + k * 7 % 5000),
                                  .variant_key = std::to_string(rng() % 3), .vary = {"accept-encoding"},
                                  .tags = {"t" + std::to_string(k % 17), "all"}}),
                            h);
          } else if (op < 985) {
            (void)st.erase(key, h);
          } else if (op < 997) {
            (void)st.purge_tag("t" + std::to_string(rng() % 17), rng() % 2);
          } else {
            (void)st.purge_prefix(rng() % 2 ? "example.com" : "", "/c/" + std::to_string(rng() % 10), rng() % 2);
          }
          if (i % 64 == 0 && st.stats().bytes > max_bytes) bad = true;
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_FALSE(bad.load()) << int(p);
    const auto s = st.stats();
    EXPECT_LE(s.bytes, max_bytes);
    EXPECT_GT(s.inserts, 0u);
    EXPECT_EQ(st.purge_tag("all", false), s.objects);
    EXPECT_EQ(st.stats().bytes, 0u);
    EXPECT_EQ(st.stats().objects, 0u);
  }
}

}  // namespace
