// The regional tier in a request's path (see connection.hpp): after an edge miss the flight's leader asks Redis
// before the origin; a hit fills the edge cache (its edge lifetime capped by what the regional copy has left)
// and is answered; a miss, an error, a timeout or an open breaker sends the request on to the origin, whose
// response is answered first and written to Redis afterwards (SET … PX, posted). Private-scope routes use the
// region only, under a key per user (SHA-256 of the identity header or cookie the route names). Runs on the
// connection's worker, inside its coroutine.
#include "connection.hpp"
#include "regional_tier.hpp"

#include <virex/upstream/balancer.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>

#include <openssl/evp.h>

namespace virex::server {
namespace {
constexpr auto token = asio::as_tuple(kUseAwaitable);

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
std::uint64_t unix_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

regional::Invalidation invalidation(std::string_view kind, std::string_view what, std::string_view host, bool soft) {
  regional::Invalidation inv;
  inv.kind = kind == "tag"      ? regional::Invalidation::Kind::tag
             : kind == "prefix" ? regional::Invalidation::Kind::prefix
                                : regional::Invalidation::Kind::path;
  inv.host.assign(host);
  inv.value.assign(what);
  inv.soft = soft;
  return inv;
}

// 32 hex digits of SHA-256(identity): the user's part of a private key (the identity itself never reaches Redis).
std::string identity_digest(std::string_view identity) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(identity.data(), identity.size(), md, &len, EVP_sha256(), nullptr) != 1) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < 16 && i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}
}  // namespace

void Connection::regional_plan(const http::RequestHead& h, bool private_route) {
  Pending& p = pending_;
  RegionalTier* tier = worker_.regional();
  const config::RouteCache& rc = *p.route->cache;
  if (!tier || !rc.regional_ttl) return;
  if (!private_route) {
    if (!p.cacheable) return;
    regional_key_ = tier->entry_key(cache_hash_);
    p.regional = Pending::Regional::lookup;
    return;
  }
  if (h.method != http::Method::get || h.has_body()) return;
  const auto from = rc.identity_from == config::RouteCache::IdentityFrom::header ? config::HashOn::header
                                                                                 : config::HashOn::cookie;
  const std::string_view identity = upstream::hash_input(h, from, rc.identity_name);
  if (identity.empty()) return;  // an anonymous request: nothing per-user to look up or store
  const std::string digest = identity_digest(identity);
  if (digest.empty()) return;
  cache::build_key(cache_key_, h, p.route->cache_key);
  cache_hash_ = upstream::hash_key(cache_key_);
  regional_key_ = tier->private_key(digest, cache_hash_);
  p.cacheable = true;  // relay_response may store it (decide() without the private-scope veto)
  p.regional_private = true;
  p.regional = Pending::Regional::lookup;
}

Awaitable<bool> Connection::regional_lookup() {
  Pending& p = pending_;
  RegionalTier& tier = *worker_.regional();
  if (p.has_trace && worker_.tracing()) {
    p.regional_span.present = true;
    p.regional_span.span_id = worker_.new_trace().parent_id;
    p.regional_span.start_ns = unix_ns();
  }
  // The client's deadline covers the wait (the command timeout bounds it; this is a backstop).
  phase_ = Phase::proxy;
  deadline_ = worker_.coarse_now() + tier.node().cfg.timeout + std::chrono::seconds(1);
  const std::string_view argv[] = {"GET", regional_key_};
  auto [ec, reply] = co_await tier.client().command(argv, token);
  if (p.regional_span.present) p.regional_span.end_ns = unix_ns();
  using R = Pending::Regional;
  if (ec) {
    using regional::errc;
    const bool skipped = ec == errc::breaker_open || ec == errc::unavailable || ec == errc::queue_full;
    p.regional = ec == errc::timeout ? R::timeout : skipped ? R::skipped : R::error;
    tier.count(ec == errc::timeout ? RegionalResult::timeout : skipped ? RegionalResult::skipped : RegionalResult::error);
    co_return false;
  }
  const auto miss = [&] {
    p.regional = R::miss;
    tier.count(RegionalResult::miss);
    return false;
  };
  if (reply.type != regional::Reply::Type::string) co_return miss();
  const std::int64_t now_ms = unix_ms();
  const auto now = std::chrono::steady_clock::now();
  auto d = regional::decode_entry(reply.str, now_ms, now);
  // Another key with the same hash, or a value this version cannot read: the origin decides.
  if (!d || d->entry->key != cache_key_) co_return miss();
  cache::Entry& e = *d->entry;
  const http::RequestHead& h = parser_.head();
  if (!e.vary.empty()) {
    // RFC 9111 §4.1: the region keeps one variant per key; it must be this request's.
    std::vector<http::Header>& vary = vary_scratch_;
    vary.clear();
    for (const std::string& name : e.vary) vary.push_back({"Vary", name});
    if (!cache::vary_key(cache_variant_, h, vary) || cache_variant_ != e.variant_key) co_return miss();
  }
  const std::int64_t left_s = (d->expires_unix_ms - now_ms) / 1000;
  if (left_s <= 0) co_return miss();  // about to expire in Redis too
  // The regional copy is fresh for as long as it lives in Redis (regional_ttl): at the edge it gets a new edge
  // lifetime from now, capped by what the regional copy has left. Age keeps counting from the origin's answer.
  const auto age = static_cast<std::int64_t>(e.initial_age) +
                   std::chrono::duration_cast<std::chrono::seconds>(now - e.stored_at).count();
  e.initial_age = static_cast<std::uint32_t>(std::clamp<std::int64_t>(age, 0, UINT32_MAX));
  e.ttl = static_cast<std::uint32_t>(std::min<std::int64_t>(std::max<std::uint32_t>(e.ttl, 1), left_s));
  e.stored_at = now;
  p.regional = R::hit;
  p.regional_ttl_left = left_s;
  tier.count(RegionalResult::hit);
  std::shared_ptr<const cache::Entry> entry = std::move(d->entry);
  if (!p.regional_private && worker_.edge_cache()) worker_.edge_cache()->insert(entry, cache_hash_);
  p.hit = std::move(entry);
  p.not_modified = cache::not_modified(h, p.hit->etag, p.hit->last_modified, std::time(nullptr));
  p.up_span.present = false;  // no upstream exchange happened
  answer_hit();
  parser_.next();
  set_deadline(Phase::idle);
  co_return true;
}

void Connection::regional_store(const std::shared_ptr<const cache::Entry>& e) {
  RegionalTier* tier = worker_.regional();
  if (!tier || !pending_.route || !pending_.route->cache || !pending_.route->cache->regional_ttl) return;
  // Posted: the client's bytes are written (or on their way) before the entry is encoded and sent to Redis.
  asio::post(worker_.io(), [tier, e, key = regional_key_, ttl = *pending_.route->cache->regional_ttl] {
    tier->store(*e, key, ttl);
  });
}

void Connection::append_regional_status(std::string& out) {
  const Pending& p = pending_;
  cache::CacheStatus cs;
  using R = Pending::Regional;
  switch (p.regional) {
    case R::none:
    case R::lookup: return;
    case R::hit:
      cs.hit = true;
      cs.ttl = p.regional_ttl_left;
      break;
    case R::miss: cs.fwd = cache::Forward::uri_miss; break;
    case R::error: cs.fwd = cache::Forward::miss, cs.detail = "error"; break;
    case R::timeout: cs.fwd = cache::Forward::miss, cs.detail = "timeout"; break;
    case R::skipped: cs.fwd = cache::Forward::bypass, cs.detail = "unavailable"; break;
  }
  out.append("Cache-Status: ");
  cache::append_cache_status(out, cs, "virex-regional");
  out.append("\r\n");
}

std::string_view Connection::regional_purge(std::string_view kind, std::string_view what, std::string_view host,
                                            bool soft) {
  RegionalTier* tier = worker_.regional();
  if (!tier) return {};
  return tier->purge(invalidation(kind, what, host, soft)) ? "sent" : "unavailable";
}

Awaitable<bool> regional_purge_wait(Worker& worker, std::string kind, std::string what) {
  RegionalTier* tier = worker.regional();
  if (!tier || !tier->available()) co_return false;
  regional::Invalidation inv = invalidation(kind, what, {}, false);
  // (available() just said yes on this thread: purge() sends, and calls the handler within the command timeout.)
  auto [ec, reply] = co_await asio::async_initiate<decltype((token)), void(boost::system::error_code, regional::Reply)>(
      [tier, &inv](auto handler) { tier->purge(std::move(inv), regional::Client::Handler(std::move(handler))); },
      token);
  co_return !ec;
}

Awaitable<bool> Connection::regional_purge_confirmed(std::string kind, std::string what) {
  RegionalTier* tier = worker_.regional();
  if (!tier || !tier->available()) co_return false;
  phase_ = Phase::proxy;  // the command timeout bounds the wait; this is a backstop
  deadline_ = std::max(deadline_, worker_.coarse_now() + tier->node().cfg.timeout + std::chrono::seconds(1));
  co_return co_await regional_purge_wait(worker_, std::move(kind), std::move(what));
}

void Connection::note_unsafe(const http::RequestHead& h) {
  switch (h.method) {
    case http::Method::post:
    case http::Method::put:
    case http::Method::delete_:
    case http::Method::patch: break;
    default: return;  // RFC 9110 §9.2.1: safe methods change nothing
  }
  pending_.invalidate = true;
  unsafe_host_.assign(h.host);
  for (char& c : unsafe_host_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  unsafe_path_.assign(h.path);
}

void Connection::invalidate_target(unsigned status) {
  // RFC 9111 §4.4: a non-error response to an unsafe method invalidates the target URI's stored responses.
  pending_.invalidate = false;
  if (status < 200 || status >= 400) return;
  if (cache::Store* store = worker_.edge_cache()) store->purge_path(unsafe_host_, unsafe_path_, false);
  if (RegionalTier* tier = worker_.regional()) {
    regional::Invalidation inv;
    inv.kind = regional::Invalidation::Kind::path;
    inv.host = unsafe_host_;
    inv.value = unsafe_path_;
    tier->purge(std::move(inv));
  }
}

std::string_view Connection::regional_log() const noexcept {
  using R = Pending::Regional;
  switch (pending_.regional) {
    case R::hit: return "hit";
    case R::miss: return "miss";
    case R::error: return "error";
    case R::timeout: return "timeout";
    case R::skipped: return "skipped";
    default: return {};
  }
}

}  // namespace virex::server
