// Endpoint selection: the key hash, the hash input (path, header, cookie), the Maglev lookup table and the
// three pick policies. Tables are built on the control thread and only read afterwards; pick() mutates only
// the caller's PickState, so any worker may call it concurrently on a shared Balancer. Nothing allocates
// after construction.
#include <virex/http/text.hpp>
#include <virex/upstream/balancer.hpp>

#include <bit>
#include <cassert>
#include <cstring>

namespace virex::upstream {
namespace {

// ---- hashing -------------------------------------------------------------------------------------------
// A multiply-fold hash in the style of wyhash (own constants and layout): 16 bytes per round folded through
// a 64×64→128 multiply, the tail read as two overlapping words, then a SplitMix64 finalizer. Bytes are read
// little-endian on every host, so the value is stable across machines, processes and restarts — nodes of a
// fleet must send a key to the same endpoint.

constexpr std::uint64_t kP0 = 0x9e3779b97f4a7c15ULL;   // 2^64 / golden ratio
constexpr std::uint64_t kP1 = 0xbf58476d1ce4e5b9ULL;   // SplitMix64 multipliers
constexpr std::uint64_t kP2 = 0x94d049bb133111ebULL;
constexpr std::uint64_t kP3 = 0xd6e8feb86659fd93ULL;

constexpr std::uint64_t kSeedKey = 0x2d358dccaa6c78a5ULL;      // hash_key
constexpr std::uint64_t kSeedOffset = 0x8bb84b93962eacc9ULL;   // Maglev offset
constexpr std::uint64_t kSeedSkip = 0x4b33a62ed433d4a3ULL;     // Maglev skip

inline std::uint64_t fold_mul(std::uint64_t a, std::uint64_t b) noexcept {
  const unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
  return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64);
}

inline std::uint64_t read64(const unsigned char* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  return v;
}

inline std::uint64_t read32(const unsigned char* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap32(v);
  return v;
}

// SplitMix64's finalizer (Steele, Lea, Flood 2014): full avalanche of a 64-bit word.
inline std::uint64_t mix64(std::uint64_t x) noexcept {
  x ^= x >> 30;
  x *= kP1;
  x ^= x >> 27;
  x *= kP2;
  x ^= x >> 31;
  return x;
}

std::uint64_t hash_seeded(std::string_view key, std::uint64_t seed) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(key.data());
  std::size_t n = key.size();
  std::uint64_t h = seed ^ fold_mul(seed ^ kP0, static_cast<std::uint64_t>(n) ^ kP3);
  while (n > 16) {
    h = fold_mul(read64(p) ^ kP1, read64(p + 8) ^ h);
    p += 16;
    n -= 16;
  }
  std::uint64_t a = 0, b = 0;
  if (n > 8) {
    a = read64(p);
    b = read64(p + n - 8);
  } else if (n >= 4) {
    a = read32(p);
    b = read32(p + n - 4);
  } else if (n > 0) {
    a = (std::uint64_t{p[0]} << 16) | (std::uint64_t{p[n / 2]} << 8) | p[n - 1];
  }
  h = fold_mul(a ^ kP2, b ^ h ^ kP0);
  return mix64(h ^ key.size());
}

// ---- header parsing helpers ----------------------------------------------------------------------------

using http::iequals;
using http::trim_ows;

// RFC 6265 §4.2.1: cookie-string = cookie-pair *( ";" SP cookie-pair ), cookie-pair = name "=" value, and a
// value may be DQUOTEd (§4.1.1). Lenient as §5.4 suggests for user agents: optional whitespace around ';'
// and '=', pairs without '=' skipped. Names compare case-sensitively. The first match wins.
std::optional<std::string_view> find_cookie(std::string_view header, std::string_view name) noexcept {
  while (!header.empty()) {
    const std::size_t semi = header.find(';');
    std::string_view pair = header.substr(0, semi);
    header.remove_prefix(semi == std::string_view::npos ? header.size() : semi + 1);
    const std::size_t eq = pair.find('=');
    if (eq == std::string_view::npos) continue;
    if (trim_ows(pair.substr(0, eq)) != name) continue;
    std::string_view value = trim_ows(pair.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    return value;
  }
  return std::nullopt;
}

bool is_prime(std::size_t n) noexcept {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (std::size_t d = 3; d * d <= n; d += 2) {
    if (n % d == 0) return false;
  }
  return true;
}

// ---- pick helpers --------------------------------------------------------------------------------------

// SplitMix64 step: a per-worker stream, fast and good enough to pick between endpoints.
inline std::uint64_t next_random(PickState& s) noexcept { return mix64(s.rng += kP0); }

// Uniform in [0, n) by Lemire's multiply-shift (no division; the bias is below 2^-32 for n < 2^32).
inline std::uint32_t random_below(PickState& s, std::uint32_t n) noexcept {
  return static_cast<std::uint32_t>(((next_random(s) >> 32) * n) >> 32);
}

inline bool is_tried(std::uint64_t tried, std::size_t i) noexcept { return (tried >> (i & 63)) & 1; }

// Which endpoints a pick may return: first only the available ones this request has not tried; when none of
// those is left, any available one (a retry then goes back to an endpoint it tried).
struct Eligible {
  std::span<const Candidate> eps;
  std::uint64_t tried;   // 0 in the "any available" pass
  bool operator()(std::size_t i) const noexcept { return i < eps.size() && eps[i].available && !is_tried(tried, i); }
};

// Round robin over the eligible endpoints from the cursor. The cursor moves to just after the chosen one, so an
// unavailable endpoint's turn goes to the next available one and the available ones still share evenly.
std::optional<std::uint32_t> pick_round_robin(std::span<const Candidate> eps, PickState& st,
                                              std::uint64_t tried) noexcept {
  const std::size_t n = eps.size();
  std::size_t start = st.cursor < n ? st.cursor : st.cursor % n;
  for (const std::uint64_t mask : {tried, std::uint64_t{0}}) {
    const Eligible ok{eps, mask};
    std::size_t i = start;
    for (std::size_t k = 0; k < n; ++k) {
      if (ok(i)) {
        st.cursor = i + 1;
        return static_cast<std::uint32_t>(i);
      }
      if (++i == n) i = 0;
    }
    if (mask == 0) break;
  }
  return std::nullopt;
}

// A uniformly random eligible endpoint other than `exclude`: a few random probes (cheap when most endpoints
// are eligible), then an exact count-and-rank scan. Either way each eligible endpoint is equally likely.
std::optional<std::uint32_t> random_eligible(const Eligible& ok, PickState& st, std::size_t exclude) noexcept {
  const auto n = static_cast<std::uint32_t>(ok.eps.size());
  for (int probe = 0; probe < 4; ++probe) {
    const std::uint32_t i = random_below(st, n);
    if (i != exclude && ok(i)) return i;
  }
  std::uint32_t count = 0;
  for (std::uint32_t i = 0; i < n; ++i) count += (i != exclude && ok(i));
  if (count == 0) return std::nullopt;
  std::uint32_t rank = random_below(st, count);
  for (std::uint32_t i = 0; i < n; ++i) {
    if (i != exclude && ok(i) && rank-- == 0) return i;
  }
  return std::nullopt;   // unreachable
}

// Power of two choices (Mitzenmacher 2001): two distinct random candidates, the one with fewer requests in
// flight wins, a tie is broken at random. A single eligible endpoint is returned as is.
std::optional<std::uint32_t> pick_least_request(std::span<const Candidate> eps, PickState& st,
                                                std::uint64_t tried) noexcept {
  Eligible ok{eps, tried};
  std::optional<std::uint32_t> a = random_eligible(ok, st, SIZE_MAX);
  if (!a) {
    if (tried == 0) return std::nullopt;
    ok.tried = 0;
    a = random_eligible(ok, st, SIZE_MAX);
    if (!a) return std::nullopt;
  }
  const std::optional<std::uint32_t> b = random_eligible(ok, st, *a);
  if (!b) return a;
  const std::uint32_t la = eps[*a].active, lb = eps[*b].active;
  if (la != lb) return la < lb ? a : b;
  return (next_random(st) & 1) ? a : b;
}

constexpr int kMaxRehash = 16;   // with half the endpoints down, a key falls through to the scan with p ≈ 2^-16

}  // namespace

std::uint64_t hash_key(std::string_view key) noexcept { return hash_seeded(key, kSeedKey); }

std::string_view hash_input(const http::RequestHead& head, config::HashOn on, std::string_view name) noexcept {
  switch (on) {
    case config::HashOn::path:
      return head.path;
    case config::HashOn::header:
      return head.header(name);
    case config::HashOn::cookie:
      // RFC 6265 §5.4 has user agents send one Cookie header, but HTTP/2 splits it (RFC 9113 §8.2.3) and some
      // clients and proxies send several: look in each.
      for (const http::Header& h : head.headers) {
        if (!iequals(h.name, "cookie")) continue;
        if (const auto v = find_cookie(h.value, name)) return *v;
      }
      return {};
  }
  return {};
}

// Maglev (Eisenbud et al., NSDI 2016, §3.4): each endpoint's preference list is the permutation
// offset + j·skip (mod M) of the table slots, offset and skip from two independent hashes of its name; the
// endpoints take turns claiming their next unclaimed preferred slot until the table is full. Every endpoint
// gets ⌊M/N⌋ or ⌈M/N⌉ slots, and a changed endpoint set moves few slots of the others. M must be prime so
// that every skip in [1, M) walks all slots; a size that is not is raised to the next prime above it.
MaglevTable::MaglevTable(const std::vector<std::string>& names, std::size_t size) {
  const std::size_t n = names.size();
  if (n == 0) return;
  std::size_t m = size > n ? size : n + 1;
  assert(is_prime(m) && "MaglevTable size must be prime");
  while (!is_prime(m)) ++m;

  std::vector<std::uint64_t> next(n), skip(n);
  for (std::size_t i = 0; i < n; ++i) {
    next[i] = hash_seeded(names[i], kSeedOffset) % m;
    skip[i] = hash_seeded(names[i], kSeedSkip) % (m - 1) + 1;
  }
  constexpr std::uint32_t kEmpty = UINT32_MAX;
  table_.assign(m, kEmpty);
  std::size_t filled = 0;
  for (;;) {
    for (std::size_t i = 0; i < n; ++i) {
      std::uint64_t c = next[i];
      while (table_[c] != kEmpty) {
        c += skip[i];
        if (c >= m) c -= m;
      }
      table_[c] = static_cast<std::uint32_t>(i);
      c += skip[i];
      if (c >= m) c -= m;
      next[i] = c;
      if (++filled == m) return;
    }
  }
}

std::uint32_t MaglevTable::lookup(std::uint64_t hash) const noexcept {
  if (table_.empty()) return 0;
  // Lemire's multiply-shift maps the (well-mixed) hash onto [0, M) without a division.
  const auto slot = static_cast<std::size_t>((static_cast<unsigned __int128>(hash) * table_.size()) >> 64);
  return table_[slot];
}

Balancer::Balancer(config::Balance policy, const std::vector<std::string>& endpoint_names) : policy_(policy) {
  if (policy_ == config::Balance::consistent_hash) maglev_.emplace(endpoint_names);
}

std::optional<std::uint32_t> Balancer::pick(std::span<const Candidate> endpoints, PickState& state, bool has_key,
                                            std::uint64_t key_hash, std::uint64_t tried) const noexcept {
  if (endpoints.empty()) return std::nullopt;
  switch (policy_) {
    case config::Balance::round_robin:
      return pick_round_robin(endpoints, state, tried);
    case config::Balance::least_request:
      return pick_least_request(endpoints, state, tried);
    case config::Balance::consistent_hash:
      break;
  }
  if (!has_key || !maglev_) return pick_round_robin(endpoints, state, tried);

  // The key's endpoint; when it is unavailable (or already tried) the key is rehashed along a chain that
  // depends on the key only, so every node sends it to the same substitute and keys of available endpoints
  // never move. After kMaxRehash misses, a deterministic scan from the key's slot. The second pass (any
  // available, tried or not) only runs when every available endpoint has been tried.
  const std::size_t n = endpoints.size();
  const std::uint32_t home = maglev_->lookup(key_hash);
  for (const std::uint64_t mask : {tried, std::uint64_t{0}}) {
    const Eligible ok{endpoints, mask};
    if (ok(home)) return home;
    for (int attempt = 1; attempt <= kMaxRehash; ++attempt) {
      const std::uint32_t i = maglev_->lookup(mix64(key_hash + static_cast<std::uint64_t>(attempt) * kP0));
      if (ok(i)) return i;
    }
    std::size_t i = home < n ? home : 0;
    for (std::size_t k = 0; k < n; ++k) {
      if (ok(i)) return static_cast<std::uint32_t>(i);
      if (++i == n) i = 0;
    }
    if (mask == 0) break;
  }
  return std::nullopt;
}

}  // namespace virex::upstream
