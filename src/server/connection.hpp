// One HTTP/1.1 connection: a coroutine that reads into one reusable buffer, parses every complete
// request in it, gathers all their responses into one write (pipelining in order for free), and repeats.
// Owned by its coroutine; lives on its worker's thread; registered with the worker for timeouts and drain.
#pragma once

#include "client_stream.hpp"
#include "coalescer.hpp"
#include "query.hpp"
#include "worker.hpp"

#include <virex/http/h1_parser.hpp>
#include <virex/http/h1_response_parser.hpp>
#include <virex/observe/trace_context.hpp>
#include <virex/upstream/cluster.hpp>
#include <virex/upstream/pool.hpp>
#include <virex/cache/cache_status.hpp>
#include <virex/cache/store.hpp>

#include <boost/asio/awaitable.hpp>

#include <list>
#include <memory>
#include <string>
#include <vector>

namespace virex::server {

class Connection {
 public:
  Connection(Worker& w, std::shared_ptr<ListenerState> l, ClientStream s);
  ~Connection();

  // The connection's life. Suspends on socket I/O only; deletes `self` when it returns.
  static Awaitable<void> run(Connection* self);

  // Worker tick: enforce the current deadline (cancels the pending I/O; run() decides what to send).
  void on_tick(std::chrono::steady_clock::time_point now);
  // Worker drain: an idle connection closes now; a busy one closes after its current response.
  void on_drain();

 private:
  enum class Phase : std::uint8_t { idle, header, body, writing, linger, proxy };
  enum class Timeout : std::uint8_t { none, header, idle, body, write, linger, drain, proxy };
  // What a proxied request is waiting for, which decides the error a deadline maps to.
  enum class ProxyStage : std::uint8_t { connect, send, first_byte, response_body, client_body, tunnel };

  struct Pending {  // what the response to the request in progress needs, copied out of the read buffer
    const pipeline::CompiledRoute* route = nullptr;
    unsigned status = 0;                     // when no route: 404/405, or the admin endpoint's
    admin::Endpoint endpoint = admin::Endpoint::none;
    http::Method method = http::Method::other;
    int version = 11;
    bool keep_alive = true;
    bool expect_continue = false;
    bool continue_sent = false;
    std::uint64_t bytes_in = 0;
    std::chrono::steady_clock::time_point start;
    std::chrono::system_clock::time_point wall;
    std::string allow;
    bool has_trace = false;
    observe::TraceContext trace;  // incoming (parent id = the caller's span) or new
    bool has_parent = false;      // a valid traceparent came with the request
    bool head_sampled = false;    // the head sampling decision (the sampled flag sent upstream)
    std::array<std::uint8_t, 8> span_id{};     // this request's server span (trace export)
    struct UpstreamSpan {                      // the upstream exchange's client span, when there was one
      bool present = false;
      std::array<std::uint8_t, 8> span_id{};
      std::uint64_t start_ns = 0, end_ns = 0;  // unix ns
      unsigned status = 0;
      std::string_view cluster, endpoint, error;
      unsigned tries = 0;
    } up_span;
    std::string shards;                        // query routes: "id:role" per shard statement (access log)
    std::uint32_t cache_lookup_ns = 0;         // the edge-cache lookup's time, when trace export is on (its span)
    using DbSpan = QueryDbSpan;                // one shard statement of a query route (a client span each)
    std::vector<DbSpan> db_spans;
    char trace_id[32] = {};  // W3C trace id (hex) when tracing output is on (access log, response header)
    const upstream::EndpointState* upstream = nullptr;  // the last endpoint tried (access log)
    // Edge cache (a route with `cache:`): the entry a GET/HEAD is answered from, or the reason it went forward.
    std::shared_ptr<const cache::Entry> hit;
    bool not_modified = false;          // the hit is answered 304 (If-None-Match / If-Modified-Since)
    bool cacheable = false;             // a GET on a caching route that missed: relay_response may store it
    bool leader = false;                // this miss fetches for every concurrent miss of its key
    bool collapsed = false;             // this request waited on another's fetch (Cache-Status `collapsed`)
    // A stale entry still inside its stale-while-revalidate / stale-if-error window (RFC 5861 §4), or soft-
    // purged: served instead of an origin failure (error, timeout, 5xx). `serving_stale` marks that answer.
    std::shared_ptr<const cache::Entry> stale_fallback;
    bool serving_stale = false;
    bool stale_while_revalidate = false;  // the hit is stale, served while a background refresh runs (RFC 5861 §3)
    // A stale entry with validators the leader's fetch revalidates (RFC 9111 §4.3.1): set when the request had
    // no preconditions of its own; `revalidated`: the origin answered 304 and the freshened entry is served.
    std::shared_ptr<const cache::Entry> revalidate;
    bool revalidated = false;
    bool revalidated_stored = false;
    std::shared_ptr<Coalescer::Waiter> follower;  // set: wait for the leader before anything else
    cache::Forward fwd = cache::Forward::none;
    // Regional tier (regional_lookup.cpp): `lookup` once an edge miss leads its flight on a route with
    // regional_ttl; then what the Redis GET found. `regional_private`: a private-scope route (regional only).
    enum class Regional : std::uint8_t { none, lookup, hit, miss, error, timeout, skipped };
    Regional regional = Regional::none;
    bool regional_private = false;
    bool invalidate = false;              // an unsafe request through a caching route (RFC 9111 §4.4)
    std::int64_t regional_ttl_left = 0;   // seconds the regional copy had left (a regional hit's Cache-Status)
    struct RegionalSpan {                 // the Redis lookup's client span (trace export)
      bool present = false;
      std::array<std::uint8_t, 8> span_id{};
      std::uint64_t start_ns = 0, end_ns = 0;
    } regional_span;
    // POST /cache/purge on an admin listener: its credentials and JSON body (bounded by kMaxPurgeBody).
    std::string admin_auth, admin_body;
    bool admin_body_too_large = false;
    std::chrono::nanoseconds upstream_time{-1};
    std::string text;   // method, target, host, referer, user agent (access log), offsets below
    std::uint16_t off[6] = {};
  };

  struct Segment {  // one piece of the gathered write: a static range, or a range of scratch_
    const char* data;
    std::size_t offset;
    std::size_t size;
  };

  void process();
  void on_head();
  void on_complete();
  void on_error(http::ParseError e);
  void finish_request(unsigned status, std::size_t bytes_out, std::size_t body_bytes, std::string_view error);
  void log_access(unsigned status, std::size_t bytes_out, std::size_t body_bytes, std::string_view error,
                  std::chrono::nanoseconds duration);
  // Trace export: the request's spans, when the sampling rules keep it (head ratio, errors, slow requests).
  void export_spans(unsigned status, std::string_view error, std::chrono::nanoseconds duration);
  // Small static pieces are copied so that a typical batch of responses is one contiguous buffer (one
  // iovec); large bodies are sent by reference from the snapshot.
  void add_static(std::string_view s) {
    if (s.size() > kCopyLimit) {
      segments_.push_back({s.data(), 0, s.size()});
      return;
    }
    const std::size_t from = scratch_.size();
    scratch_.append(s);
    add_scratch(from);
  }
  void add_scratch(std::size_t from) {
    if (!segments_.empty() && !segments_.back().data && segments_.back().offset + segments_.back().size == from)
      segments_.back().size += scratch_.size() - from;
    else
      segments_.push_back({nullptr, from, scratch_.size() - from});
  }
  // Edge cache: look the request up (on_head) and answer a hit (on_complete); cache_status_line() renders the
  // Cache-Status field (RFC 9211) of a response through a caching route.
  void cache_lookup(const http::RequestHead& h);
  void answer_hit();
  void join_flight();
  // A follower of a coalesced miss (pending_.follower set): waits for the leader's fetch (woken when its flight
  // ends, or after the lock timeout), then looks the store up again. True: answered from the entry the leader
  // stored (the request is done); false: the caller fetches itself (and may now lead a new flight). Suspends on
  // the wait only; the request head must still be intact (a cacheable request has no body).
  Awaitable<bool> follow_flight();
  // The leader of a coalesced miss ends its flight however its fetch ends (an answer, an error response, an
  // exception, the coroutine destroyed at shutdown), waking the waiters. take() moves pending_.leader into the
  // guard (~Connection ends a flight no guard took).
  struct FlightGuard {
    Connection& c;
    bool lead = false;
    std::uint64_t hash = 0;
    std::string key;
    explicit FlightGuard(Connection& conn) : c(conn) { take(); }
    FlightGuard(const FlightGuard&) = delete;
    FlightGuard& operator=(const FlightGuard&) = delete;
    ~FlightGuard() {
      if (lead) c.worker_.coalescer()->finish(hash, key);
    }
    void take() {
      if (!c.pending_.leader || lead) return;
      c.pending_.leader = false;
      lead = true;
      hash = c.cache_hash_;
      key = c.cache_key_;
    }
  };
  void count_cache(CacheResult r);
  void append_cache_status(std::string& out, const cache::CacheStatus& cs);
  bool begin_store(const http::ResponseHead& rh, const cache::StoreDecision& d);
  // The admin purge API (purge.cpp): appends the whole response to `out`; returns its status.
  unsigned answer_purge(std::string& out, std::string_view date_line, http::ConnectionHeader conn);
  static constexpr std::size_t kMaxPurgeBody = 64 * 1024;
  void finish_store();
  // ---- regional tier (regional_lookup.cpp) ----
  // From cache_lookup(): marks a miss (the flight's leader, or a private route's request) for a Redis lookup.
  void regional_plan(const http::RequestHead& h, bool private_route);
  // The lookup, from proxy() before the origin: a hit fills the edge cache (public routes) and is answered here
  // (true); otherwise the request goes on to the origin (false). Suspends on the Redis reply (bounded by the
  // command timeout; the breaker may answer at once).
  Awaitable<bool> regional_lookup();
  // After an origin fetch that stored `e` (or would have, for a private route): the asynchronous SET … PX.
  void regional_store(const std::shared_ptr<const cache::Entry>& e);
  // The regional member of Cache-Status (RFC 9211 §2: the cache nearer the origin comes first), when there is one.
  void append_regional_status(std::string& out);
  std::string_view regional_log() const noexcept;   // "regional=hit" … for the access log; "" when none
  // A purge's regional part (the admin purge API, a write route's `invalidate:` list): regional copies deleted and
  // the invalidation published to every node. Returns "sent", "unavailable" (Redis down: other nodes do not hear
  // of it; the caller decides whether to log), or "" without a regional tier.
  std::string_view regional_purge(std::string_view kind, std::string_view what, std::string_view host, bool soft);
  // A write route's invalidation (`kind` tag, path or prefix; any host): as regional_purge(), and suspends until
  // Redis ran the purge (bounded by the command timeout), so that once the client hears of the write no worker of
  // this node can refill its edge from a regional copy the write made stale. False: not confirmed (no tier, Redis
  // unavailable, an error or a timeout).
  Awaitable<bool> regional_purge_confirmed(std::string kind, std::string what);
  // RFC 9111 §4.4: an unsafe request's target, noted from its head; invalidated on a non-error response, here
  // and (through the regional tier) on every node.
  void note_unsafe(const http::RequestHead& h);
  void invalidate_target(unsigned status);
  // A body slice for the next gathered write, chunk-framed when `chunked`; and the last-chunk marker.
  void add_body(std::string_view b, bool chunked);
  void add_last_chunk();
  static constexpr std::size_t kCopyLimit = 4096;
  http::ConnectionHeader connection_header();
  void set_deadline(Phase p);
  // Builds iov_ from segments_ (before a write) and accounts for the write (after it).
  void prepare_write();
  bool finish_write(const boost::system::error_code& ec, std::size_t n);
  Awaitable<void> linger();

  // ---- shard router (query.cpp) ----
  // The query route's request that process() stopped at (complete, body gathered): parameters bound, a
  // cacheable miss coalesced with concurrent ones and looked up in the regional tier, the statement run on one
  // shard or fanned out and merged, the JSON response queued (and stored in the edge and regional tiers, or a
  // write's invalidations purged there and on every node). Suspends on the flight's wait, Redis and the database
  // pools.
  Awaitable<void> query();
  void capture_query_args(const http::RequestHead& h, const pipeline::Match& m);
  void queue_query_response(unsigned status, std::string_view body, std::string_view extra, std::string_view error,
                            std::string_view content_type = {});

  // ---- reverse proxy (proxy.cpp) ----
  // The exchange for the request whose head process() stopped at: upstream tries (with retries), request body
  // streamed up, response streamed down, or an error response queued. Suspends on both sockets.
  Awaitable<void> proxy();
  void build_upstream_head(std::string& out, const http::RequestHead& h, std::string_view traceparent, bool websocket);
  // Stale-while-revalidate: hands the entry's refresh to a background fetch (refresh.cpp) when none runs.
  void start_refresh(const http::RequestHead& h, const std::shared_ptr<const cache::Entry>& e);
  struct Try;
  Awaitable<upstream::ProxyErrc> connect_upstream(Try& t);
  Awaitable<upstream::ProxyErrc> send_request(Try& t);
  Awaitable<upstream::ProxyErrc> read_response_head(Try& t);
  Awaitable<upstream::ProxyErrc> relay_response(Try& t);
  Awaitable<void> tunnel(Try& t);
  // The upstream answered 304 to the validators of pending_.revalidate: freshen the entry and answer from it.
  bool answer_revalidated(Try& t);
  // One direction of a tunnel: copies until EOF or error, then half-closes `to`.
  template <class From, class To>
  Awaitable<void> pump(From* from, To* to, char* buf, std::size_t cap, config::Duration idle);
  Awaitable<bool> read_client();
  bool make_upstream_room();        // more request bytes into buf_; false on EOF/error/timeout
  Awaitable<bool> write_client(std::span<const asio::const_buffer> b);
  void set_proxy_deadline(ProxyStage stage, config::Duration d);
  upstream::ProxyErrc timeout_error() const noexcept;
  void queue_proxy_error(upstream::ProxyErrc e, std::string_view details);
  const std::string& client_ip();
  bool idle_between_requests() noexcept;
  void trim();  // while waiting idle: return buffers and parser state to the worker's pools
  void release_upstream_buffers();

  Worker& worker_;
  std::shared_ptr<ListenerState> listener_;
  ClientStream socket_;   // the TCP socket, with TLS when the listener has tls:
  std::list<Connection*>::iterator self_;
  std::shared_ptr<const pipeline::Snapshot> snapshot_;
  http::H1RequestParser parser_;
  std::unique_ptr<char[]> buf_;
  std::size_t cap_ = 0, begin_ = 0, end_ = 0;
  Pending pending_;
  std::string scratch_;
  std::vector<Segment> segments_;
  std::vector<asio::const_buffer> iov_;
  std::string client_;                 // "ip:port", filled on first access-log line
  std::string trace_line_;             // "<tracing.response_header>: <trace id>\r\n" for the current response
  Phase phase_ = Phase::idle;
  Timeout timed_out_ = Timeout::none;
  bool close_after_write_ = false;
  bool linger_on_close_ = false;
  std::chrono::steady_clock::time_point deadline_;
  std::chrono::steady_clock::time_point header_start_;
  std::chrono::steady_clock::time_point batch_time_;   // when the last read completed
  Phase phase_before_write_ = Phase::idle;
  bool waiting_idle_ = false;                          // in the readiness wait between requests
  bool hot_idle_ = false;                              // in the buffered read between requests
  bool trim_due_ = false;                              // the tick asked the hot wait to go cold
  std::chrono::steady_clock::time_point idle_since_;

  // shard router state: what the query needs, copied out of the read buffer at the head
  bool query_pending_ = false;
  std::vector<std::pair<std::string, std::string>> q_captures_;   // path captures (name, value)
  std::string q_query_, q_host_, q_path_, q_body_, q_accept_;
  bool q_body_too_large_ = false;

  // reverse proxy state
  bool proxy_pending_ = false;          // process() stopped at the head of an upstream route's request
  bool abort_ = false;                  // close the client connection now (a response was cut short)
  ProxyStage proxy_stage_ = ProxyStage::connect;
  std::chrono::steady_clock::time_point request_deadline_;
  upstream::UpstreamConn* upstream_ = nullptr;   // the connection in use (on_tick cancels it)
  std::string up_head_;                 // the request head for the upstream
  std::string up_path_, up_extra_;      // its rewritten path; extra response header lines (reused buffers)
  std::unique_ptr<char[]> up_buf_;      // upstream read buffer (kReadBufferSize, grows for a big head)
  std::size_t up_cap_ = 0, up_begin_ = 0, up_end_ = 0;
  std::unique_ptr<http::H1ResponseParser> up_parser_;
  std::string client_ip_;
  std::string cache_key_, cache_variant_;   // the request's cache keys (reused buffers)
  std::string regional_key_;                // the Redis key of a planned regional lookup
  std::string unsafe_host_, unsafe_path_;   // an unsafe request's target (note_unsafe)
  std::uint64_t cache_hash_ = 0;
  std::vector<http::Header> vary_scratch_;  // the Vary names of an entry as header fields, for vary_key()
  std::vector<std::shared_ptr<const cache::Entry>> hold_;  // entries whose bytes the pending write references
  // A response being stored while it streams: its entry (head and metadata) and its body so far.
  std::string store_body_;
  std::shared_ptr<cache::Entry> pending_entry_;
  bool storing_ = false;
  int client_trusted_ = -1;             // -1 unknown, else whether the peer is in proxy.trusted_proxies
};

}  // namespace virex::server
