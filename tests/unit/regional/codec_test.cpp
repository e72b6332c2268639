// The regional value formats: an edge Entry survives the trip through protobuf (binary body, tags, Vary,
// validators, lifetimes); the storage time maps onto the reader's steady clock; garbage, truncation and other
// versions are refused; Invalidation messages round-trip.
#include <virex/regional/codec.hpp>

#include <gtest/gtest.h>

using namespace virex;
using namespace std::chrono_literals;

namespace {
std::unique_ptr<cache::Entry> sample() {
  auto p = std::make_unique<cache::Entry>();
  cache::Entry& e = *p;
  e.key = "GET|example.com|/a?x=1";
  e.variant_key = std::string("gzip\0br", 7);
  e.host = "example.com";
  e.path = "/a";
  e.head = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nETag: \"e1\"\r\nContent-Length: 6\r\n";
  e.body = std::string("ab\0\xff\r\n", 6);
  e.status = 200;
  e.initial_age = 3;
  e.ttl = 60;
  e.swr = 5;
  e.sie = 7;
  e.etag = "\"e1\"";
  e.last_modified = "Sat, 05 Dec 2026 00:00:00 GMT";
  e.tags = {"customer:42", "product"};
  e.vary = {"accept-encoding"};
  return p;
}
}  // namespace

TEST(RegionalCodec, EntryRoundTrip) {
  const auto owned = sample();
  const cache::Entry& e = *owned;
  std::string bytes;
  regional::encode_entry(bytes, e, 1'000'000, 1'600'000);
  const auto now = std::chrono::steady_clock::now();
  const auto d = regional::decode_entry(bytes, 1'002'500, now);
  ASSERT_TRUE(d);
  const cache::Entry& g = *d->entry;
  EXPECT_EQ(d->stored_unix_ms, 1'000'000);
  EXPECT_EQ(d->expires_unix_ms, 1'600'000);
  EXPECT_EQ(g.key, e.key);
  EXPECT_EQ(g.variant_key, e.variant_key);
  EXPECT_EQ(g.host, e.host);
  EXPECT_EQ(g.path, e.path);
  EXPECT_EQ(g.head, e.head);
  EXPECT_EQ(g.body, e.body);
  EXPECT_EQ(g.status, 200);
  EXPECT_EQ(g.initial_age, 3u);
  EXPECT_EQ(g.ttl, 60u);
  EXPECT_EQ(g.swr, 5u);
  EXPECT_EQ(g.sie, 7u);
  EXPECT_EQ(g.etag, e.etag);
  EXPECT_EQ(g.last_modified, e.last_modified);
  EXPECT_EQ(g.tags, e.tags);
  EXPECT_EQ(g.vary, e.vary);
  EXPECT_EQ(now - g.stored_at, 2500ms) << "2.5 s spent in the region count toward Age";
}

TEST(RegionalCodec, RefusesGarbageTruncationAndOtherVersions) {
  std::string bytes;
  regional::encode_entry(bytes, *sample(), 1, 2);
  const auto now = std::chrono::steady_clock::now();
  EXPECT_FALSE(regional::decode_entry("not protobuf \xff\xff\xff", 0, now));
  EXPECT_FALSE(regional::decode_entry(std::string_view(bytes).substr(0, bytes.size() / 2), 0, now));
  EXPECT_FALSE(regional::decode_entry("", 0, now));
  std::string v2 = bytes;
  ASSERT_EQ(v2[0], '\x08');  // field 1 (version), varint
  v2[1] = 2;
  EXPECT_FALSE(regional::decode_entry(v2, 0, now));
}

TEST(RegionalCodec, InvalidationRoundTrip) {
  regional::Invalidation inv;
  inv.node = "edge-1/abc";
  inv.sequence = 42;
  inv.kind = regional::Invalidation::Kind::tag;
  inv.host = "example.com";
  inv.value = "customer:42";
  inv.soft = true;
  inv.issued_unix_ms = 123;
  const auto d = regional::decode_invalidation(regional::encode_invalidation(inv));
  ASSERT_TRUE(d);
  EXPECT_EQ(d->node, inv.node);
  EXPECT_EQ(d->sequence, 42u);
  EXPECT_EQ(d->kind, regional::Invalidation::Kind::tag);
  EXPECT_EQ(d->host, inv.host);
  EXPECT_EQ(d->value, inv.value);
  EXPECT_TRUE(d->soft);
  EXPECT_EQ(d->issued_unix_ms, 123);
  EXPECT_FALSE(regional::decode_invalidation("\x08\x01"));  // no kind
  EXPECT_FALSE(regional::decode_invalidation("\xff"));
}
