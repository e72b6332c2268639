// Worker thread: accept loops, connection registry (the task group drain waits on), the 250 ms tick
// that refreshes the Date line and enforces connection deadlines, and snapshot installation.
#include "worker.hpp"

#include <virex/shard/client.hpp>

#include "shard_metrics.hpp"

#include "connection.hpp"
#include "h2_connection.hpp"
#include "regional_tier.hpp"
#include "transport.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

#include <unistd.h>

namespace virex::server {
namespace {
constexpr auto kTick = std::chrono::milliseconds(100);  // deadline granularity (client and upstream)
constexpr auto token = asio::as_tuple(kUseAwaitable);

// Accepts until the acceptor closes. Suspends in async_accept; keeps `l` alive.
Awaitable<void> accept_loop(Worker* w, std::shared_ptr<ListenerState> l) {
  Timer backoff(w->io().get_executor());
  while (l->acceptor.is_open()) {
    auto [ec, sock] = co_await l->acceptor.async_accept(token);
    if (ec) {
      if (ec == asio::error::operation_aborted || !l->acceptor.is_open()) break;
      if (ec == asio::error::connection_aborted || ec.value() == EPROTO) continue;  // that client's loss only
      // EMFILE/ENFILE/ENOBUFS: the backlog keeps the connection; try again shortly rather than spin.
      spdlog::warn("listener {}: accept: {}", l->name, ec.message());
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(token);
      continue;
    }
    boost::system::error_code ignored;
    sock.set_option(tcp::no_delay(true), ignored);
    if (l->transport) [[unlikely]] {  // TLS handshake or HTTP/2 preface first (transport.cpp)
      asio::co_spawn(w->io(), start_transport(w, l, l->transport, std::move(sock)), asio::detached);
      if (w->draining()) break;
      continue;
    }
    try {
      std::unique_ptr<Connection> c(new Connection(*w, l, std::move(sock)));
      asio::co_spawn(w->io(), Connection::run(c.get()), asio::detached);
      c.release();  // run() owns it now
    } catch (const std::exception& e) {
      // Out of memory: this connection is lost (its socket closes with it), the listener is not.
      spdlog::error("listener {}: {}", l->name, e.what());
    }
    // Stopping: the client already got through the backlog, so it was served above (its answer says
    // Connection: close); accept no more.
    if (w->draining()) break;
  }
}
}  // namespace

Worker::Worker(unsigned id, Shared shared)
    : id_(id),
      shared_(shared),
      shard_(shared.registry->shard(id)),
      ioc_(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO),
      ticker_(ioc_.get_executor()) {
  admin_ctx_.registry = shared.registry;
  admin_ctx_.ready = shared.ready;
  for (std::size_t i = 0; i < http::kParseErrorCount; ++i) {
    const auto e = static_cast<http::ParseError>(i);
    if (e == http::ParseError::none) continue;
    parse_errors_[i] = shard_.counter(shared.registry->counter(
        "virex_http_parse_errors_total", "Requests rejected as malformed, by reason.",
        {{"reason", std::string(http::to_string(e))}}));
  }
  static constexpr std::string_view kPhases[] = {"idle", "header", "body", "write"};
  for (std::size_t i = 0; i < timeouts_.size(); ++i)
    timeouts_[i] = shard_.counter(shared.registry->counter(
        "virex_http_timeouts_total", "Client connections closed because a deadline expired, by phase.",
        {{"phase", std::string(kPhases[i])}}));
  static constexpr std::string_view kRefresh[] = {"updated", "not_modified", "uncacheable", "failed"};
  for (std::size_t i = 0; i < kRefreshResults; ++i)
    refresh_results_[i] = shard_.counter(shared.registry->counter(
        "virex_cache_refreshes_total",
        "Background refreshes of stale edge-cache entries (stale-while-revalidate), by outcome.",
        {{"result", std::string(kRefresh[i])}}));
  static constexpr std::string_view kPurgeKinds[] = {"path", "prefix", "tag"};
  for (std::size_t i = 0; i < purges_.size(); ++i)
    purges_[i] = shard_.counter(shared.registry->counter(
        "virex_cache_purges_total", "Edge-cache purges through the admin API, by kind and mode.",
        {{"kind", std::string(kPurgeKinds[i / 2])}, {"mode", i % 2 ? "soft" : "hard"}}));
  purged_entries_ = shard_.counter(shared.registry->counter(
      "virex_cache_purged_entries_total", "Edge-cache entries removed (hard) or marked stale (soft) by purges."));
  access_log_dropped_ = shard_.counter(shared.registry->counter(
      "virex_access_log_dropped_lines_total", "Access log lines dropped because the writer fell behind."));
  now_ = std::chrono::steady_clock::now();
  if (shared.regional) {
    // Worker 0 also subscribes to the invalidation channel (one subscriber per node: the edge cache is node-wide).
    regional_ = std::make_unique<RegionalTier>(ioc_.get_executor(), *shared.regional, *shared.registry, shard_, id == 0,
                                               shared.edge_cache);
    regional_->start();
  }
}

void Worker::hand_over_access_log() {
  if (!access_log_) return;
  if (const auto lost = access_log_->hand_over(access_log_buffer_)) access_log_dropped_.inc(lost);
}

Worker::~Worker() {
  // The Redis client's sockets and waits belong to ioc_: it goes first (what it had in flight is failed).
  regional_.reset();
  // Destroying ioc_ (below) destroys suspended connections; their detach() must not run drain callbacks
  // or touch ticker_, which is already gone by then.
  drained_ = nullptr;
  draining_ = false;
  // Acceptors are io objects: they must go while ioc_ still has its services (a forced stop can leave them).
  listeners_.clear();
  // Idle pooled upstream sockets too; connections still in use go with their coroutines (which need pools_).
  for (auto& [state, pool] : pools_) pool->sweep(std::chrono::steady_clock::now(), config::Duration::zero());
  if (databases_) databases_->close();
  databases_.reset();
}

void Worker::run() {
  tick();
  for (;;) {
    try {
      ioc_.run();
      hand_over_access_log();
      return;
    } catch (const std::exception& e) {
      // Nothing should throw out of a handler; if something does, keep the worker serving.
      spdlog::error("worker {}: {}", id_, e.what());
    }
  }
}

void Worker::tick() {
  now_ = std::chrono::steady_clock::now();
  hand_over_access_log();
  date_.refresh(std::time(nullptr));
  for (Connection* c : connections_) c->on_tick(now_);
  for (H2Connection* c : h2_connections_) c->on_tick(now_);
  sweep_pools();
  if (databases_) shard_metrics_->update(databases_->stats(), databases_->version());
  if (draining_ && connections_.empty() && h2_connections_.empty()) {
    if (databases_) databases_->close();  // their readers and the lag probe would keep run() going
    return;  // nothing left to watch: let run() return
  }
  ticker_.expires_after(kTick);
  ticker_.async_wait([this](boost::system::error_code ec) {
    if (!ec) tick();
  });
}

namespace {
constexpr std::size_t kMaxPooledBuffers = 256;   // 2 MiB per worker at most
constexpr std::size_t kMaxPooledScratch = 256;
constexpr std::size_t kMaxScratchCapacity = 64 * 1024;  // larger ones (e.g. a /metrics page) are freed
}

std::string Worker::acquire_scratch() {
  if (free_scratch_.empty()) return {};
  std::string s = std::move(free_scratch_.back());
  free_scratch_.pop_back();
  return s;
}

void Worker::release_scratch(std::string s) {
  if (s.capacity() == 0 || s.capacity() > kMaxScratchCapacity || free_scratch_.size() >= kMaxPooledScratch) return;
  s.clear();
  free_scratch_.push_back(std::move(s));
}

std::unique_ptr<char[]> Worker::acquire_buffer() {
  if (free_buffers_.empty()) return std::unique_ptr<char[]>(new char[kReadBufferSize]);
  auto b = std::move(free_buffers_.back());
  free_buffers_.pop_back();
  return b;
}

void Worker::release_buffer(std::unique_ptr<char[]> b) {
  if (b && free_buffers_.size() < kMaxPooledBuffers) free_buffers_.push_back(std::move(b));
}

std::list<Connection*>::iterator Worker::attach(Connection* c) {
  connections_.push_front(c);
  return connections_.begin();
}

void Worker::detach(std::list<Connection*>::iterator it) {
  connections_.erase(it);
  if (draining_) check_drained();
}

std::list<H2Connection*>::iterator Worker::attach_h2(H2Connection* c) {
  h2_connections_.push_front(c);
  return h2_connections_.begin();
}

void Worker::detach_h2(std::list<H2Connection*>::iterator it) {
  h2_connections_.erase(it);
  if (draining_) check_drained();
}

RouteSeries& Worker::route_series(ListenerState& l, const pipeline::Snapshot& s, std::uint32_t idx) {
  if (l.routes_generation != s.generation) {
    l.routes.assign(s.routes.routes().size() + 1, RouteSeries{});
    l.routes_generation = s.generation;
  }
  RouteSeries& r = l.routes[idx];
  if (!r.duration.valid()) try {
    auto& reg = *shared_.registry;
    const std::string route = idx < s.routes.routes().size() ? s.routes.routes()[idx].name : "none";
    static constexpr std::string_view kClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    for (std::size_t i = 0; i < 5; ++i)
      r.by_class[i] = shard_.counter(reg.counter("virex_http_requests_total", "HTTP requests answered.",
                                                 {{"listener", l.name}, {"route", route},
                                                  {"status_class", std::string(kClasses[i])}}));
    r.duration = shard_.histogram(reg.histogram("virex_http_request_duration_seconds",
                                                "Time from a request's head to its response being queued.",
                                                {{"listener", l.name}, {"route", route}},
                                                observe::default_latency_buckets(), 1e-9));
    static constexpr std::string_view kResults[] = {"hit",    "miss",      "stale", "bypass",
                                                    "collapsed", "stale_while_revalidate", "revalidated"};
    const bool caches = idx < s.routes.routes().size() && s.routes.routes()[idx].cache;
    for (std::size_t i = 0; i < kCacheResults; ++i)
      r.cache[i] = caches ? shard_.counter(reg.counter(
                                "virex_cache_requests_total",
                                "Requests on caching routes by edge-cache outcome (collapsed: waited on another's fetch; "
                                "stale_while_revalidate: served stale during a background refresh; revalidated: "
                                "served after a 304 from the origin).",
                                {{"route", route}, {"result", std::string(kResults[i])}}))
                          : observe::CounterRef(&discard_cells_[0]);
  } catch (const std::exception& e) {
    // The registry is full (series are never reclaimed, and every reload may name new routes): count into
    // this worker's scratch cells rather than fail the request.
    spdlog::error("metrics: {}; route {} is not counted", e.what(), idx);
    for (auto& c : r.by_class) c = observe::CounterRef(&discard_cells_[0]);
    for (auto& c : r.cache) c = observe::CounterRef(&discard_cells_[0]);
    r.duration = observe::HistogramRef(kDiscardBounds.data(), 0, discard_cells_.data());
  }
  return r;
}

std::optional<std::uint32_t> Worker::pick_endpoint(const pipeline::Cluster& c, upstream::WorkerPool& pool,
                                                   bool has_key, std::uint64_t key_hash, std::uint64_t tried) {
  const auto now = std::chrono::steady_clock::now();
  const upstream::ClusterState& st = pool.state();
  candidates_.resize(st.size());
  for (std::size_t i = 0; i < st.size(); ++i) {
    const upstream::EndpointState& e = st.endpoint(i);
    candidates_[i].available = e.available(now);
    candidates_[i].active = e.active.load(std::memory_order_relaxed);
  }
  return c.balancer->pick(candidates_, pool.pick_state(), has_key, key_hash, tried);
}

std::shared_ptr<upstream::WorkerPool> Worker::upstream_pool(const pipeline::Cluster& c) {
  auto& slot = pools_[c.state.get()];
  if (!slot)
    slot = std::make_shared<upstream::WorkerPool>(ioc_.get_executor(), c.state, *shared_.registry, shard_, id_ + 1);
  return slot;
}

void Worker::sweep_pools() {
  for (auto it = pools_.begin(); it != pools_.end();) {
    const pipeline::Cluster* current = nullptr;
    if (snapshot_)
      for (const auto& c : snapshot_->clusters)
        if (c.state.get() == it->first) current = &c;
    if (current) {
      it->second->sweep(now_, current->config->pool.idle_timeout);
      ++it;
    } else if (it->second.use_count() == 1 && it->second->in_use() == 0) {
      it = pools_.erase(it);  // the cluster left the config and its last exchange has ended
    } else {
      it->second->sweep(now_, config::Duration::zero());
      ++it;
    }
  }
}

void Worker::post_install(std::shared_ptr<const pipeline::Snapshot> snap, std::shared_ptr<observe::AccessLog> log,
                          std::vector<ListenerSocket> add, std::vector<std::string> remove,
                          std::function<void(bool)> done) {
  asio::post(ioc_, [this, snap = std::move(snap), log = std::move(log), add = std::move(add),
                    remove = std::move(remove), done = std::move(done)]() mutable {
    done(install(std::move(snap), std::move(log), std::move(add), remove));
  });
}

bool Worker::install(std::shared_ptr<const pipeline::Snapshot> snap, std::shared_ptr<observe::AccessLog> log,
                     std::vector<ListenerSocket> add, const std::vector<std::string>& remove) {
  snapshot_ = std::move(snap);
  sampling_ = observe::sampling_policy(snapshot_->config.observability.tracing);
  if (snapshot_->config.databases.present) {
    if (!databases_) {
      databases_ = std::make_unique<shard::Databases>(ioc_.get_executor(), shared_.workers, id_,
                                                       snapshot_->config.node.region);
      shard_metrics_ = std::make_unique<ShardMetrics>(*shared_.registry, shard_, id_);
      databases_->set_observer([m = shard_metrics_.get()](std::int64_t shard, shard::Role role, shard::QueryErrc e,
                                                          double seconds, unsigned depth) {
        m->on_query(shard, role, e, seconds, depth);
      });
    }
    databases_->configure(snapshot_->config.databases);
  }
  via_.clear();
  if (snapshot_->config.proxy.via) {
    std::string node = snapshot_->config.node.name;
    if (node.empty()) {
      char host[256] = {};
      node = ::gethostname(host, sizeof host - 1) == 0 ? host : "virex-edge";
    }
    via_ = "1.1 " + node;
  }
  if (access_log_ != log) hand_over_access_log();  // lines logged so far go to the old file
  access_log_ = std::move(log);
  for (const std::string& key : remove) {
    for (auto it = listeners_.begin(); it != listeners_.end();) {
      if ((*it)->key == key) {
        boost::system::error_code ec;
        (*it)->acceptor.close(ec);  // the accept loop ends; its connections keep the state alive
        // HTTP/2 clients of a removed listener get GOAWAY (their open streams finish); HTTP/1.1 ones finish
        // their keep-alive life on the old state.
        std::vector<H2Connection*> h2(h2_connections_.begin(), h2_connections_.end());
        for (H2Connection* c : h2)
          if (c->listener_key() == key) c->on_drain();
        it = listeners_.erase(it);
      } else {
        ++it;
      }
    }
  }
  bool ok = true;
  for (ListenerSocket& s : add) ok = adopt(std::move(s)) && ok;
  admin_ctx_.admin_listeners.clear();
  for (const auto& l : listeners_)
    if (l->admin) admin_ctx_.admin_listeners.push_back(l->name);
  return ok;
}

bool Worker::adopt(ListenerSocket s) {
  auto l = std::make_shared<ListenerState>(ioc_);
  l->key = s.key;
  l->name = s.name;
  l->admin = s.admin;
  boost::system::error_code ec;
  l->acceptor.assign(s.v6 ? tcp::v6() : tcp::v4(), s.fd, ec);
  if (ec) {
    spdlog::error("worker {}: listener {}: {}", id_, s.name, ec.message());
    ::close(s.fd);
    return false;
  }
  auto& reg = *shared_.registry;
  const observe::Labels labels{{"listener", s.name}};
  l->open = shard_.gauge(reg.gauge("virex_http_connections_open", "Open client connections.", labels));
  l->accepted = shard_.counter(reg.counter("virex_http_connections_total", "Accepted client connections.", labels));
  l->bytes_in = shard_.counter(reg.counter("virex_http_received_bytes_total", "Bytes read from clients.", labels));
  l->bytes_out = shard_.counter(reg.counter("virex_http_sent_bytes_total", "Bytes written to clients.", labels));
  if (transports_)
    if (auto it = transports_->find(l->key); it != transports_->end()) l->transport = it->second;
  listeners_.push_back(l);
  asio::co_spawn(ioc_, accept_loop(this, std::move(l)), asio::detached);
  return true;
}

void Worker::post_transports(std::shared_ptr<const Transports> t) {
  asio::post(ioc_, [this, t = std::move(t)]() mutable {
    transports_ = std::move(t);
    for (auto& l : listeners_) {
      auto it = transports_->find(l->key);
      l->transport = it == transports_->end() ? nullptr : it->second;
    }
  });
}

observe::CounterRef Worker::counter(std::string_view name, std::string_view help, const observe::Labels& labels) {
  std::string key(name);
  for (const auto& [k, v] : labels) key.append("|").append(k).append("=").append(v);
  auto it = counters_.find(key);
  if (it == counters_.end())
    it = counters_.emplace(std::move(key), shard_.counter(shared_.registry->counter(name, help, labels))).first;
  return it->second;
}

void Worker::post_drain(std::function<void()> drained) {
  asio::post(ioc_, [this, drained = std::move(drained)]() mutable {
    draining_ = true;
    drained_ = std::move(drained);
    for (auto& l : listeners_) {
      boost::system::error_code ec;
      l->acceptor.close(ec);
    }
    listeners_.clear();
    // Copy: on_drain() may not remove synchronously, but be safe against iterator invalidation anyway.
    std::vector<Connection*> now(connections_.begin(), connections_.end());
    for (Connection* c : now) c->on_drain();
    std::vector<H2Connection*> h2(h2_connections_.begin(), h2_connections_.end());
    for (H2Connection* c : h2) c->on_drain();  // GOAWAY; open streams are finished
    if (!connections_.empty())
      spdlog::info("worker {}: draining, {} connection(s) open", id_, connections_.size());
    check_drained();
  });
}

void Worker::check_drained() {
  if (!draining_ || !connections_.empty() || !h2_connections_.empty() || !drained_) return;
  auto cb = std::move(drained_);
  drained_ = nullptr;
  ticker_.cancel();
  if (regional_) regional_->client().stop();  // its waits would keep run() from returning
  if (databases_) databases_->close();  // their readers and the lag probe would keep run() going
  cb();
}

}  // namespace virex::server
