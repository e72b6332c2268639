// Entry and Invalidation (de)serialisation with the generated protobuf code (see codec.hpp). Any thread.
#include <virex/regional/codec.hpp>

#include "virex/cache/v1/entry.pb.h"

namespace virex::regional {

void encode_entry(std::string& out, const cache::Entry& e, std::int64_t stored_unix_ms, std::int64_t expires_unix_ms) {
  virex::cache::v1::Entry m;
  m.set_version(kEntryVersion);
  m.set_status(e.status);
  m.set_head(e.head);
  m.set_body(e.body);
  m.set_stored_unix_ms(stored_unix_ms);
  m.set_initial_age_s(e.initial_age);
  m.set_ttl_s(e.ttl);
  m.set_swr_s(e.swr);
  m.set_sie_s(e.sie);
  m.set_expires_unix_ms(expires_unix_ms);
  m.set_etag(e.etag);
  m.set_last_modified(e.last_modified);
  for (const auto& t : e.tags) m.add_tags(t);
  for (const auto& v : e.vary) m.add_vary(v);
  m.set_variant_key(e.variant_key);
  m.set_key(e.key);
  m.set_host(e.host);
  m.set_path(e.path);
  out.clear();
  m.SerializeToString(&out);
}

std::optional<DecodedEntry> decode_entry(std::string_view bytes, std::int64_t now_unix_ms,
                                         std::chrono::steady_clock::time_point now) {
  virex::cache::v1::Entry m;
  if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return std::nullopt;
  if (m.version() != kEntryVersion || m.status() < 100 || m.status() > 999 || m.head().empty()) return std::nullopt;
  DecodedEntry d;
  d.stored_unix_ms = m.stored_unix_ms();
  d.expires_unix_ms = m.expires_unix_ms();
  auto e = std::make_shared<cache::Entry>();
  e->status = static_cast<std::uint16_t>(m.status());
  e->head = std::move(*m.mutable_head());
  e->body = std::move(*m.mutable_body());
  // The time it spent elsewhere counts as time in a cache (RFC 9111 §4.2.3: Age grows from storage on).
  const std::int64_t elapsed = std::max<std::int64_t>(0, now_unix_ms - m.stored_unix_ms());
  e->stored_at = now - std::chrono::milliseconds(elapsed);
  e->initial_age = m.initial_age_s();
  e->ttl = m.ttl_s();
  e->swr = m.swr_s();
  e->sie = m.sie_s();
  e->etag = std::move(*m.mutable_etag());
  e->last_modified = std::move(*m.mutable_last_modified());
  e->tags.reserve(static_cast<std::size_t>(m.tags_size()));
  for (auto& t : *m.mutable_tags()) e->tags.push_back(std::move(t));
  for (auto& v : *m.mutable_vary()) e->vary.push_back(std::move(v));
  e->variant_key = std::move(*m.mutable_variant_key());
  e->key = std::move(*m.mutable_key());
  e->host = std::move(*m.mutable_host());
  e->path = std::move(*m.mutable_path());
  d.entry = std::move(e);
  return d;
}

std::string encode_invalidation(const Invalidation& inv) {
  virex::cache::v1::Invalidation m;
  m.set_version(kInvalidationVersion);
  m.set_node(inv.node);
  m.set_sequence(inv.sequence);
  m.set_kind(static_cast<virex::cache::v1::Invalidation::Kind>(inv.kind));
  m.set_host(inv.host);
  m.set_value(inv.value);
  m.set_soft(inv.soft);
  m.set_issued_unix_ms(inv.issued_unix_ms);
  return m.SerializeAsString();
}

std::optional<Invalidation> decode_invalidation(std::string_view bytes) {
  virex::cache::v1::Invalidation m;
  if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return std::nullopt;
  if (m.version() != kInvalidationVersion || m.kind() < 1 || m.kind() > 4) return std::nullopt;
  Invalidation inv;
  inv.node = m.node();
  inv.sequence = m.sequence();
  inv.kind = static_cast<Invalidation::Kind>(m.kind());
  inv.host = m.host();
  inv.value = m.value();
  inv.soft = m.soft();
  inv.issued_unix_ms = m.issued_unix_ms();
  return inv;
}

}  // namespace virex::regional
