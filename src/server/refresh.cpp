// Background refresh of a stale edge-cache entry (see refresh.hpp).
#include "refresh.hpp"

#include "cache_fill.hpp"
#include "coalescer.hpp"
#include "regional_tier.hpp"

#include <virex/upstream/balancer.hpp>
#include <virex/upstream/pool.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/write.hpp>

#include <spdlog/spdlog.h>

#include <optional>
#include <tuple>
#include <variant>

namespace virex::server {
namespace {
constexpr auto token = asio::as_tuple(kUseAwaitable);
constexpr std::size_t kMaxHead = 64 * 1024;
constexpr std::size_t kChunk = 16 * 1024;
using O = upstream::ClusterState::Outcome;

using Clock = std::chrono::steady_clock;

// `op`, unless `d` passes first, or the refresh's overall `deadline` (then it is cancelled and the result is
// empty).
template <class T>
Awaitable<std::optional<T>> timed(Awaitable<T> op, Timer& timer, config::Duration d, Clock::time_point deadline) {
  using namespace boost::asio::experimental::awaitable_operators;
  timer.expires_at(std::min(Clock::now() + d, deadline));
  auto r = co_await (std::move(op) || timer.async_wait(token));
  if (r.index() == 0) co_return std::get<0>(std::move(r));
  co_return std::nullopt;
}

struct Response {
  std::string head;     // status line and fields, copied out of the read buffer
  std::string body;
  bool complete = false;
  bool too_big = false;       // the body passed max_body: not read further, not kept
  bool reusable = false;      // the connection may go back to the pool
  bool any_byte = false;      // some response byte arrived (a failure after it is the endpoint's)
  bool peer_closed = false;   // the upstream closed or reset before any response byte (a stale pooled connection)
};

// One exchange on a connected `conn`: the head out, the whole response in (bounded: the head by kMaxHead, the
// kept body by max_body). False on a transport error, a timeout or a malformed response.
Awaitable<bool> exchange(upstream::UpstreamConn& conn, const std::string& up_head, config::Duration first_byte,
                         config::Duration idle, Clock::time_point deadline, std::size_t max_body, Response& out) {
  Timer timer(conn.socket.get_executor());
  const auto closed = [](const boost::system::error_code& ec) {
    return ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe;
  };
  {
    auto w = co_await timed(asio::async_write(conn.socket, asio::buffer(up_head), token), timer, idle, deadline);
    if (!w) co_return false;
    if (const auto ec = std::get<0>(*w)) {
      out.peer_closed = closed(ec);
      co_return false;
    }
  }
  http::H1ResponseParser parser;
  std::string buf(kChunk, '\0');
  std::size_t begin = 0, end = 0;
  bool head_done = false;
  for (;;) {
    while (begin < end || head_done) {  // after the head, feed even with no bytes: a bodiless answer completes
      const auto r = parser.feed(std::string_view(buf.data() + begin, end - begin));
      begin += r.consumed;
      using E = http::H1ResponseParser::Event;
      if (r.event == E::head) {
        if (parser.head().status < 200) continue;  // 1xx: `complete` follows
        out.head.assign(buf.data() + begin - r.consumed, parser.head().head_bytes);
        head_done = true;
        continue;
      }
      if (r.event == E::body) {
        const std::string_view b = parser.body();
        if (out.body.size() + b.size() > max_body) {  // not storable: stop reading (the connection is closed)
          out.too_big = true;
          out.body.clear();
          co_return true;
        }
        out.body.append(b);
        continue;
      }
      if (r.event == E::complete) {
        if (!head_done) {  // of a 1xx
          parser.next();
          continue;
        }
        out.complete = true;
        out.reusable = parser.head().keep_alive && !parser.head().until_close && begin == end;
        co_return true;
      }
      if (r.event == E::error) co_return false;
      break;  // need_more
    }
    if (begin == end) {
      begin = end = 0;
    } else if (begin > 0) {
      buf.erase(0, begin);
      buf.resize(kChunk > buf.size() ? kChunk : buf.size());
      end -= begin;
      begin = 0;
    }
    if (end == buf.size()) {
      if (buf.size() >= kMaxHead) co_return false;
      buf.resize(buf.size() * 2);
    }
    auto rd = co_await timed(conn.socket.async_read_some(asio::buffer(buf.data() + end, buf.size() - end), token),
                             timer, out.any_byte ? idle : first_byte, deadline);
    if (!rd) co_return false;
    auto [ec, n] = *rd;
    if (ec && !out.any_byte) out.peer_closed = closed(ec);
    if (ec == asio::error::eof && head_done) {
      if (parser.feed_eof().event == http::H1ResponseParser::Event::complete) {
        out.complete = true;
        co_return true;
      }
      co_return false;
    }
    if (ec) co_return false;
    out.any_byte = true;
    end += n;
  }
}

Awaitable<void> run(Worker& w, std::unique_ptr<RefreshJob> job) {
  RefreshJob& j = *job;
  struct Done {
    Worker& w;
    RefreshJob& j;
    ~Done() {
      --w.refreshes();
      if (Coalescer* c = w.coalescer()) c->finish(j.hash, j.key);
    }
  } done{w, j};
  const pipeline::Snapshot& snap = *j.snapshot;
  const pipeline::CompiledRoute& route = *j.route;
  const pipeline::Cluster& cl = snap.clusters[route.cluster];
  const config::Upstream& cfg = *cl.config;
  const config::RouteUpstream& ru = *route.upstream;
  cache::Store& store = *w.edge_cache();
  http::H1RequestParser rp(snap.h1_limits);
  if (rp.feed(j.request).event != http::H1RequestParser::Event::head) {
    w.count_refresh(RefreshResult::failed);
    co_return;
  }
  const http::RequestHead& req = rp.head();
  const std::shared_ptr<upstream::WorkerPool> pool_hold = w.upstream_pool(cl);
  upstream::WorkerPool& pool = *pool_hold;
  upstream::ClusterState& st = *cl.state;
  if (!st.try_acquire(st.requests, cfg.limits.max_requests)) {
    pool.series().rejected[2].inc();
    w.count_refresh(RefreshResult::failed);
    co_return;
  }
  struct RequestSlot {
    upstream::ClusterState& st;
    ~RequestSlot() { st.requests.fetch_sub(1, std::memory_order_relaxed); }
  } request_slot{st};
  std::uint64_t key_hash = 0;
  bool has_key = false;
  if (cfg.balance == config::Balance::consistent_hash) {
    const std::string_view k = upstream::hash_input(req, cfg.hash_on, cfg.hash_key);
    has_key = !k.empty();
    if (has_key) key_hash = upstream::hash_key(k);
  }
  const auto pick = w.pick_endpoint(cl, pool, has_key, key_hash, 0);
  if (!pick) {
    w.count_refresh(RefreshResult::failed);
    co_return;
  }
  const std::uint32_t e = *pick;
  const config::Duration first_byte = ru.first_byte.value_or(cfg.timeouts.first_byte);
  const config::Duration idle = ru.idle.value_or(cfg.timeouts.idle);
  // One deadline for the whole refresh (the route's or cluster's request timeout, else kMaxRefreshTime): an
  // origin trickling bytes just inside `idle` cannot hold the key's flight and a refresh slot for long.
  const Clock::time_point deadline = Clock::now() + ru.request.value_or(cfg.timeouts.request.value_or(kMaxRefreshTime));
  struct Active {  // in flight to the endpoint, for least_request
    upstream::EndpointState& ep;
    explicit Active(upstream::EndpointState& e) : ep(e) { ep.active.fetch_add(1, std::memory_order_relaxed); }
    ~Active() { ep.active.fetch_sub(1, std::memory_order_relaxed); }
  } active(st.endpoint(e));
  Response resp;
  bool ok = false;
  // A pooled connection may have been closed by the upstream just now: one more try on a fresh one.
  for (int attempt = 0; attempt < 2 && !ok; ++attempt) {
    std::unique_ptr<upstream::UpstreamConn> conn = attempt == 0 ? pool.take_idle(e, w.coarse_now()) : nullptr;
    const bool reused = conn != nullptr;
    if (reused) {
      pool.series().reused.inc();
    } else {
      core::tcp::endpoint addr;
      if (!pool.address(e, addr)) break;
      if (!st.try_acquire(st.pending, cfg.limits.max_pending)) {
        pool.series().rejected[1].inc();
        break;
      }
      struct PendingSlot {
        upstream::ClusterState& st;
        ~PendingSlot() { st.pending.fetch_sub(1, std::memory_order_relaxed); }
      } slot{st};
      conn = pool.open(e, cfg.limits.max_connections);
      if (!conn) {
        pool.series().rejected[0].inc();
        break;
      }
      Timer timer(w.io().get_executor());
      const auto c = co_await timed(conn->socket.async_connect(addr, token), timer, cfg.timeouts.connect, deadline);
      if (!c || std::get<0>(*c)) {
        if (st.record(e, O::failure, cfg.outlier, std::chrono::steady_clock::now())) pool.endpoint_series(e).ejections.inc();
        break;
      }
      boost::system::error_code ignored;
      conn->socket.set_option(core::tcp::no_delay(true), ignored);
    }
    ++conn->requests;
    pool.endpoint_series(e).requests.inc();
    resp = {};
    ok = co_await exchange(*conn, j.upstream_head, first_byte, idle, deadline, w.edge_cache_max_object(), resp);
    if (!ok && reused && resp.peer_closed) continue;  // stale pooled connection: not the endpoint's fault
    const auto now = std::chrono::steady_clock::now();
    if (!ok) {
      if (st.record(e, O::failure, cfg.outlier, now)) pool.endpoint_series(e).ejections.inc();
      break;
    }
    pool.release(std::move(conn), resp.reusable, cfg.pool, now);
  }
  if (!ok) {
    w.count_refresh(RefreshResult::failed);
    co_return;
  }
  http::H1ResponseParser hp;
  hp.feed(resp.head);
  const http::ResponseHead& rh = hp.head();
  const auto now = std::chrono::steady_clock::now();
  pool.endpoint_series(e).responses[std::min(rh.status / 100, 5u) - 1].inc();
  if (st.record(e, rh.status >= 500 ? O::status_5xx : O::success, cfg.outlier, now)) pool.endpoint_series(e).ejections.inc();
  const std::time_t unix_now = std::time(nullptr);
  // A new or freshened entry goes to the regional tier as well (the region's copy would otherwise stay older).
  const auto to_region = [&](const cache::Entry& e) {
    if (RegionalTier* tier = j.regional_key.empty() ? nullptr : w.regional()) tier->store(e, j.regional_key, j.regional_ttl);
  };
  // Only what the origin says decides the entry's fate; the stale entry is removed only if it is still the one
  // resident (not a newer response or a purge's result) and never because admission refused the new one.
  if (rh.status == 304 && j.conditional) {
    cache::StoreDecision d;
    auto fresh = freshen(*j.stale, rh, req, snap, route, unix_now, d);
    if (!fresh) {
      w.count_refresh(RefreshResult::failed);  // the 304 does not select the stored response: keep it
    } else if (!d.store) {
      store.erase(j.key, j.hash, j.stale.get());
      w.count_refresh(RefreshResult::uncacheable);
    } else {
      to_region(*fresh);
      w.count_refresh(store.insert(std::move(fresh), j.hash) ? RefreshResult::not_modified : RefreshResult::uncacheable);
    }
    co_return;
  }
  if (rh.status >= 500 || rh.status == 206 || rh.status == 304) {
    w.count_refresh(RefreshResult::failed);  // the stale entry stays for stale-if-error
    co_return;
  }
  const cache::StoreDecision d = resp.too_big ? cache::StoreDecision{} : cache::decide(req, rh, route.cache_policy, unix_now);
  std::shared_ptr<cache::Entry> entry = d.store ? make_entry(req, rh, d, snap, route, j.key, w.via()) : nullptr;
  if (entry) {
    seal(*entry, std::move(resp.body));
    to_region(*entry);
    // Refused by admission, the new response still supersedes the stale one (insert() removed it).
    w.count_refresh(store.insert(std::move(entry), j.hash) ? RefreshResult::updated : RefreshResult::uncacheable);
  } else {
    store.erase(j.key, j.hash, j.stale.get());  // the origin no longer lets this be stored (or it grew too big)
    w.count_refresh(RefreshResult::uncacheable);
  }
}
}  // namespace

bool refresh_slot_free(const Worker& w) noexcept { return w.refreshes() < kMaxRefreshes; }

void start_refresh(Worker& w, std::unique_ptr<RefreshJob> job) {
  ++w.refreshes();
  asio::co_spawn(w.io(), run(w, std::move(job)), [](std::exception_ptr ep) {
    if (!ep) return;
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      spdlog::error("cache refresh: {}", e.what());
    }
  });
}

}  // namespace virex::server
