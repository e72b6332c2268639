// RegionalTier (see regional_tier.hpp): keys, the asynchronous write after an origin fetch, purges and the
// invalidation channel. Worker thread only.
#include "regional_tier.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <random>

namespace virex::server {
namespace {
void append_hex64(std::string& out, std::uint64_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i) out.push_back(kHex[(v >> (i * 4)) & 15]);
}
std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

regional::ClientOptions client_options(const config::RegionalCache& c) {
  regional::ClientOptions o;
  o.host = c.host;
  o.port = c.port;
  o.unix_path = c.unix_path;
  for (const auto& f : c.fallbacks) o.fallbacks.push_back({f.host, f.port, f.unix_path});
  o.pool = c.pool;
  o.connect_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(c.connect_timeout);
  o.command_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(c.timeout);
  o.max_in_flight = c.max_in_flight;
  o.breaker.failures = c.breaker_failures;
  o.breaker.open_for = std::chrono::duration_cast<std::chrono::milliseconds>(c.breaker_open);
  return o;
}

regional::ClientMetrics client_metrics(observe::Registry& reg, observe::Shard shard) {
  regional::ClientMetrics m;
  auto cmd = [&](const char* result) {
    return shard.counter(reg.counter("virex_regional_commands_total", "Redis commands of the regional tier, by outcome.",
                                     {{"result", result}}));
  };
  m.ok = cmd("ok");
  m.errors = cmd("error");
  m.timeouts = cmd("timeout");
  m.rejected = cmd("rejected");
  m.breaker_state = shard.gauge(reg.gauge("virex_regional_breaker_state",
                                          "Regional tier circuit breakers by state, summed over workers "
                                          "(per worker: 0 closed, 1 open, 2 half-open)."));
  m.connects = shard.counter(reg.counter("virex_regional_connections_total", "Redis connection events.",
                                         {{"event", "connect"}}));
  m.disconnects = shard.counter(reg.counter("virex_regional_connections_total", "Redis connection events.",
                                            {{"event", "disconnect"}}));
  static constexpr double kLatency[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25};
  m.latency = shard.histogram(reg.histogram("virex_regional_command_duration_seconds",
                                            "Redis command round trip (sent to reply or failure).", {}, kLatency, 1e-9));
  static constexpr double kDepth[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
  m.pipeline_depth = shard.histogram(reg.histogram("virex_regional_pipeline_depth",
                                                   "Redis commands written together (sharing one round trip).", {},
                                                   kDepth, 1));
  return m;
}
}  // namespace

RegionalTier::RegionalTier(core::Executor ex, RegionalNode& node, observe::Registry& reg, observe::Shard shard,
                           bool subscriber, cache::Store* edge)
    : node_(node),
      client_(ex, client_options(node.cfg), client_metrics(reg, shard)),
      edge_(edge),
      rng_(std::random_device{}() | 1) {
  static constexpr const char* kResults[] = {"hit", "miss", "error", "timeout", "skipped"};
  for (std::size_t i = 0; i < kRegionalResults; ++i)
    lookups_[i] = shard.counter(reg.counter("virex_regional_lookups_total",
                                            "Regional tier lookups after an edge miss, by outcome.",
                                            {{"result", kResults[i]}}));
  stores_[0] = shard.counter(reg.counter("virex_regional_stores_total", "Entries written to the regional tier.",
                                         {{"result", "stored"}}));
  stores_[1] = shard.counter(reg.counter("virex_regional_stores_total", "Entries written to the regional tier.",
                                         {{"result", "oversized"}}));
  stores_[2] = shard.counter(reg.counter("virex_regional_stores_total", "Entries written to the regional tier.",
                                         {{"result", "skipped"}}));
  static constexpr const char* kEvents[] = {"published", "received", "applied", "echo"};
  for (std::size_t i = 0; i < invalidations_.size(); ++i)
    invalidations_[i] = shard.counter(reg.counter("virex_regional_invalidations_total",
                                                  "Fleet-wide invalidations on the Redis channel.",
                                                  {{"event", kEvents[i]}}));
  resyncs_ = shard.counter(reg.counter("virex_regional_edge_resyncs_total",
                                       "Edge cache dropped because the invalidation subscription was lost."));
  if (subscriber) {
    client_.subscribe(
        node_.channel, [this](std::string_view m) { on_invalidation(m); }, [this](bool again) { on_subscribed(again); });
  }
}

std::string RegionalTier::entry_key(std::uint64_t key_hash) const {
  std::string k;
  k.reserve(node_.cfg.prefix.size() + 18);
  k.append(node_.cfg.prefix).append("e:");
  append_hex64(k, key_hash);
  return k;
}

std::string RegionalTier::private_key(std::string_view identity_digest, std::uint64_t key_hash) const {
  std::string k = node_.cfg.prefix;
  k.append("p:").append(identity_digest).append(":");
  append_hex64(k, key_hash);
  return k;
}

void RegionalTier::store(const cache::Entry& e, const std::string& key, config::Duration ttl) {
  // ±10 % jitter, so entries stored together do not expire together.
  rng_ ^= rng_ << 13, rng_ ^= rng_ >> 7, rng_ ^= rng_ << 17;
  const auto base = std::chrono::duration_cast<std::chrono::milliseconds>(ttl).count();
  const auto span = base / 5;  // the jitter's full width (±10 %)
  const std::int64_t px = base - base / 10 + (span > 0 ? static_cast<std::int64_t>(rng_ % static_cast<std::uint64_t>(span + 1)) : 0);
  const std::int64_t now_ms = unix_ms();
  const auto in_cache = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - e.stored_at);
  const std::int64_t stored_ms = now_ms - in_cache.count();
  regional::encode_entry(value_, e, stored_ms, now_ms + px);
  if (value_.size() > node_.cfg.max_value_bytes) {
    stores_[1].inc();
    return;
  }
  if (!client_.connected() || client_.breaker_state() == regional::Breaker::State::open) {
    stores_[2].inc();
    return;
  }
  const std::string pxs = std::to_string(px);
  const std::string_view set[] = {"SET", key, value_, "PX", pxs};
  client_.send(set);
  stores_[0].inc();
  // The indexes purges go through: the path (any host: a purge may name none) and each tag. Each index lives
  // tag_ttl (>= the longest regional_ttl), refreshed by every store; a member whose entry expired is harmless.
  const std::string index_ttl =
      std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(node_.cfg.tag_ttl).count());
  std::string index;
  auto add = [&](std::string_view kind, std::string_view name) {
    index.assign(node_.cfg.prefix).append(kind).append(name);
    const std::string_view sadd[] = {"SADD", index, key};
    client_.send(sadd);
    const std::string_view expire[] = {"PEXPIRE", index, index_ttl};
    client_.send(expire);
  };
  if (!e.path.empty()) add("k:", e.path);
  for (const std::string& tag : e.tags) add("t:", tag);
}

bool RegionalTier::available() const noexcept {
  return client_.connected() && client_.breaker_state() != regional::Breaker::State::open;
}

bool RegionalTier::purge(regional::Invalidation inv, regional::Client::Handler done) {
  if (!available()) return false;
  // KEYS[1]: the index set (mode "set") or unused; ARGV: mode, channel, payload, SCAN pattern (mode "scan").
  // Standalone Redis (no Cluster): the script touches the keys the indexes name.
  static constexpr std::string_view kScript = R"lua(
local n = 0
local function purge_set(k)
  local ks = redis.call('SMEMBERS', k)
  for i = 1, #ks, 500 do redis.call('DEL', unpack(ks, i, math.min(i + 499, #ks))) end
  redis.call('DEL', k)
  n = n + #ks
end
if ARGV[1] == 'set' then
  purge_set(KEYS[1])
else
  local cursor = '0'
  repeat
    local r = redis.call('SCAN', cursor, 'MATCH', ARGV[4], 'COUNT', 1000)
    cursor = r[1]
    for _, k in ipairs(r[2]) do purge_set(k) end
  until cursor == '0'
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return n)lua";
  inv.node = node_.instance;
  inv.sequence = node_.sequence.fetch_add(1, std::memory_order_relaxed) + 1;
  inv.issued_unix_ms = unix_ms();
  const std::string payload = regional::encode_invalidation(inv);
  const std::string& prefix = node_.cfg.prefix;
  std::string index, pattern;
  const char* mode = "set";
  switch (inv.kind) {
    case regional::Invalidation::Kind::tag: index = prefix + "t:" + inv.value; break;
    case regional::Invalidation::Kind::path: index = prefix + "k:" + inv.value; break;
    case regional::Invalidation::Kind::prefix:
    case regional::Invalidation::Kind::all:
      mode = "scan";
      index = prefix + "k:";
      pattern = index;
      for (char c : inv.kind == regional::Invalidation::Kind::all ? std::string() : inv.value) {
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') pattern.push_back('\\');  // glob-escape
        pattern.push_back(c);
      }
      pattern.push_back('*');
      break;
  }
  const std::string_view argv[] = {"EVAL", kScript, "1", index, mode, node_.channel, payload, pattern};
  if (done) client_.execute(argv, std::move(done));
  else client_.send(argv);
  invalidations_[0].inc();
  return true;
}

void RegionalTier::on_invalidation(std::string_view payload) {
  invalidations_[1].inc();
  const auto inv = regional::decode_invalidation(payload);
  if (!inv) {
    spdlog::warn("regional: an invalidation message could not be decoded ({} bytes); ignored", payload.size());
    return;
  }
  if (inv->node == node_.instance) {
    invalidations_[3].inc();  // our own purge, already applied locally
    return;
  }
  if (!edge_) return;
  switch (inv->kind) {
    case regional::Invalidation::Kind::path: edge_->purge_path(inv->host, inv->value, inv->soft); break;
    case regional::Invalidation::Kind::prefix: edge_->purge_prefix(inv->host, inv->value, inv->soft); break;
    case regional::Invalidation::Kind::tag: edge_->purge_tag(inv->value, inv->soft); break;
    case regional::Invalidation::Kind::all: edge_->clear(); break;
  }
  invalidations_[2].inc();
}

void RegionalTier::on_subscribed(bool again) {
  if (!again) return;
  // Messages may have been published while we were not listening: nothing in the edge cache can be trusted.
  spdlog::warn("regional: invalidation subscription re-established; dropping the edge cache");
  if (edge_) edge_->clear();
  resyncs_.inc();
}

}  // namespace virex::server
