// A worker: one thread, one single-threaded io_context, its own SO_REUSEPORT acceptor per listener, and
// every connection it accepts (a connection never leaves its worker). The control thread talks to a
// worker only by posting owned data (install / drain); the worker answers by posting back.
#pragma once

#include <virex/admin/admin.hpp>
#include <virex/core/http_date.hpp>
#include <virex/core/runtime.hpp>
#include <virex/observe/access_log.hpp>
#include <virex/observe/metrics.hpp>
#include <virex/observe/trace_context.hpp>
#include <virex/observe/tracing.hpp>
#include <virex/pipeline/snapshot.hpp>
#include <virex/upstream/pool.hpp>
#include <virex/cache/store.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace virex::shard {
class Databases;
}

namespace virex::server {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using core::Executor;
using core::Socket;
using core::Timer;
using Acceptor = asio::basic_socket_acceptor<tcp, Executor>;
using core::Awaitable;
using core::kUseAwaitable;

class Connection;
class H2Connection;
struct ListenerTransport;  // transport.hpp: TLS and HTTP/2 settings of a listener
using Transports = std::unordered_map<std::string, std::shared_ptr<const ListenerTransport>>;  // by listener key

// Per-request series of one (listener, route) pair in this worker, registered on first use.
// Edge-cache outcomes counted per route (virex_cache_requests_total{result}).
// stale_while_revalidate: answered stale while one background refresh runs; revalidated: answered from the
// stored response after the origin confirmed it with a 304.
enum class CacheResult : std::uint8_t { hit, miss, stale, bypass, collapsed, stale_while_revalidate, revalidated };
inline constexpr std::size_t kCacheResults = 7;
// Outcomes of background refreshes (virex_cache_refreshes_total{result}): a new response stored, the stored one
// freshened by a 304, the origin's answer may not be stored (the entry is dropped), or no usable answer.
enum class RefreshResult : std::uint8_t { updated, not_modified, uncacheable, failed };
inline constexpr std::size_t kRefreshResults = 4;

struct RouteSeries {
  std::array<observe::CounterRef, 5> by_class;  // 1xx … 5xx
  observe::HistogramRef duration;
  std::array<observe::CounterRef, kCacheResults> cache;  // only for routes with `cache:`
};

// A listener as one worker sees it: its acceptor and its series.
struct ListenerState {
  std::string key;             // name|address|admin — identity across reloads
  std::string name;
  bool admin = false;
  Acceptor acceptor;
  observe::CounterRef open, accepted, bytes_in, bytes_out;
  std::vector<RouteSeries> routes;  // index = route index; last = "none"; cleared on snapshot change
  std::uint64_t routes_generation = 0;
  // Null for a cleartext HTTP/1.1-only listener (accepted sockets go straight to a Connection); else its TLS
  // contexts and protocols, replaced on reload (connections keep the one they started with).
  std::shared_ptr<const ListenerTransport> transport;

  explicit ListenerState(asio::io_context& ioc) : acceptor(ioc.get_executor()) {}
};

// A bound, listening socket handed from the control thread to one worker.
struct ListenerSocket {
  std::string key, name;
  bool admin = false;
  bool v6 = false;
  int fd = -1;
};

// A connection's read buffer. Idle keep-alive connections hand theirs back to the worker's pool while they
// wait, so 10,000 idle connections do not pin 10,000 buffers.
inline constexpr std::size_t kReadBufferSize = 8 * 1024;

struct Shared {  // owned by the server; outlives every worker
  observe::Registry* registry = nullptr;
  std::atomic<bool>* ready = nullptr;
  std::atomic<bool>* stopping = nullptr;   // set by the control thread before STOPPING=1 and the drain posts
  observe::SpanExporter* exporter = nullptr;  // null: trace export off (observability.tracing.otlp_endpoint "")
  cache::Store* edge_cache = nullptr;         // null: no route caches (the store is node-wide, shared)
  class Coalescer* coalescer = nullptr;       // with edge_cache: concurrent misses for one key share a fetch
  struct RegionalNode* regional = nullptr;    // null: no regional tier (cache.regional absent)
  unsigned workers = 1;                       // how many workers share the node's database connection budget
};

class Worker {
 public:
  Worker(unsigned id, Shared shared);
  ~Worker();

  asio::io_context& io() noexcept { return ioc_; }
  unsigned id() const noexcept { return id_; }

  // Control thread → worker. `done(ok)` is invoked on the worker thread after the change is in place; ok is
  // false when a listener socket could not be adopted (logged; that socket is closed).
  void post_install(std::shared_ptr<const pipeline::Snapshot> snap, std::shared_ptr<observe::AccessLog> log,
                    std::vector<ListenerSocket> add, std::vector<std::string> remove, std::function<void(bool)> done);
  // Control thread → worker: listeners' TLS/HTTP/2 settings, posted before the post_install they belong with.
  void post_transports(std::shared_ptr<const Transports> t);
  // Stop accepting, close idle connections, let in-flight ones finish; `drained` runs (worker thread)
  // once no connection is left.
  void post_drain(std::function<void()> drained);
  void run();  // the thread's body

  // ---- used by connections (worker thread only) ----
  const std::shared_ptr<const pipeline::Snapshot>& snapshot() const noexcept { return snapshot_; }
  bool access_log_enabled() const noexcept { return access_log_ != nullptr; }
  observe::TraceContext new_trace() noexcept { return trace_ids_.next(); }
  bool tracing() const noexcept { return shared_.exporter != nullptr; }
  cache::Store* edge_cache() const noexcept { return shared_.edge_cache; }
  class Coalescer* coalescer() const noexcept { return shared_.coalescer; }
  // This worker's regional tier (its Redis client), or null when none is configured.
  class RegionalTier* regional() const noexcept { return regional_.get(); }
  std::size_t edge_cache_max_object() const noexcept { return snapshot_->config.cache.edge.max_object_bytes; }
  const observe::SamplingPolicy& sampling() const noexcept { return sampling_; }
  // Hands one request's sampled spans to the exporter (never waits); `spans` is left empty for reuse.
  void export_spans(std::vector<observe::Span>& spans) noexcept { shared_.exporter->submit(std::move(spans)); }
  std::vector<observe::Span>& span_scratch() noexcept { return spans_; }
  void log_access(const observe::AccessRecord& r) {
    if (const auto lost = access_log_->append(access_log_buffer_, r)) access_log_dropped_.inc(lost);
  }
  std::string_view date_line() const noexcept { return date_.line(); }
  std::chrono::steady_clock::time_point coarse_now() const noexcept { return now_; }
  // True from the moment the control thread decides to stop (so every response from then on carries
  // Connection: close), not only once this worker has handled its drain post.
  bool draining() const noexcept { return draining_ || shared_.stopping->load(std::memory_order_relaxed); }
  const admin::Context& admin_context() const noexcept { return admin_ctx_; }
  RouteSeries& route_series(ListenerState& l, const pipeline::Snapshot& s, std::uint32_t route_index);
  void count_parse_error(http::ParseError e) { parse_errors_[static_cast<std::size_t>(e)].inc(); }
  // Connection deadlines that expired, by phase: 0 idle, 1 header, 2 body, 3 write (Connection::Phase order).
  void count_timeout(unsigned phase) {
    if (phase < timeouts_.size()) timeouts_[phase].inc();
  }

  // This worker's pool for a cluster (created on first use; kept while the cluster state lives).
  // An exchange holds the pointer while it runs, so a reload cannot free the pool under it.
  std::shared_ptr<upstream::WorkerPool> upstream_pool(const pipeline::Cluster& c);
  // The shard router's pools (null while the config has no `databases:`).
  shard::Databases* databases() const noexcept { return databases_.get(); }
  class ShardMetrics& shard_metrics() noexcept { return *shard_metrics_; }
  // "1.1 <node name>" for Via headers (RFC 9110 §7.6.3); empty when proxy.via is off.
  std::string_view via() const noexcept { return via_; }
  // Scratch for endpoint selection (filled and consumed without suspending in between).
  std::vector<upstream::Candidate>& candidates() noexcept { return candidates_; }
  // An endpoint of `c` for the next try: the balancer's pick among the available ones not in `tried` (a bit
  // per endpoint index mod 64), or none.
  std::optional<std::uint32_t> pick_endpoint(const pipeline::Cluster& c, upstream::WorkerPool& pool, bool has_key,
                                             std::uint64_t key_hash, std::uint64_t tried);
  // Background edge-cache refreshes running on this worker (refresh.cpp) and their outcomes.
  unsigned& refreshes() noexcept { return refreshes_; }
  unsigned refreshes() const noexcept { return refreshes_; }
  void count_refresh(RefreshResult r) { refresh_results_[static_cast<std::size_t>(r)].inc(); }
  // An admin purge (kind: 0 path, 1 prefix, 2 tag) and the entries it removed or marked stale.
  void count_purge(unsigned kind, bool soft, std::size_t entries) {
    purges_[kind * 2 + soft].inc();
    purged_entries_.inc(entries);
  }

  std::unique_ptr<char[]> acquire_buffer();
  void release_buffer(std::unique_ptr<char[]> b);
  std::string acquire_scratch();          // a response-assembly string, with capacity when pooled
  void release_scratch(std::string s);

  // A counter of this worker's shard for per-connection events (TLS handshakes, protocols): registered on first
  // use and cached by name and labels. Not for per-request use (a map lookup).
  observe::CounterRef counter(std::string_view name, std::string_view help, const observe::Labels& labels);

  std::list<Connection*>::iterator attach(Connection* c);
  void detach(std::list<Connection*>::iterator it);
  std::list<H2Connection*>::iterator attach_h2(H2Connection* c);   // HTTP/2 connections: ticks and drain too
  void detach_h2(std::list<H2Connection*>::iterator it);

 private:
  bool install(std::shared_ptr<const pipeline::Snapshot> snap, std::shared_ptr<observe::AccessLog> log,
               std::vector<ListenerSocket> add, const std::vector<std::string>& remove);
  bool adopt(ListenerSocket s);
  void tick();
  void sweep_pools();
  void check_drained();

  unsigned id_;
  Shared shared_;
  observe::Shard shard_;
  admin::Context admin_ctx_;
  std::shared_ptr<const pipeline::Snapshot> snapshot_;
  std::shared_ptr<observe::AccessLog> access_log_;
  observe::AccessLogBuffer access_log_buffer_;
  observe::TraceIdGenerator trace_ids_;  // handed over on the tick, on a log switch and at exit
  std::list<std::shared_ptr<ListenerState>> listeners_;
  std::list<Connection*> connections_;
  std::list<H2Connection*> h2_connections_;
  std::vector<std::unique_ptr<char[]>> free_buffers_;  // kReadBufferSize each, at most kMaxPooledBuffers
  std::vector<std::string> free_scratch_;
  std::array<observe::CounterRef, http::kParseErrorCount> parse_errors_;
  std::array<observe::CounterRef, 4> timeouts_;
  observe::CounterRef access_log_dropped_;
  std::array<observe::CounterRef, kRefreshResults> refresh_results_;
  std::array<observe::CounterRef, 6> purges_;
  observe::CounterRef purged_entries_;
  unsigned refreshes_ = 0;
  std::array<std::atomic<std::uint64_t>, 4> discard_cells_{};  // series that could not be registered
  static constexpr std::array<std::uint64_t, 1> kDiscardBounds{0};
  void hand_over_access_log();
  core::DateLine date_;
  std::unordered_map<const upstream::ClusterState*, std::shared_ptr<upstream::WorkerPool>> pools_;
  std::unique_ptr<shard::Databases> databases_;  // closed on drain and in ~Worker, before ioc_ goes
  std::unique_ptr<class ShardMetrics> shard_metrics_;
  std::string via_;
  observe::SamplingPolicy sampling_;
  std::vector<observe::Span> spans_;
  std::vector<upstream::Candidate> candidates_;
  std::chrono::steady_clock::time_point now_;
  std::shared_ptr<const Transports> transports_;
  std::unordered_map<std::string, observe::CounterRef> counters_;
  bool draining_ = false;
  std::function<void()> drained_;
  std::unique_ptr<class RegionalTier> regional_;  // reset first in ~Worker (its sockets are ioc_'s)
  // Declared after the state above on purpose: destroying the io_context destroys suspended connection
  // coroutines, whose destructors still detach from connections_ and touch their listener state.
  asio::io_context ioc_;
  Timer ticker_;
};

}  // namespace virex::server
