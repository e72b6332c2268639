// The reverse-proxy exchange of an HTTP/1.1 client connection (see connection.hpp): pick an endpoint, take a
// pooled connection or open one, send the rewritten head and stream the request body up, read the response
// head, retry idempotent requests on another endpoint when the budget allows, then stream the response down
// with backpressure (one buffer each way; a body of any size passes in bounded memory). WebSocket upgrades
// become a two-way tunnel after the 101. RFC 9110 §7.6 (intermediaries), RFC 9112 §6–7 (framing), RFC 9209
// (Proxy-Status), RFC 6455 §4 (upgrade). Runs on the connection's worker thread, inside its coroutine.
#include "connection.hpp"

#include "cache_fill.hpp"
#include "refresh.hpp"
#include "regional_tier.hpp"

#include <virex/http/text.hpp>
#include <virex/upstream/forward.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

namespace virex::server {
namespace {
constexpr auto token = asio::as_tuple(kUseAwaitable);
constexpr std::size_t kMaxUpstreamHead = 64 * 1024;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr auto kCoalesceTimeout = std::chrono::seconds(5);  // a waiter fetches itself after this
using upstream::ProxyErrc;

bool idempotent(http::Method m) noexcept {
  // RFC 9110 §9.2.2
  switch (m) {
    case http::Method::get:
    case http::Method::head:
    case http::Method::options:
    case http::Method::trace:
    case http::Method::put:
    case http::Method::delete_: return true;
    default: return false;
  }
}

// Failures that happened before the upstream could have acted on the request (or that it answered 502-504
// to): the only ones worth another endpoint.
bool retryable(ProxyErrc e) noexcept {
  return e == ProxyErrc::connection_refused || e == ProxyErrc::connection_timeout ||
         e == ProxyErrc::connection_terminated;
}

void append_hex(std::string& out, std::size_t n) {
  char tmp[20];
  int i = 0;
  do {
    tmp[i++] = "0123456789abcdef"[n & 15];
    n >>= 4;
  } while (n);
  while (i) out.push_back(tmp[--i]);
}
}  // namespace

void Connection::add_body(std::string_view b, bool chunked) {
  if (!chunked) return add_static(b);
  // RFC 9112 §7.1: chunk-size in hex, CRLF, data, CRLF.
  const std::size_t from = scratch_.size();
  append_hex(scratch_, b.size());
  scratch_.append("\r\n");
  add_scratch(from);
  add_static(b);
  const std::size_t tail = scratch_.size();
  scratch_.append("\r\n");
  add_scratch(tail);
}

void Connection::add_last_chunk() {
  const std::size_t from = scratch_.size();
  scratch_.append("0\r\n\r\n");
  add_scratch(from);
}

// Starts storing a response that decide() allows: the entry's head and metadata now; the body is gathered as it
// streams.
bool Connection::begin_store(const http::ResponseHead& rh, const cache::StoreDecision& d) {
  pending_entry_ = make_entry(parser_.head(), rh, d, *snapshot_, *pending_.route, cache_key_, worker_.via());
  store_body_.clear();
  return pending_entry_ != nullptr;
}

void Connection::finish_store() {
  storing_ = false;
  if (!pending_entry_) return;
  auto e = std::move(pending_entry_);
  seal(*e, std::move(store_body_));
  store_body_.clear();
  if (pending_.regional != Pending::Regional::none && pending_.regional != Pending::Regional::hit) regional_store(e);
  if (pending_.regional_private) return;  // per user: never in the shared edge cache
  worker_.edge_cache()->insert(std::move(e), cache_hash_);
}

Awaitable<bool> Connection::follow_flight() {
  // Another request for this key is at the origin (or the database): wait for it (woken the moment it ends, or
  // after the lock timeout), then answer from the store if it stored the response, else fetch like any miss.
  const auto w = std::move(pending_.follower);
  if (!w->woken) {
    Timer timer(worker_.io().get_executor());
    timer.expires_after(kCoalesceTimeout);
    w->timer = &timer;
    phase_ = Phase::proxy;
    deadline_ = worker_.coarse_now() + kCoalesceTimeout + std::chrono::seconds(1);
    co_await timer.async_wait(token);
    w->timer = nullptr;
  }
  pending_.collapsed = true;
  cache_lookup(parser_.head());  // the head is intact: nothing was read since
  pending_.collapsed = true;
  if (pending_.hit) {
    answer_hit();
    parser_.next();
    set_deadline(Phase::idle);
    co_return true;
  }
  pending_.follower.reset();  // no second wait: this one fetches (and may lead, if it joined a new flight)
  co_return false;
}

struct Connection::Try {
  const pipeline::Cluster* cluster = nullptr;
  upstream::WorkerPool* pool = nullptr;
  std::unique_ptr<upstream::UpstreamConn> conn;
  std::uint32_t endpoint = 0;
  bool reused = false;
  bool head_request = false;
  bool websocket = false;
  bool request_chunked = false;
  bool has_body = false;
  bool request_done = false;      // the whole request (head and body) has been sent upstream
  bool response_started = false;  // some byte of the response went to the client
  bool response_done = false;
  config::Duration first_byte{}, idle{};
  std::chrono::steady_clock::time_point sent_at;
  unsigned status = 0;
  std::uint64_t bytes_out = 0, body_bytes = 0;
  http::ParseError client_error = http::ParseError::none;
  std::string_view details;       // which circuit-breaker limit refused a connection
  bool client_gone = false;       // the client closed or stalled while sending its body
};

const std::string& Connection::client_ip() {
  if (client_ip_.empty()) {
    boost::system::error_code ec;
    const auto ep = socket_.remote_endpoint(ec);
    if (ec) {
      client_ip_ = "unknown";
    } else {
      auto a = ep.address();
      if (a.is_v6() && a.to_v6().is_v4_mapped()) a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
      client_ip_ = a.to_string();
    }
  }
  return client_ip_;
}

void Connection::set_proxy_deadline(ProxyStage stage, config::Duration d) {
  proxy_stage_ = stage;
  phase_ = Phase::proxy;
  deadline_ = std::min(worker_.coarse_now() + d, request_deadline_);
}

ProxyErrc Connection::timeout_error() const noexcept {
  const bool whole_request = worker_.coarse_now() >= request_deadline_;
  switch (proxy_stage_) {
    case ProxyStage::connect: return whole_request ? ProxyErrc::http_response_timeout : ProxyErrc::connection_timeout;
    case ProxyStage::first_byte: return ProxyErrc::http_response_timeout;
    case ProxyStage::client_body: return ProxyErrc::http_request_error;
    default: return ProxyErrc::connection_read_timeout;
  }
}

void Connection::queue_proxy_error(ProxyErrc e, std::string_view details) {
  // RFC 9209 §2: Proxy-Status names this proxy and the error; the body says it in words.
  const unsigned status = upstream::status_of(e);
  std::string extra = "Proxy-Status: virex-edge; error=";
  extra.append(upstream::to_string(e));
  if (!details.empty()) extra.append("; details=\"").append(details).append("\"");
  extra.append("\r\n").append(trace_line_);
  std::string body(upstream::to_string(e));
  body.push_back('\n');
  const std::size_t from = scratch_.size();
  http::append_simple_response(scratch_, status, worker_.date_line(), body, connection_header(),
                               pending_.method == http::Method::head, extra);
  add_scratch(from);
  const std::size_t n = scratch_.size() - from;
  finish_request(status, n, pending_.method == http::Method::head ? 0 : body.size(), upstream::to_string(e));
}

Awaitable<bool> Connection::write_client(std::span<const asio::const_buffer> b) {
  auto [ec, n] = co_await socket_.async_write(b, token);
  listener_->bytes_out.inc(n);
  co_return !ec;
}

Awaitable<bool> Connection::read_client() {
  if (begin_ == end_) {
    begin_ = end_ = 0;
  } else if (begin_ > 0) {
    std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == cap_) co_return false;  // cannot happen while a body streams (the codec consumes it)
  auto [ec, n] = co_await socket_.async_read_some(asio::buffer(buf_.get() + end_, cap_ - end_), token);
  if (ec) co_return false;
  end_ += n;
  listener_->bytes_in.inc(n);
  co_return true;
}

// Unconsumed upstream bytes to the front; when they fill the buffer (a head, or one chunk-size or trailer line,
// longer than it), grow it up to kMaxUpstreamHead. False past that: never read into no room (a zero-byte read
// completes at once and would spin).
bool Connection::make_upstream_room() {
  if (up_begin_ == up_end_) {
    up_begin_ = up_end_ = 0;
  } else if (up_begin_ > 0) {
    std::memmove(up_buf_.get(), up_buf_.get() + up_begin_, up_end_ - up_begin_);
    up_end_ -= up_begin_;
    up_begin_ = 0;
  }
  if (up_end_ < up_cap_) return true;
  if (up_cap_ >= kMaxUpstreamHead) return false;
  std::unique_ptr<char[]> nbuf(new char[up_cap_ * 2]);
  std::memcpy(nbuf.get(), up_buf_.get(), up_end_);
  up_buf_ = std::move(nbuf);
  up_cap_ *= 2;
  return true;
}

Awaitable<ProxyErrc> Connection::connect_upstream(Try& t) {
  upstream::WorkerPool& pool = *t.pool;
  upstream::ClusterState& st = pool.state();
  const config::Upstream& cfg = *t.cluster->config;
  t.conn = pool.take_idle(t.endpoint, worker_.coarse_now());
  if (t.conn) {
    t.reused = true;
    pool.series().reused.inc();
    co_return ProxyErrc::none;
  }
  t.reused = false;
  core::tcp::endpoint addr;
  if (!pool.address(t.endpoint, addr)) co_return ProxyErrc::destination_unavailable;
  if (!st.try_acquire(st.pending, cfg.limits.max_pending)) {
    pool.series().rejected[1].inc();
    t.details = "max_pending";
    co_return ProxyErrc::connection_limit_reached;
  }
  struct PendingSlot {
    upstream::ClusterState& st;
    ~PendingSlot() { st.pending.fetch_sub(1, std::memory_order_relaxed); }
  } slot{st};
  t.conn = pool.open(t.endpoint, cfg.limits.max_connections);
  if (!t.conn) {
    pool.series().rejected[0].inc();
    t.details = "max_connections";
    co_return ProxyErrc::connection_limit_reached;
  }
  upstream_ = t.conn.get();
  set_proxy_deadline(ProxyStage::connect, cfg.timeouts.connect);
  auto [ec] = co_await t.conn->socket.async_connect(addr, token);
  if (ec) {
    if (timed_out_ == Timeout::proxy) co_return timeout_error();
    co_return ProxyErrc::connection_refused;
  }
  boost::system::error_code ignored;
  t.conn->socket.set_option(core::tcp::no_delay(true), ignored);
  co_return ProxyErrc::none;
}

// Sends the head and the request body (decoded by the client codec; re-chunked when the client chunked it),
// reading more from the client as the upstream takes it: one buffer's worth in flight, never more.
Awaitable<ProxyErrc> Connection::send_request(Try& t) {
  upstream_ = t.conn.get();
  ++t.conn->requests;
  t.pool->endpoint_series(t.endpoint).requests.inc();
  segments_.clear();
  scratch_.clear();
  segments_.push_back({up_head_.data(), 0, up_head_.size()});
  bool done = !t.has_body;
  bool continue_due = pending_.expect_continue && !pending_.continue_sent;
  for (;;) {
    while (!done) {
      const auto r = parser_.feed(std::string_view(buf_.get() + begin_, end_ - begin_));
      begin_ += r.consumed;
      using E = http::H1RequestParser::Event;
      if (r.event == E::body) {
        const std::string_view b = parser_.body();
        pending_.bytes_in += b.size();
        add_body(b, t.request_chunked);
        continue;
      }
      if (r.event == E::complete) {
        if (t.request_chunked) add_last_chunk();
        done = true;
        break;
      }
      if (r.event == E::error) {
        t.client_error = parser_.error();
        co_return ProxyErrc::http_request_error;
      }
      break;  // need_more
    }
    if (!segments_.empty()) {
      iov_.clear();
      for (const Segment& s : segments_) iov_.emplace_back(s.data ? s.data : scratch_.data() + s.offset, s.size);
      set_proxy_deadline(ProxyStage::send, t.idle);
      auto [ec, n] = co_await asio::async_write(t.conn->socket, iov_, token);
      segments_.clear();
      scratch_.clear();
      if (ec) co_return timed_out_ == Timeout::proxy ? timeout_error() : ProxyErrc::connection_terminated;
    }
    if (done) break;
    if (continue_due) {
      // RFC 9110 §10.1.1: the client waits for this before sending its body; the upstream never sees Expect
      // answered twice because we send the body whether or not it asked.
      continue_due = false;
      pending_.continue_sent = true;
      const asio::const_buffer b(kContinue.data(), kContinue.size());
      set_proxy_deadline(ProxyStage::client_body, t.idle);
      if (!co_await write_client(std::span(&b, 1))) {
        t.client_gone = true;
        co_return ProxyErrc::http_request_error;
      }
    }
    set_proxy_deadline(ProxyStage::client_body, snapshot_->config.limits.idle_timeout);
    if (!co_await read_client()) {
      t.client_gone = true;
      co_return ProxyErrc::http_request_error;
    }
  }
  t.request_done = true;
  t.sent_at = std::chrono::steady_clock::now();
  co_return ProxyErrc::none;
}

Awaitable<ProxyErrc> Connection::read_response_head(Try& t) {
  if (!up_parser_) up_parser_ = std::make_unique<http::H1ResponseParser>();
  if (!up_buf_) {
    up_buf_ = worker_.acquire_buffer();
    up_cap_ = kReadBufferSize;
  }
  http::H1ResponseParser& p = *up_parser_;
  p.next();
  p.set_head_request(t.head_request);
  up_begin_ = up_end_ = 0;
  set_proxy_deadline(ProxyStage::first_byte, t.first_byte);
  for (;;) {
    while (up_begin_ < up_end_ || p.in_message()) {
      const auto r = p.feed(std::string_view(up_buf_.get() + up_begin_, up_end_ - up_begin_));
      up_begin_ += r.consumed;
      using E = http::H1ResponseParser::Event;
      if (r.event == E::head) {
        const unsigned status = p.head().status;
        if (status >= 200 || status == 101) co_return ProxyErrc::none;
        continue;  // 1xx interim (RFC 9110 §15.2): dropped; `complete` follows
      }
      if (r.event == E::complete) {  // of a 1xx
        p.next();
        p.set_head_request(t.head_request);
        continue;
      }
      if (r.event == E::error) co_return ProxyErrc::http_protocol_error;
      break;  // need_more
    }
    if (!make_upstream_room()) co_return ProxyErrc::http_protocol_error;
    // A plain async read, not a readiness wait + read: Asio's async_wait re-arms epoll (one epoll_ctl per
    // call), while a read after an exhausted read skips the speculative recv and costs no syscall until ready.
    auto [ec, n] = co_await t.conn->socket.async_read_some(asio::buffer(up_buf_.get() + up_end_, up_cap_ - up_end_), token);
    if (ec) {
      if (timed_out_ == Timeout::proxy) co_return timeout_error();
      co_return ProxyErrc::connection_terminated;  // closed or reset before a complete head
    }
    up_end_ += n;
  }
}

// Streams the response to the client: head (+ the first body bytes) in one write, then one write per upstream
// read. A body the client must get chunked (or close-delimited) is re-framed here.
Awaitable<ProxyErrc> Connection::relay_response(Try& t) {
  http::H1ResponseParser& p = *up_parser_;
  const bool close_before = close_after_write_;
  const http::ResponseHead& rh = p.head();
  t.status = rh.status;
  segments_.clear();
  scratch_.clear();
  std::string& extra = up_extra_;  // reused: no allocation per response once warm
  extra.assign(trace_line_);
  if (rh.header("Date").empty()) extra.append(worker_.date_line());  // RFC 9110 §6.6.1
  const pipeline::CompiledRoute& route = *pending_.route;
  if (pending_.invalidate) invalidate_target(rh.status);
  storing_ = false;
  if (route.cache && worker_.edge_cache()) {
    // RFC 9111 §3: may this response be stored? The request head is still intact (a cacheable request has no
    // body, so the client buffer has not moved).
    cache::CacheStatus cs;
    cs.fwd = pending_.fwd == cache::Forward::none ? cache::Forward::miss : pending_.fwd;
    cs.fwd_status = rh.status;
    if (pending_.cacheable && !rh.no_body && !rh.until_close) {
      cache::RoutePolicy policy = route.cache_policy;
      if (pending_.regional_private) policy.private_scope = false, policy.per_user = true;  // per user, regional only
      const auto d = cache::decide(parser_.head(), rh, policy, std::time(nullptr));
      if (d.store && (!rh.content_length || *rh.content_length <= worker_.edge_cache_max_object())) {
        storing_ = begin_store(rh, d);
        cs.stored = storing_;
        if (storing_) cs.ttl = d.ttl.count();
      }
    }
    append_cache_status(extra, cs);
  }
  upstream::ResponseForward f;
  f.client_version = pending_.version;
  f.head_request = t.head_request;
  f.websocket = t.websocket;
  f.via = worker_.via();
  f.extra = extra;
  const upstream::ResponseFraming framing = upstream::append_response_head(scratch_, rh, f);
  if (framing.close_delimited) close_after_write_ = true;
  http::append_tail(scratch_, {}, rh.status == 101 ? http::ConnectionHeader::none : connection_header());
  const bool upstream_keep_alive = rh.keep_alive;
  add_scratch(0);
  bool done = false;
  ProxyErrc err = ProxyErrc::none;
  for (;;) {
    while (!done) {
      const auto r = p.feed(std::string_view(up_buf_.get() + up_begin_, up_end_ - up_begin_));
      up_begin_ += r.consumed;
      using E = http::H1ResponseParser::Event;
      if (r.event == E::body) {
        const std::string_view b = p.body();
        t.body_bytes += b.size();
        if (storing_) {
          if (store_body_.size() + b.size() > worker_.edge_cache_max_object()) storing_ = false;  // too big: pass on
          else store_body_.append(b);
        }
        add_body(b, framing.chunked);
        continue;
      }
      if (r.event == E::complete) {
        if (framing.chunked) add_last_chunk();
        // Stored before the last bytes go out: a client that reads the response and asks again at once (on any
        // worker) finds the entry.
        if (storing_) finish_store();
        done = true;
        break;
      }
      if (r.event == E::error) {
        err = ProxyErrc::http_protocol_error;
        done = true;
      }
      break;  // need_more
    }
    if (err != ProxyErrc::none && !t.response_started) {
      close_after_write_ = close_before;  // nothing sent: the caller answers 502 (and clears what was queued)
      co_return err;
    }
    if (!segments_.empty()) {
      iov_.clear();
      std::size_t n = 0;
      for (const Segment& s : segments_) {
        iov_.emplace_back(s.data ? s.data : scratch_.data() + s.offset, s.size);
        n += s.size;
      }
      set_proxy_deadline(ProxyStage::response_body, t.idle);
      auto [ec, wn] = co_await socket_.async_write(iov_, token);
      listener_->bytes_out.inc(wn);
      segments_.clear();
      scratch_.clear();
      t.bytes_out += wn;
      t.response_started = true;
      if (ec) {
        t.client_gone = true;
        co_return ProxyErrc::none;  // the client left: nothing to tell it
      }
    }
    if (err != ProxyErrc::none) co_return err;
    if (done) break;
    if (!make_upstream_room()) co_return ProxyErrc::http_protocol_error;
    set_proxy_deadline(ProxyStage::response_body, t.idle);
    auto [ec, n] = co_await t.conn->socket.async_read_some(asio::buffer(up_buf_.get() + up_end_, up_cap_ - up_end_), token);
    if (ec == asio::error::eof) {
      const auto r = p.feed_eof();
      if (r.event == http::H1ResponseParser::Event::complete) {
        done = true;
        if (framing.chunked) add_last_chunk();
        if (storing_) finish_store();
        continue;  // write the terminal chunk, if any
      }
      co_return ProxyErrc::http_response_incomplete;
    }
    if (ec) co_return timed_out_ == Timeout::proxy ? timeout_error() : ProxyErrc::http_response_incomplete;
    up_end_ += n;
  }
  t.response_done = true;
  if (t.status == 101) co_return ProxyErrc::none;  // the socket becomes the tunnel's
  // Reuse only a connection whose response ended exactly where the next one would start (RFC 9112 §9.3).
  const bool reusable = upstream_keep_alive && !p.head().until_close && up_begin_ == up_end_;
  upstream_ = nullptr;
  t.pool->release(std::move(t.conn), reusable, t.cluster->config->pool, std::chrono::steady_clock::now());
  co_return ProxyErrc::none;
}

// RFC 6455 §4: after the 101, bytes flow both ways until either side closes; each direction half-closes the
// other when it ends. The deadline is the cluster's idle timeout, refreshed by traffic either way.
Awaitable<void> Connection::tunnel(Try& t) {
  using namespace boost::asio::experimental::awaitable_operators;
  // Bytes that came with the 101 (upstream) or after the upgrade request (client) go first.
  if (up_begin_ < up_end_) {
    const asio::const_buffer b(up_buf_.get() + up_begin_, up_end_ - up_begin_);
    if (!co_await write_client(std::span(&b, 1))) co_return;
  }
  if (begin_ < end_) {
    auto [ec, n] = co_await asio::async_write(t.conn->socket, asio::buffer(buf_.get() + begin_, end_ - begin_), token);
    if (ec) co_return;
  }
  begin_ = end_ = 0;
  set_proxy_deadline(ProxyStage::tunnel, t.idle);
  co_await (pump(&socket_, &t.conn->socket, buf_.get(), cap_, t.idle) &&
            pump(&t.conn->socket, &socket_, up_buf_.get(), up_cap_, t.idle));
}

template <class From, class To>
Awaitable<void> Connection::pump(From* from, To* to, char* buf, std::size_t cap, config::Duration idle) {
  for (;;) {
    auto [ec, n] = co_await from->async_read_some(asio::buffer(buf, cap), token);
    if (ec) break;
    set_proxy_deadline(ProxyStage::tunnel, idle);
    boost::system::error_code wec;
    if constexpr (std::is_same_v<To, ClientStream>) wec = std::get<0>(co_await to->async_write(asio::const_buffer(buf, n), token));
    else wec = std::get<0>(co_await asio::async_write(*to, asio::buffer(buf, n), token));
    if (wec) break;
  }
  boost::system::error_code ignored;
  to->shutdown(core::Socket::shutdown_send, ignored);
}

// The request head for the route's upstream: the rewritten path (strip_prefix / add_prefix), forwarding
// headers (X-Forwarded-*, Via, Host override) and `traceparent` when non-empty.
void Connection::build_upstream_head(std::string& out, const http::RequestHead& h, std::string_view traceparent,
                                     bool websocket) {
  const config::RouteUpstream& ru = *pending_.route->upstream;
  const config::Upstream& cfg = *snapshot_->clusters[pending_.route->cluster].config;
  std::string& path = up_path_;  // reused across requests on this connection
  upstream::rewrite_path(path, h.path, ru.strip_prefix, ru.add_prefix);
  upstream::RequestForward f;
  f.path = path;
  f.query = h.query;
  f.client_addr = client_ip();
  f.client_trusted = !snapshot_->config.proxy.trusted_proxies.empty() &&
                     upstream::is_trusted(snapshot_->config.proxy.trusted_proxies, f.client_addr);
  f.host_override = cfg.host_header;
  f.via = worker_.via();
  f.websocket = websocket;
  f.traceparent = traceparent;
  out.clear();
  upstream::append_request_head(out, h, f);
}

// RFC 9111 §4.3.3–§4.3.4: the origin confirmed the stored response. Its header fields are updated from the 304,
// its freshness computed anew, the entry replaced (when still storable) and the client answered from it. False
// when the 304 cannot be used (then it is relayed like any response).
bool Connection::answer_revalidated(Try& t) {
  http::H1ResponseParser& p = *up_parser_;
  cache::StoreDecision d;
  auto fresh = freshen(*pending_.revalidate, p.head(), parser_.head(), *snapshot_, *pending_.route,
                       std::time(nullptr), d);
  if (!fresh) return false;
  // The 304 ends at its head: the connection is reusable when nothing follows it.
  const auto r = p.feed(std::string_view(up_buf_.get() + up_begin_, up_end_ - up_begin_));
  up_begin_ += r.consumed;
  const bool reusable = r.event == http::H1ResponseParser::Event::complete && p.head().keep_alive && up_begin_ == up_end_;
  // Only the response decides: when it may no longer be stored, the stale entry goes (if it is still the one
  // resident); an admission refusal removes nothing more than insert() already did.
  if (d.store) {
    if (pending_.regional == Pending::Regional::miss) regional_store(fresh);  // the region's copy is older
    pending_.revalidated_stored = worker_.edge_cache()->insert(fresh, cache_hash_);
  }
  else worker_.edge_cache()->erase(cache_key_, cache_hash_, pending_.revalidate.get());
  upstream_ = nullptr;
  t.pool->release(std::move(t.conn), reusable, t.cluster->config->pool, std::chrono::steady_clock::now());
  segments_.clear();
  scratch_.clear();
  count_cache(CacheResult::revalidated);
  pending_.revalidated = true;
  pending_.stale_fallback.reset();
  pending_.not_modified = cache::not_modified(parser_.head(), fresh->etag, fresh->last_modified, std::time(nullptr));
  pending_.hit = std::move(fresh);
  answer_hit();
  return true;
}

// A background refresh of `e` for this (plain, GET) request: its head, sent with the entry's validators.
void Connection::start_refresh(const http::RequestHead& h, const std::shared_ptr<const cache::Entry>& e) {
  auto job = std::make_unique<RefreshJob>();
  job->snapshot = snapshot_;
  job->route = pending_.route;
  job->stale = e;
  job->request.assign(h.method_text.data(), h.head_bytes);
  job->key = cache_key_;
  job->hash = cache_hash_;
  build_upstream_head(job->upstream_head, h, {}, false);
  job->conditional = add_validators(job->upstream_head, *e);
  const config::RouteCache& rc = *pending_.route->cache;
  if (RegionalTier* tier = worker_.regional(); tier && rc.regional_ttl) {
    job->regional_key = tier->entry_key(cache_hash_);
    job->regional_ttl = *rc.regional_ttl;
  }
  server::start_refresh(worker_, std::move(job));
}

Awaitable<void> Connection::proxy() {
  proxy_pending_ = false;
  timed_out_ = Timeout::none;
  // Whatever ends the exchange, a deadline it hit must not outlive it (linger, drain and the idle wait all
  // look at timed_out_), and nothing it had queued (the upstream head, a response cut short before its first
  // write) may reach the client ahead of an error response.
  struct ExitGuard {
    Connection& c;
    ~ExitGuard() {
      if (!c.abort_) c.timed_out_ = Timeout::none;
      c.upstream_ = nullptr;
    }
  } exit_guard{*this};
  const pipeline::CompiledRoute& route = *pending_.route;
  const config::RouteUpstream& ru = *route.upstream;
  const pipeline::Cluster& cl = snapshot_->clusters[route.cluster];
  const config::Upstream& cfg = *cl.config;
  // Held for the whole exchange: a reload may drop the cluster while this request backs off between tries.
  const std::shared_ptr<upstream::WorkerPool> pool_hold = worker_.upstream_pool(cl);
  upstream::WorkerPool& pool = *pool_hold;
  upstream::ClusterState& st = *cl.state;
  const http::RequestHead& h = parser_.head();
  request_deadline_ = ru.request ? worker_.coarse_now() + *ru.request
                      : cfg.timeouts.request ? worker_.coarse_now() + *cfg.timeouts.request
                                             : std::chrono::steady_clock::time_point::max();

  Try t;
  t.cluster = &cl;
  t.pool = &pool;
  t.head_request = h.method == http::Method::head;
  t.websocket = upstream::wants_websocket(h);
  t.request_chunked = h.chunked;
  t.has_body = h.has_body();
  t.first_byte = ru.first_byte.value_or(cfg.timeouts.first_byte);
  t.idle = ru.idle.value_or(cfg.timeouts.idle);

  // W3C Trace Context §3.2: same trace id; as the parent, the id of this exchange's client span; sampled when
  // the caller's trace is or this node's head sampling keeps it.
  char traceparent[55];
  std::string_view tp;
  auto& up_span = pending_.up_span;
  up_span = {};
  up_span.present = true;
  up_span.cluster = cfg.name;
  up_span.start_ns = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                    std::chrono::system_clock::now().time_since_epoch()).count());
  if (pending_.has_trace) {
    static constexpr char kHex[] = "0123456789abcdef";
    const auto span = worker_.new_trace().parent_id;
    up_span.span_id = span;
    const std::uint8_t flags = static_cast<std::uint8_t>((pending_.trace.flags & ~1u) |
                                                         (pending_.head_sampled || (pending_.trace.flags & 1) ? 1 : 0));
    std::memcpy(traceparent, "00-", 3);
    std::memcpy(traceparent + 3, pending_.trace_id, 32);
    traceparent[35] = '-';
    for (std::size_t i = 0; i < span.size(); ++i) {
      traceparent[36 + 2 * i] = kHex[span[i] >> 4];
      traceparent[37 + 2 * i] = kHex[span[i] & 15];
    }
    traceparent[52] = '-';
    traceparent[53] = kHex[flags >> 4];
    traceparent[54] = kHex[flags & 15];
    tp = std::string_view(traceparent, sizeof traceparent);
  }
  // The head for the upstream is built now, while the head's views into buf_ are valid.
  build_upstream_head(up_head_, h, tp, t.websocket);
  std::uint64_t key_hash = 0;
  bool has_key = false;
  if (cfg.balance == config::Balance::consistent_hash) {
    const std::string_view key = upstream::hash_input(h, cfg.hash_on, cfg.hash_key);
    has_key = !key.empty();
    if (has_key) key_hash = upstream::hash_key(key);
  }
  if (!t.has_body) {
    // Let the codec complete the bodiless request now: whatever follows in buf_ is the next request (or, after
    // an upgrade, tunnel bytes), and error paths below can tell a fully read request from a partly read one.
    const auto r = parser_.feed(std::string_view(buf_.get() + begin_, end_ - begin_));
    begin_ += r.consumed;
  }
  if (pending_.follower) {
    if (co_await follow_flight()) co_return;
  }
  // RFC 9111 §4.3.1: a stale entry with validators is revalidated rather than refetched (cache_lookup() set it
  // only for a plain request, and a follower's second lookup set it anew).
  if (pending_.revalidate && !add_validators(up_head_, *pending_.revalidate)) pending_.revalidate.reset();
  FlightGuard flight(*this);  // the leader's flight ends with this exchange, however it ends
  // The region before the origin (the leader only: its followers find the edge filled when the flight ends).
  if (pending_.regional == Pending::Regional::lookup) {
    if (co_await regional_lookup()) co_return;
    // The upstream exchange (and its client span) starts now, after the regional round trip.
    up_span.start_ns = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                      std::chrono::system_clock::now().time_since_epoch()).count());
  }
  // Safe to send again to another endpoint: idempotent, no body (it streamed from the client and is gone),
  // not an upgrade.
  const bool may_retry = idempotent(h.method) && !t.has_body && !t.websocket;

  if (!st.try_acquire(st.requests, cfg.limits.max_requests)) {
    pool.series().rejected[2].inc();
    pool.series().errors[static_cast<std::size_t>(ProxyErrc::connection_limit_reached)].inc();
    if (parser_.in_message()) pending_.keep_alive = false, linger_on_close_ = true;
    queue_proxy_error(ProxyErrc::connection_limit_reached, "max_requests");
    if (!parser_.in_message()) parser_.next();
    set_deadline(Phase::idle);
    co_return;
  }
  struct RequestSlot {
    upstream::ClusterState& st;
    ~RequestSlot() { st.requests.fetch_sub(1, std::memory_order_relaxed); }
  } request_slot{st};

  // Slots of shared counters are RAII: an exception or the coroutine's destruction at shutdown must not leak
  // them (ClusterState outlives reloads).
  struct RetrySlot {
    upstream::ClusterState& st;
    bool held = false;
    ~RetrySlot() {
      if (held) st.retries.fetch_sub(1, std::memory_order_relaxed);
    }
  } retry_slot{st};
  // Requests in flight to the endpoint (least_request) until the response is relayed or the tunnel ends.
  struct Active {
    upstream::EndpointState* e = nullptr;
    void set(upstream::EndpointState* n) {
      if (e) e->active.fetch_sub(1, std::memory_order_relaxed);
      e = n;
      if (e) e->active.fetch_add(1, std::memory_order_relaxed);
    }
    ~Active() { set(nullptr); }
  } active;
  std::uint64_t tried = 0;
  bool stale_retried = false;
  ProxyErrc err = ProxyErrc::none;
  std::string_view details;
  for (unsigned attempt = 0;; ++attempt) {
    // ---- pick ----
    const auto pick = worker_.pick_endpoint(cl, pool, has_key, key_hash, tried);
    if (!pick) {
      err = ProxyErrc::destination_unavailable;
      details = "no healthy endpoint";
      pool.series().errors[static_cast<std::size_t>(err)].inc();
      break;
    }
    t.endpoint = *pick;
    tried |= 1ULL << (t.endpoint % 64);
    upstream::EndpointState& ep = st.endpoint(t.endpoint);
    active.set(&ep);

    // ---- one try ----
    timed_out_ = Timeout::none;
    err = co_await connect_upstream(t);
    if (err == ProxyErrc::none) err = co_await send_request(t);
    if (err == ProxyErrc::none) err = co_await read_response_head(t);
    // RFC 9110 §15.2.2: 101 only answers an Upgrade we forwarded.
    if (err == ProxyErrc::none && up_parser_->head().status == 101 && !t.websocket) err = ProxyErrc::http_protocol_error;
    const auto outcome_time = std::chrono::steady_clock::now();
    pending_.upstream = &ep;
    up_span.endpoint = ep.name;
    ++up_span.tries;
    up_span.error = err == ProxyErrc::none ? std::string_view{} : upstream::to_string(err);
    up_span.status = err == ProxyErrc::none ? up_parser_->head().status : 0;
    if (err == ProxyErrc::http_request_error) break;  // the client's fault: no outcome for the endpoint
    if (err == ProxyErrc::connection_limit_reached || err == ProxyErrc::destination_unavailable) {
      details = err == ProxyErrc::connection_limit_reached ? t.details : std::string_view("no address");
      pool.series().errors[static_cast<std::size_t>(err)].inc();
      break;
    }
    // A pooled connection the upstream closed just as we sent: the request never reached a live peer and the
    // endpoint is not to blame; a fresh connection gets one free try (one: an upstream that dies on this very
    // request must not be hit again and again).
    const bool stale = err == ProxyErrc::connection_terminated && t.reused && may_retry && !stale_retried;
    using O = upstream::ClusterState::Outcome;
    if (stale) {
      stale_retried = true;
    } else if (err != ProxyErrc::none) {
      pool.series().errors[static_cast<std::size_t>(err)].inc();
      if (st.record(t.endpoint, O::failure, cfg.outlier, outcome_time)) pool.endpoint_series(t.endpoint).ejections.inc();
    } else {
      const unsigned status = up_parser_->head().status;
      pending_.upstream_time = std::chrono::duration_cast<std::chrono::nanoseconds>(outcome_time - t.sent_at);
      pool.series().response_time.observe(static_cast<std::uint64_t>(pending_.upstream_time.count()));
      pool.endpoint_series(t.endpoint).responses[std::min(status / 100, 5u) - 1].inc();
      if (st.record(t.endpoint, status >= 500 ? O::status_5xx : O::success, cfg.outlier, outcome_time))
        pool.endpoint_series(t.endpoint).ejections.inc();
    }
    const bool retry_status = err == ProxyErrc::none && !t.websocket &&
                              (t.status = up_parser_->head().status, t.status == 502 || t.status == 503 || t.status == 504);
    if (may_retry && (retryable(err) || retry_status) && (stale || attempt < cfg.retries.attempts)) {
      if (!retry_slot.held && !stale) {
        retry_slot.held = st.try_retry(cfg.retries);
        if (!retry_slot.held) pool.series().budget_exhausted.inc();
      }
      if (retry_slot.held || stale) {
        upstream_ = nullptr;
        t.conn.reset();
        pool.series().retries.inc();
        if (!stale) {
          // Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter").
          const auto cap = std::min<std::int64_t>(cfg.retries.max_backoff.count(),
                                                  cfg.retries.backoff.count() << std::min(attempt, 16u));
          auto& rng = pool.pick_state().rng;
          rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
          Timer backoff(worker_.io().get_executor());
          backoff.expires_after(std::chrono::milliseconds(cap > 0 ? static_cast<std::int64_t>(rng % (cap + 1)) : 0));
          co_await backoff.async_wait(token);
        } else {
          --attempt;  // the stale try does not count
        }
        continue;
      }
    }
    break;
  }
  if (retry_slot.held) {
    st.retries.fetch_sub(1, std::memory_order_relaxed);
    retry_slot.held = false;
  }

  if (err == ProxyErrc::none && pending_.revalidate && up_parser_->head().status == 304) {
    if (answer_revalidated(t)) {
      parser_.next();
      set_deadline(Phase::idle);
      co_return;
    }
    // A 304 for another representation than the one whose validators were sent: never relayed to a client that
    // asked unconditionally; a stale copy may stand in (below), else 502.
    err = ProxyErrc::http_protocol_error;
    details = "304 does not match the stored response";
    pool.series().errors[static_cast<std::size_t>(err)].inc();
  }
  // RFC 5861 §4 stale-if-error: the origin failed (no answer, or a 5xx) and a stale copy may stand in for it.
  if (pending_.stale_fallback && err != ProxyErrc::http_request_error && !parser_.in_message() &&
      (err != ProxyErrc::none || (!t.websocket && up_parser_->head().status >= 500))) {
    upstream_ = nullptr;
    t.conn.reset();  // a 5xx body left unread: the connection is not reused
    segments_.clear();
    scratch_.clear();
    pending_.hit = std::move(pending_.stale_fallback);
    pending_.serving_stale = true;
    answer_hit();
    parser_.next();
    set_deadline(Phase::idle);
    co_return;
  }
  if (err == ProxyErrc::none && t.websocket && up_parser_->head().status == 101) {
    // Relay the 101, then tunnel. The connection ends with the tunnel.
    co_await relay_response(t);  // writes the 101 head (no body); releases nothing: keep the socket
    request_deadline_ = std::chrono::steady_clock::time_point::max();  // a tunnel lives while traffic flows
    if (!t.client_gone) co_await tunnel(t);
    finish_request(101, t.bytes_out, t.body_bytes, {});
    upstream_ = nullptr;
    t.conn.reset();
    abort_ = true;
    co_return;
  }
  if (err == ProxyErrc::none) {
    err = co_await relay_response(t);
    if (err != ProxyErrc::none) pool.series().errors[static_cast<std::size_t>(err)].inc();
    upstream_ = nullptr;
    t.conn.reset();
    if (err != ProxyErrc::none && !t.response_started) {
      segments_.clear();  // the head relay_response had queued: the client gets the 502 instead
      scratch_.clear();
      if (parser_.in_message()) pending_.keep_alive = false;
      queue_proxy_error(err, {});
      if (!parser_.in_message()) parser_.next();
      set_deadline(Phase::idle);
      co_return;
    }
    if (err != ProxyErrc::none || t.client_gone) {
      // Headers are out: the only way to tell the client is to cut the response short (RFC 9112 §8).
      if (err != ProxyErrc::none)
        spdlog::debug("upstream {} ({}): {}", cfg.name, st.endpoint(t.endpoint).name, upstream::to_string(err));
      finish_request(t.status, t.bytes_out, t.body_bytes, err != ProxyErrc::none ? upstream::to_string(err) : "client_closed");
      abort_ = true;
      co_return;
    }
    finish_request(t.status, t.bytes_out, t.body_bytes, {});
    parser_.next();
    set_deadline(Phase::idle);
    co_return;
  }
  upstream_ = nullptr;
  t.conn.reset();
  segments_.clear();  // the upstream head and body slices send_request had queued
  scratch_.clear();
  if (err == ProxyErrc::http_request_error) {
    if (t.client_gone && timed_out_ == Timeout::proxy) {
      // RFC 9110 §15.5.9: the body stalled. Say so before closing (the client may be reading).
      pending_.keep_alive = false;
      const std::size_t from = scratch_.size();
      http::append_simple_response(scratch_, 408, worker_.date_line(), "request body timeout\n",
                                   http::ConnectionHeader::close, false, trace_line_);
      add_scratch(from);
      close_after_write_ = true;
      finish_request(408, scratch_.size() - from, 21, "client_body_timeout");
      co_return;
    }
    if (t.client_gone) {
      finish_request(400, 0, 0, "client_closed");
      abort_ = true;
      co_return;
    }
    on_error(t.client_error);  // 400 / 413 for a malformed or oversized body; closes
    co_return;
  }
  // Nothing reached the client yet: answer with the error. The request body may be partly unread: close.
  if (parser_.in_message()) {
    pending_.keep_alive = false;
    linger_on_close_ = true;
  }
  queue_proxy_error(err, details);
  if (!parser_.in_message()) parser_.next();
  set_deadline(Phase::idle);
}

}  // namespace virex::server
