// HTTP/1.1 connection loop (see connection.hpp). RFC 9112 §9 (connection management), §9.6 (tear-down),
// RFC 9110 §10.1.1 (Expect: 100-continue).
#include "connection.hpp"

#include "cache_fill.hpp"
#include "coalescer.hpp"
#include "refresh.hpp"

#include <virex/observe/trace_context.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <spdlog/spdlog.h>

#include <cstring>
#include <utility>

namespace virex::server {
namespace {
// The edge-cache outcome of a request, as the access log writes it (the span attribute drops "edge=").
constexpr std::string_view kEdgeOutcomes[] = {"edge=hit", "edge=stale-if-error", "edge=stale-while-revalidate",
                                              "edge=revalidated", "edge=stale", "edge=miss"};
template <class P>
std::size_t edge_outcome(const P& p) noexcept {
  if (p.regional == decltype(p.regional)::hit) return 5;  // the edge missed and was filled from the region
  if (p.hit) return p.serving_stale ? 1 : p.stale_while_revalidate ? 2 : p.revalidated ? 3 : 0;
  return p.fwd == cache::Forward::stale ? 4 : 5;
}
constexpr std::size_t kInitialBuffer = kReadBufferSize;
constexpr std::size_t kLingerBytes = 1024 * 1024;       // discarded at most after an error response
constexpr auto kLingerTime = std::chrono::seconds(2);   // RFC 9112 §9.6: read a little before closing
constexpr auto kTrimAfter = std::chrono::seconds(1);    // an idle keep-alive connection gives its buffers back
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr auto token = asio::as_tuple(kUseAwaitable);

enum Text { kMethod, kTarget, kHost, kReferer, kAgent, kEnd };

// A span name's method part (OpenTelemetry: "_OTHER" for methods outside the known set).
std::string_view http_method_name(http::Method m) noexcept {
  switch (m) {
    case http::Method::get: return "GET";
    case http::Method::head: return "HEAD";
    case http::Method::post: return "POST";
    case http::Method::put: return "PUT";
    case http::Method::delete_: return "DELETE";
    case http::Method::connect: return "CONNECT";
    case http::Method::options: return "OPTIONS";
    case http::Method::trace: return "TRACE";
    case http::Method::patch: return "PATCH";
    default: return "_OTHER";
  }
}
}  // namespace

Connection::Connection(Worker& w, std::shared_ptr<ListenerState> l, ClientStream s)
    : worker_(w),
      listener_(std::move(l)),
      socket_(std::move(s)),
      snapshot_(w.snapshot()),
      parser_(snapshot_->h1_limits),
      buf_(w.acquire_buffer()),
      cap_(kInitialBuffer) {
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);  // the read after a readiness wait must never block the worker
  self_ = worker_.attach(this);
  listener_->open.add(1);
  listener_->accepted.inc();
  set_deadline(Phase::idle);
  // A new connection gets header_timeout, not idle_timeout, to send its first request.
  deadline_ = std::min(deadline_, worker_.coarse_now() + snapshot_->config.limits.header_timeout);
}

Connection::~Connection() {
  // A miss that leads a coalesced fetch but never got to run it (the connection failed first): end its flight,
  // or every later miss for the key would wait out the lock timeout behind it.
  if (pending_.leader && worker_.coalescer()) worker_.coalescer()->finish(cache_hash_, cache_key_);
  if (buf_ && cap_ == kInitialBuffer) worker_.release_buffer(std::move(buf_));
  release_upstream_buffers();
  worker_.release_scratch(std::move(scratch_));
  listener_->open.add(-1);
  worker_.detach(self_);
}

void Connection::set_deadline(Phase p) {
  phase_ = p;
  const auto now = worker_.coarse_now();
  const auto& lim = snapshot_->config.limits;
  switch (p) {
    case Phase::idle: deadline_ = now + lim.idle_timeout; break;
    case Phase::header: deadline_ = header_start_ + lim.header_timeout; break;
    case Phase::body:
    case Phase::writing: deadline_ = now + lim.idle_timeout; break;
    case Phase::linger: deadline_ = now + kLingerTime; break;
    case Phase::proxy: break;  // set_proxy_deadline() sets it
  }
}

void Connection::on_tick(std::chrono::steady_clock::time_point now) {
  if (hot_idle_ && !trim_due_ && now - idle_since_ >= kTrimAfter) {
    trim_due_ = true;  // run() sees the cancelled read and goes to the cold wait
    boost::system::error_code ec;
    socket_.cancel(ec);
    return;
  }
  // Cancelling again while past the deadline is harmless, and covers an operation that had already
  // completed (handler queued) when the previous cancel ran.
  if (now < deadline_) return;
  const Timeout before = timed_out_;
  switch (phase_) {
    case Phase::idle: timed_out_ = Timeout::idle; break;
    case Phase::header: timed_out_ = Timeout::header; break;
    case Phase::body: timed_out_ = Timeout::body; break;
    case Phase::writing: timed_out_ = Timeout::write; break;
    case Phase::linger: timed_out_ = Timeout::linger; break;
    case Phase::proxy: timed_out_ = Timeout::proxy; break;
  }
  if (before == Timeout::none && phase_ != Phase::linger) worker_.count_timeout(static_cast<unsigned>(phase_));
  boost::system::error_code ec;
  socket_.cancel(ec);
  if (upstream_) upstream_->socket.cancel(ec);
}

void Connection::trim() {
  if (!waiting_idle_) return;
  worker_.release_buffer(std::move(buf_));
  worker_.release_scratch(std::exchange(scratch_, std::string()));
  parser_.release_idle();
  std::string().swap(pending_.text);
  std::string().swap(pending_.allow);
  release_upstream_buffers();
}

void Connection::release_upstream_buffers() {
  // What a proxied request left: the upstream read buffer (pooled when it kept its size), the response codec
  // (its header array) and the request head string.
  if (up_buf_ && up_cap_ == kReadBufferSize) worker_.release_buffer(std::move(up_buf_));
  up_buf_.reset();
  up_cap_ = up_begin_ = up_end_ = 0;
  up_parser_.reset();
  std::string().swap(up_head_);
  std::string().swap(up_path_);
  std::string().swap(up_extra_);
  std::string().swap(store_body_);
  pending_entry_.reset();
  storing_ = false;
}

bool Connection::idle_between_requests() noexcept {
  if (phase_ != Phase::idle || begin_ != end_ || parser_.in_message()) return false;
  // Bytes the kernel holds but we have not read yet are the start of a request: not idle.
  boost::system::error_code ec;
  return socket_.available(ec) == 0 && !ec;
}

void Connection::on_drain() {
  if (timed_out_ == Timeout::none && idle_between_requests()) {
    timed_out_ = Timeout::drain;
    boost::system::error_code ec;
    socket_.cancel(ec);
  }
}

http::ConnectionHeader Connection::connection_header() {
  if (!pending_.keep_alive || worker_.draining() || close_after_write_) {
    close_after_write_ = true;
    return http::ConnectionHeader::close;
  }
  return pending_.version == 10 ? http::ConnectionHeader::keep_alive : http::ConnectionHeader::none;
}

Awaitable<void> Connection::run(Connection* raw) {
  std::unique_ptr<Connection> self(raw);
  Connection& c = *self;
  try {
    for (;;) {
      c.process();
      if (!c.segments_.empty()) {
        c.prepare_write();
        auto [wec, wn] = co_await c.socket_.async_write(c.iov_, token);
        if (!c.finish_write(wec, wn)) break;
      }
      if (c.proxy_pending_) {
        co_await c.proxy();
        if (c.abort_) break;
        continue;  // parse what else the buffer holds (pipelined requests), write, then read
      }
      if (c.query_pending_) {
        co_await c.query();
        continue;  // as after proxy(): more pipelined requests, then write
      }
      if (c.close_after_write_) {
        // RFC 9112 §9.6: unread bytes at close make the kernel send RST, which can destroy the response.
        boost::system::error_code aec;
        if (c.linger_on_close_ || c.begin_ != c.end_ || c.socket_.available(aec) > 0) co_await c.linger();
        break;
      }
      // Draining began while this connection was busy (on_drain() passed it over): once it is idle, close.
      if (c.worker_.draining() && c.idle_between_requests()) break;
      if (c.end_ == c.cap_) {
        // Only an incomplete head needs more room (a body is consumed as it arrives, and the codec bounds
        // chunk lines and trailers); the codec answers 431 before the head outgrows the limit.
        if (c.phase_ != Phase::header || c.cap_ >= c.snapshot_->h1_limits.max_header_bytes + kInitialBuffer) break;
        const std::size_t ncap = c.cap_ * 2;
        std::unique_ptr<char[]> nbuf(new char[ncap]);
        std::memcpy(nbuf.get(), c.buf_.get() + c.begin_, c.end_ - c.begin_);
        c.end_ -= c.begin_;
        c.begin_ = 0;
        c.buf_ = std::move(nbuf);
        c.cap_ = ncap;
      }
      boost::system::error_code ec;
      std::size_t n = 0;
      if (c.begin_ == c.end_ && c.cap_ != kInitialBuffer && !c.parser_.in_message()) {
        c.buf_ = c.worker_.acquire_buffer();  // a head needed a bigger buffer; the next request starts small
        c.cap_ = kInitialBuffer;
      }
      if (c.begin_ == c.end_ && !c.parser_.in_message() && !c.trim_due_) {
        // Between requests, hot: read straight into the buffer. After a read that drained the socket Asio skips
        // the speculative recv and needs no epoll_ctl, so a busy keep-alive connection pays no syscall to wait
        // (a readiness wait costs one epoll_ctl per call: strace showed one per request). The worker's tick
        // turns a wait older than kTrimAfter into the cold wait below (cancel → trim → readiness wait).
        c.begin_ = c.end_ = 0;
        c.idle_since_ = c.worker_.coarse_now();
        c.hot_idle_ = true;
        auto [rec, rn] = co_await c.socket_.async_read_some(asio::buffer(c.buf_.get(), c.cap_), token);
        c.hot_idle_ = false;
        if (rec == asio::error::operation_aborted && c.trim_due_ && c.timed_out_ == Timeout::none) continue;
        ec = rec;
        n = rn;
      } else if (c.begin_ == c.end_ && !c.parser_.in_message()) {
        // Between requests, cold: hand the read buffer, the response scratch and the parser state back to the
        // worker's pools (an idle keep-alive connection then holds ~2.6 KiB), wait for readiness, then read
        // without suspending. Measured: -72 % memory when idle.
        c.trim_due_ = false;
        c.begin_ = c.end_ = 0;
        c.waiting_idle_ = true;
        c.trim();
        auto [wec] = co_await c.socket_.async_wait(ClientStream::wait_read, token);
        c.waiting_idle_ = false;
        if (!c.buf_) c.buf_ = c.worker_.acquire_buffer();
        if (c.scratch_.capacity() <= sizeof(std::string)) c.scratch_ = c.worker_.acquire_scratch();
        ec = wec;
        if (!ec) {
          n = c.socket_.read_some(asio::buffer(c.buf_.get(), c.cap_), ec);
          if (ec == asio::error::would_block || ec == asio::error::try_again) continue;  // spurious wake-up
        }
      } else {
        auto [rec, rn] = co_await c.socket_.async_read_some(asio::buffer(c.buf_.get() + c.end_, c.cap_ - c.end_), token);
        ec = rec;
        n = rn;
      }
      if (ec) {
        if (c.timed_out_ == Timeout::header && c.parser_.in_message()) {
          // RFC 9110 §15.5.9: 408 for a request whose head did not arrive in time (slowloris).
          c.worker_.count_parse_error(http::ParseError::header_timeout);
          c.pending_ = Pending{};
          c.pending_.keep_alive = false;
          const std::size_t from = c.scratch_.size();
          http::append_simple_response(c.scratch_, 408, c.worker_.date_line(), "request header timeout\n",
                                       http::ConnectionHeader::close, false);
          c.add_scratch(from);
          const std::size_t n = c.scratch_.size() - from;
          c.finish_request(408, n, n - (c.scratch_.find("\r\n\r\n", from) + 4 - from), "header_timeout");
          c.timed_out_ = Timeout::none;
          c.prepare_write();
          auto [wec, wn] = co_await c.socket_.async_write(c.iov_, token);
          if (c.finish_write(wec, wn)) co_await c.linger();
        }
        break;
      }
      c.end_ += n;
      c.timed_out_ = Timeout::none;  // data won the race against a deadline: on_tick re-checks it
      if (c.phase_ == Phase::body) c.set_deadline(Phase::body);  // body inactivity, refreshed per read
      c.batch_time_ = std::chrono::steady_clock::now();
      c.listener_->bytes_in.inc(n);
    }
  } catch (const std::exception& e) {
    spdlog::error("connection: {}", e.what());
  }
  boost::system::error_code ignored;
  c.socket_.shutdown(ClientStream::shutdown_both, ignored);
  c.socket_.close(ignored);
}

void Connection::prepare_write() {
  iov_.clear();
  for (const Segment& s : segments_) iov_.emplace_back(s.data ? s.data : scratch_.data() + s.offset, s.size);
  phase_before_write_ = phase_;
  set_deadline(Phase::writing);
}

bool Connection::finish_write(const boost::system::error_code& ec, std::size_t n) {
  segments_.clear();
  scratch_.clear();
  hold_.clear();
  listener_->bytes_out.inc(n);
  if (ec) return false;
  // Back to waiting: the deadline of the phase we were in (the header clock keeps running).
  if (phase_before_write_ == Phase::header || phase_before_write_ == Phase::body) set_deadline(phase_before_write_);
  else set_deadline(Phase::idle);
  return true;
}

Awaitable<void> Connection::linger() {
  boost::system::error_code ec;
  socket_.shutdown(ClientStream::shutdown_send, ec);
  set_deadline(Phase::linger);
  std::size_t discarded = 0;
  while (discarded < kLingerBytes && timed_out_ == Timeout::none) {
    auto [rec, n] = co_await socket_.async_read_some(asio::buffer(buf_.get(), cap_), token);
    if (rec) break;
    discarded += n;
  }
}

void Connection::process() {
  // A new snapshot (reload) is picked up between requests only: routes named by a pending request stay valid.
  if (!parser_.in_message() && snapshot_ != worker_.snapshot()) {
    snapshot_ = worker_.snapshot();
    parser_ = http::H1RequestParser(snapshot_->h1_limits);
  }
  while (!close_after_write_) {
    const std::string_view data(buf_.get() + begin_, end_ - begin_);
    const bool was_in_message = parser_.in_message();
    const auto r = parser_.feed(data);
    begin_ += r.consumed;
    if (!was_in_message && parser_.in_message() && phase_ != Phase::header && phase_ != Phase::body) {
      header_start_ = worker_.coarse_now();
      set_deadline(Phase::header);
    }
    using E = http::H1RequestParser::Event;
    switch (r.event) {
      case E::head:
        on_head();
        set_deadline(Phase::body);
        if (pending_.route && pending_.route->upstream && !pending_.hit) {
          proxy_pending_ = true;  // run() writes what is queued, then proxy() takes over (head views stay valid)
          break;
        }
        if (pending_.expect_continue && !pending_.route && !listener_->admin) {
          // RFC 9110 §10.1.1: no route wants this body: answer now instead of 100, and close, since the
          // client may or may not send the body.
          pending_.keep_alive = false;
          linger_on_close_ = true;
          on_complete();
          break;
        }
        continue;
      case E::body:
        pending_.bytes_in += parser_.body().size();
        if (pending_.route && pending_.route->query) {
          if (q_body_.size() + parser_.body().size() > kMaxQueryBody) q_body_too_large_ = true;
          else q_body_.append(parser_.body());
        }
        if (pending_.endpoint == admin::Endpoint::purge) {
          if (pending_.admin_body.size() + parser_.body().size() > kMaxPurgeBody) pending_.admin_body_too_large = true;
          else pending_.admin_body.append(parser_.body());
        }
        continue;
      case E::complete:
        if (pending_.route && pending_.route->query && !pending_.hit) {
          query_pending_ = true;  // run() writes what is queued, then query() answers this request
          break;
        }
        on_complete();
        set_deadline(Phase::idle);
        continue;
      case E::error:
        on_error(parser_.error());
        break;
      case E::need_more:
        if (pending_.expect_continue && !pending_.continue_sent && parser_.body_bytes() == 0 &&
            phase_ == Phase::body) {
          // RFC 9110 §10.1.1: the client waits for this before sending the body.
          pending_.continue_sent = true;
          add_static(kContinue);
        }
        break;
    }
    break;
  }
  // Keep unconsumed bytes at the front so the buffer can take the rest of a head. Not while proxy() or query()
  // is to run: they read the request head (its views into buf_) — a follower's second cache lookup, the regional
  // lookup's Vary check.
  if (begin_ == end_) {
    begin_ = end_ = 0;
  } else if (begin_ > 0 && !proxy_pending_ && !query_pending_ && (end_ == cap_ || !parser_.in_message())) {
    std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
}

void Connection::on_head() {
  const http::RequestHead& h = parser_.head();
  Pending& p = pending_;
  p.route = nullptr;
  p.status = 0;
  p.endpoint = admin::Endpoint::none;
  p.method = h.method;
  p.version = h.version;
  p.keep_alive = h.keep_alive;
  p.expect_continue = h.expect_continue && h.version == 11 && h.has_body();
  p.continue_sent = false;
  p.bytes_in = h.head_bytes;
  p.start = batch_time_;  // the request arrived with the last read
  p.allow.clear();
  if (listener_->admin) {
    p.endpoint = admin::classify(h.path);
    p.admin_body.clear();
    p.admin_auth.clear();
    p.admin_body_too_large = false;
    if (p.endpoint == admin::Endpoint::purge) p.admin_auth.assign(h.header("Authorization").substr(0, 1024));
  } else {
    pipeline::Match m = snapshot_->routes.match(h.host, h.path, h.method, h.method_text);
    if (m.route) {
      p.route = m.route;
      if (m.route->query) capture_query_args(h, m);
    } else if (m.method_not_allowed) {
      p.status = 405;
      p.allow = std::move(m.allow);
    } else {
      p.status = 404;
    }
  }
  // W3C trace context: the caller's trace id when its traceparent is valid (a malformed one is ignored), else
  // a new one. Only when something shows it: the access log or the configured response header.
  const std::string& trace_header = snapshot_->config.observability.tracing.response_header;
  p.has_trace = false;
  trace_line_.clear();
  p.hit.reset();
  p.stale_fallback.reset();
  p.serving_stale = false;
  p.stale_while_revalidate = false;
  p.revalidate.reset();
  p.revalidated = false;
  p.revalidated_stored = false;
  p.not_modified = false;
  p.cacheable = false;
  p.leader = false;
  p.collapsed = false;
  p.follower.reset();
  p.fwd = cache::Forward::none;
  p.regional = Pending::Regional::none;
  p.regional_private = false;
  p.invalidate = false;
  p.regional_span.present = false;
  p.cache_lookup_ns = 0;
  if (p.route && p.route->cache && worker_.edge_cache()) {
    if (worker_.tracing()) {  // timed only when spans may be exported: the lookup is a span of its own
      const auto t0 = std::chrono::steady_clock::now();
      cache_lookup(h);
      p.cache_lookup_ns = static_cast<std::uint32_t>(std::min<std::int64_t>(
          UINT32_MAX, std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count()));
    } else {
      cache_lookup(h);
    }
  }
  // The upstream gets a traceparent (W3C §3.2); a query route's statements a sqlcommenter comment.
  const bool proxied = p.route && (p.route->upstream || p.route->query) && !p.hit;
  p.up_span.present = false;
  p.db_spans.clear();
  p.shards.clear();
  if (!listener_->admin && (worker_.access_log_enabled() || !trace_header.empty() || proxied || worker_.tracing())) {
    const std::string_view tp = h.header("traceparent");
    const auto ctx = tp.empty() ? std::nullopt : observe::parse_traceparent(tp);
    p.trace = ctx ? *ctx : worker_.new_trace();
    p.has_parent = ctx.has_value();
    if (!ctx) p.trace.flags = 0;
    p.head_sampled = worker_.tracing() && observe::head_sample(p.trace, p.has_parent, worker_.sampling());
    if (worker_.tracing()) {
      p.span_id = worker_.new_trace().parent_id;  // this request's own span
      if (!p.wall.time_since_epoch().count()) p.wall = std::chrono::system_clock::now();
    }
    observe::format_trace_id(p.trace, p.trace_id);
    p.has_trace = true;
    if (!trace_header.empty()) {
      trace_line_.append(trace_header).append(": ").append(p.trace_id, sizeof p.trace_id).append("\r\n");
    }
  }
  if (worker_.access_log_enabled()) {
    if (!p.wall.time_since_epoch().count()) p.wall = std::chrono::system_clock::now();
    p.text.clear();
    auto put = [&](int i, std::string_view v) {
      p.off[i] = static_cast<std::uint16_t>(std::min<std::size_t>(p.text.size(), UINT16_MAX));
      p.text.append(v.substr(0, 4096));
    };
    put(kMethod, h.method_text);
    put(kTarget, h.target);
    put(kHost, h.host);
    put(kReferer, h.header("Referer"));
    put(kAgent, h.header("User-Agent"));
    p.off[kEnd] = static_cast<std::uint16_t>(std::min<std::size_t>(p.text.size(), UINT16_MAX));
  }
}

void Connection::on_complete() {
  Pending& p = pending_;
  const bool head_only = p.method == http::Method::head;
  const http::ConnectionHeader conn = connection_header();
  const std::string_view date = worker_.date_line();
  unsigned status;
  std::size_t bytes_out, body_bytes = 0;
  if (p.hit) {
    answer_hit();
    parser_.next();
    return;
  }
  if (p.route) {
    const http::PreparedResponse& r = p.route->response;
    add_static(r.head);
    const std::size_t from = scratch_.size();
    http::append_tail(scratch_, date, conn, trace_line_);
    add_scratch(from);
    bytes_out = r.head.size() + (scratch_.size() - from);
    if (!head_only && !r.body.empty()) {
      add_static(r.body);
      bytes_out += r.body.size();
      body_bytes = r.body.size();
    }
    status = r.status;
  } else {
    const std::size_t from = scratch_.size();
    if (listener_->admin && p.endpoint == admin::Endpoint::purge) {
      status = answer_purge(scratch_, date, conn);
    } else if (listener_->admin) {
      status = admin::respond(p.endpoint, p.method, worker_.admin_context(), scratch_, date, conn);
    } else if (p.status == 405) {
      std::string allow = "Allow: " + p.allow + "\r\n" + trace_line_;
      http::append_simple_response(scratch_, 405, date, "method not allowed\n", conn, head_only, allow);
      status = 405;
    } else {
      http::append_simple_response(scratch_, 404, date, "no route\n", conn, head_only, trace_line_);
      status = 404;
    }
    add_scratch(from);
    bytes_out = scratch_.size() - from;
    body_bytes = head_only ? 0 : scratch_.size() - (scratch_.find("\r\n\r\n", from) + 4);
  }
  finish_request(status, bytes_out, body_bytes, {});
  parser_.next();
}

void Connection::cache_lookup(const http::RequestHead& h) {
  Pending& p = pending_;
  p.revalidate.reset();  // a follower's second lookup decides anew
  const pipeline::CompiledRoute& r = *p.route;
  if (h.method != http::Method::get && h.method != http::Method::head) {
    p.fwd = cache::Forward::method;
    note_unsafe(h);
    return;
  }
  if (r.cache_policy.private_scope) {
    p.fwd = cache::Forward::bypass;
    count_cache(CacheResult::bypass);
    regional_plan(h, true);  // never in the shared edge cache; per user in the regional tier when configured
    return;
  }
  cache::build_key(cache_key_, h, r.cache_key);
  cache_hash_ = upstream::hash_key(cache_key_);
  cache::Store& store = *worker_.edge_cache();
  auto e = store.lookup(cache_key_, cache_hash_);
  if (e && !e->vary.empty()) {
    // RFC 9111 §4.1: the variant whose Vary'd request headers match this request's.
    std::vector<http::Header>& vary = vary_scratch_;  // reused: a Vary'd hit allocates nothing once warm
    vary.clear();
    for (const std::string& name : e->vary) vary.push_back({"Vary", name});
    if (cache::vary_key(cache_variant_, h, vary)) e = store.lookup(cache_key_, cache_hash_, cache_variant_);
    else e.reset();
    if (!e) p.fwd = cache::Forward::vary_miss;
  }
  p.cacheable = h.method == http::Method::get && !h.has_body();
  if (!e) {
    if (p.fwd == cache::Forward::none) p.fwd = cache::Forward::uri_miss;
    if (!p.collapsed) count_cache(CacheResult::miss);
    join_flight();
    if (!p.follower) regional_plan(h, false);  // the flight's leader asks the region before the origin
    return;
  }
  cache::StoreDecision d;
  d.store = true;
  d.ttl = std::chrono::seconds(e->ttl);
  d.swr = std::chrono::seconds(e->swr);
  d.sie = std::chrono::seconds(e->sie);
  const auto elapsed = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - e->stored_at);
  const bool soft_purged = e->stale.load(std::memory_order_relaxed);
  const cache::Usability u = cache::usability(d, elapsed);
  // RFC 5861 §3: inside the stale-while-revalidate window (a soft purge makes the entry stale at once, inside
  // the same window) the stale entry answers now and one background refresh brings a new one.
  if ((soft_purged || u == cache::Usability::stale_while_revalidate) && e->swr > 0 && elapsed < d.ttl + d.swr &&
      r.upstream) {
    if (!p.collapsed) count_cache(CacheResult::stale_while_revalidate);
    Coalescer* c = worker_.coalescer();
    // The refresh stands for the cache: only a plain request may start it (a Range, Authorization or
    // Cache-Control of its own would shape the origin's answer); another one will.
    if (p.cacheable && plain_request(h) && c && refresh_slot_free(worker_) && c->lead(cache_hash_, cache_key_))
      start_refresh(h, e);
    p.stale_while_revalidate = true;
    p.not_modified = cache::not_modified(h, e->etag, e->last_modified, std::time(nullptr));
    p.hit = std::move(e);
    return;
  }
  if (soft_purged || u != cache::Usability::fresh) {
    // Refetched; kept for an origin failure while the response's stale windows allow (RFC 5861 §4).
    if (e->sie > 0 && (u != cache::Usability::stale || (soft_purged && elapsed < d.ttl + d.sie)))
      p.stale_fallback = e;
    // Revalidated with its validators when the request has no preconditions of its own (RFC 9111 §4.3.1).
    if (p.cacheable && (!e->etag.empty() || !e->last_modified.empty()) && plain_request(h)) p.revalidate = e;
    p.fwd = cache::Forward::stale;
    if (!p.collapsed) count_cache(CacheResult::stale);
    join_flight();
    if (!p.follower) regional_plan(h, false);  // the region's copy usually outlives the edge's
    return;
  }
  if (!p.collapsed) count_cache(CacheResult::hit);
  p.hit = std::move(e);
  p.not_modified = cache::not_modified(h, p.hit->etag, p.hit->last_modified, std::time(nullptr));
}

// A cacheable miss either leads the fetch for its key or waits for the one in flight (coalescing).
void Connection::join_flight() {
  Pending& p = pending_;
  Coalescer* c = worker_.coalescer();
  if (!p.cacheable || !c) return;
  auto w = std::make_shared<Coalescer::Waiter>(worker_.io().get_executor());
  switch (c->join(cache_hash_, cache_key_, w)) {
    case Coalescer::Role::lead: p.leader = true; break;
    case Coalescer::Role::wait:
      p.follower = std::move(w);
      count_cache(CacheResult::collapsed);
      break;
    case Coalescer::Role::alone: break;
  }
}

void Connection::count_cache(CacheResult r) {
  worker_.route_series(*listener_, *snapshot_, pending_.route->index).cache[static_cast<std::size_t>(r)].inc();
}

void Connection::append_cache_status(std::string& out, const cache::CacheStatus& cs) {
  if (pending_.regional != Pending::Regional::none) append_regional_status(out);
  out.append("Cache-Status: ");
  cache::append_cache_status(out, cs);
  out.append("\r\n");
}

// A hit: the stored head (status line and fields), then this response's Date, Age (RFC 9111 §5.1: the
// entry's corrected initial age plus its time in the cache), Cache-Status and Connection, then the body by
// reference (the entry is held until the write completes). HEAD gets the head only; a matching conditional
// request gets 304 with the validators (RFC 9110 §15.4.5).
void Connection::answer_hit() {
  Pending& p = pending_;
  const cache::Entry& e = *p.hit;
  hold_.push_back(p.hit);
  const auto in_cache = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - e.stored_at);
  const auto age = static_cast<std::int64_t>(e.initial_age) + in_cache.count();
  cache::CacheStatus cs;
  cs.hit = !p.revalidated;
  cs.collapsed = p.collapsed;
  if (p.revalidated) {  // RFC 9211 §2.3: went forward because stale; the origin's 304 is the fwd-status
    cs.fwd = cache::Forward::stale;
    cs.fwd_status = 304;
    cs.stored = p.revalidated_stored;
  }
  if (p.serving_stale) cs.detail = "stale-if-error";
  else if (p.stale_while_revalidate) cs.detail = "stale-while-revalidate";
  cs.ttl = static_cast<std::int64_t>(e.ttl) - in_cache.count();
  if (p.regional == Pending::Regional::hit) {  // the edge missed and was filled from the region
    cs.hit = false;
    cs.fwd = p.fwd == cache::Forward::none ? cache::Forward::miss : p.fwd;
    cs.stored = !p.regional_private;
  }
  const http::ConnectionHeader conn = connection_header();
  std::size_t bytes_out = 0, body_bytes = 0;
  unsigned status = e.status;
  if (p.not_modified) {
    status = 304;
    const std::size_t from = scratch_.size();
    scratch_.append("HTTP/1.1 304 Not Modified\r\n");
    if (!e.etag.empty()) scratch_.append("ETag: ").append(e.etag).append("\r\n");
    if (!e.last_modified.empty()) scratch_.append("Last-Modified: ").append(e.last_modified).append("\r\n");
    scratch_.append("Age: ").append(std::to_string(age)).append("\r\n");
    append_cache_status(scratch_, cs);
    http::append_tail(scratch_, worker_.date_line(), conn, trace_line_);
    add_scratch(from);
    bytes_out = scratch_.size() - from;
  } else {
    add_static(e.head);
    const std::size_t from = scratch_.size();
    scratch_.append("Age: ").append(std::to_string(age)).append("\r\n");
    append_cache_status(scratch_, cs);
    http::append_tail(scratch_, worker_.date_line(), conn, trace_line_);
    add_scratch(from);
    bytes_out = e.head.size() + (scratch_.size() - from);
    if (p.method != http::Method::head && !e.body.empty()) {
      add_static(e.body);
      bytes_out += e.body.size();
      body_bytes = e.body.size();
    }
  }
  finish_request(status, bytes_out, body_bytes, {});
  p.hit.reset();
}

void Connection::on_error(http::ParseError e) {
  worker_.count_parse_error(e);
  pending_.keep_alive = false;
  const unsigned status = http::status_of(e);
  const std::size_t from = scratch_.size();
  http::append_simple_response(scratch_, status, worker_.date_line(), http::describe(e),
                               http::ConnectionHeader::close, false);
  add_scratch(from);
  close_after_write_ = true;
  linger_on_close_ = true;  // the client may still be sending: read a little so it sees the response
  finish_request(status, scratch_.size() - from, http::describe(e).size(), http::to_string(e));
}

void Connection::finish_request(unsigned status, std::size_t bytes_out, std::size_t body_bytes,
                                std::string_view error) {
  const pipeline::Snapshot& s = *snapshot_;
  const std::uint32_t idx = pending_.route ? pending_.route->index : static_cast<std::uint32_t>(s.routes.routes().size());
  RouteSeries& series = worker_.route_series(*listener_, s, idx);
  const unsigned cls = status / 100;
  if (cls >= 1 && cls <= 5) series.by_class[cls - 1].inc();
  const auto now = std::chrono::steady_clock::now();
  const auto start = pending_.start.time_since_epoch().count() ? pending_.start : now;
  const auto duration = std::chrono::duration_cast<std::chrono::nanoseconds>(now - start);
  series.duration.observe(static_cast<std::uint64_t>(duration.count()));
  if (worker_.access_log_enabled()) log_access(status, bytes_out, body_bytes, error, duration);
  if (worker_.tracing() && pending_.has_trace && !listener_->admin) export_spans(status, error, duration);
  pending_.wall = {};
  pending_.start = {};
  pending_.text.clear();
  pending_.upstream = nullptr;
  pending_.upstream_time = std::chrono::nanoseconds(-1);
}

void Connection::export_spans(unsigned status, std::string_view error, std::chrono::nanoseconds duration) {
  const Pending& p = pending_;
  const bool failed = status >= 500 || !error.empty();
  if (!observe::sample(p.trace, p.has_parent, status, failed, duration, worker_.sampling())) return;
  std::vector<observe::Span>& spans = worker_.span_scratch();
  spans.clear();
  // Room for every span this request can have (server, edge lookup, regional, upstream, one per shard): the
  // server span `s` below stays valid while its children are added.
  spans.reserve(4 + p.db_spans.size());
  const auto start_ns = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(p.wall.time_since_epoch()).count());
  auto text = [&](int i) -> std::string_view {
    if (p.text.empty()) return {};
    return std::string_view(p.text).substr(p.off[i], p.off[i + 1] - p.off[i]);
  };
  // The server span: the request as this node saw it (OpenTelemetry HTTP semantic conventions; the name is
  // the method and the route, never the raw path).
  observe::Span& s = spans.emplace_back();
  s.trace_id = p.trace.trace_id;
  s.span_id = p.span_id;
  if (p.has_parent) s.parent_span_id = p.trace.parent_id;
  const std::string_view route = p.route ? std::string_view(p.route->name) : std::string_view("none");
  s.name.assign(http_method_name(p.method)).append(" ").append(route);
  s.kind = observe::SpanKind::server;
  s.start_unix_ns = start_ns;
  s.end_unix_ns = start_ns + static_cast<std::uint64_t>(duration.count());
  s.error = failed;
  if (failed) s.status_message.assign(error.empty() ? std::string_view("server error") : error);
  s.attributes.emplace_back("http.route", route);
  s.attributes.emplace_back("server.listener", listener_->name);
  if (!p.text.empty()) {
    s.attributes.emplace_back("http.request.method", text(kMethod));
    s.attributes.emplace_back("url.full", text(kTarget));
    s.attributes.emplace_back("server.address", text(kHost));
  }
  s.int_attributes.emplace_back("http.response.status_code", status);
  if (p.route && p.route->cache) {
    // The edge-cache lookup: an internal span at the start of the request, with its outcome (also on the server
    // span, where queries by outcome find it).
    const std::string_view outcome = kEdgeOutcomes[edge_outcome(p)].substr(5);
    s.attributes.emplace_back("virex.cache.edge", outcome);
    if (p.cache_lookup_ns) {
      observe::Span& c = spans.emplace_back();
      c.trace_id = p.trace.trace_id;
      c.span_id = worker_.new_trace().parent_id;
      c.parent_span_id = p.span_id;
      c.name.assign("edge cache lookup");
      c.kind = observe::SpanKind::internal;
      c.start_unix_ns = start_ns;
      c.end_unix_ns = start_ns + p.cache_lookup_ns;
      c.attributes.emplace_back("virex.cache.edge", outcome);
    }
  }
  if (p.regional_span.present) {
    // The regional lookup: a network round trip to Redis, a client span under the server span.
    s.attributes.emplace_back("virex.cache.regional", regional_log());
    const auto& rs = p.regional_span;
    observe::Span& c = spans.emplace_back();  // `s` is not used below this point
    c.trace_id = p.trace.trace_id;
    c.span_id = rs.span_id;
    c.parent_span_id = p.span_id;
    c.name.assign("regional GET");
    c.kind = observe::SpanKind::client;
    c.start_unix_ns = rs.start_ns;
    c.end_unix_ns = std::max(rs.end_ns, rs.start_ns);
    c.error = p.regional == Pending::Regional::error || p.regional == Pending::Regional::timeout;
    if (c.error) c.status_message.assign(regional_log());
    c.attributes.emplace_back("db.system", "redis");
    c.attributes.emplace_back("db.operation", "GET");
    c.attributes.emplace_back("virex.cache.regional", regional_log());
  }
  if (p.up_span.present) {
    // The upstream exchange: a client span under the server span; its id is the parent the upstream saw.
    const auto& u = p.up_span;
    observe::Span& c = spans.emplace_back();
    c.trace_id = p.trace.trace_id;
    c.span_id = u.span_id;
    c.parent_span_id = p.span_id;
    c.name.assign("upstream ").append(u.cluster);
    c.kind = observe::SpanKind::client;
    c.start_unix_ns = u.start_ns;
    // It ends with the relay, which is now (finish_request runs when the response has been handed over).
    const auto end = u.end_ns ? u.end_ns
                              : static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    std::chrono::system_clock::now().time_since_epoch()).count());
    c.end_unix_ns = std::max(end, u.start_ns);
    c.error = !u.error.empty() || u.status >= 500;
    if (c.error) c.status_message.assign(u.error.empty() ? std::string_view("upstream 5xx") : u.error);
    c.attributes.emplace_back("upstream.cluster", u.cluster);
    if (!u.endpoint.empty()) c.attributes.emplace_back("server.address", u.endpoint);
    if (u.status) c.int_attributes.emplace_back("http.response.status_code", u.status);
    c.int_attributes.emplace_back("upstream.tries", u.tries);
  }
  for (const Pending::DbSpan& d : p.db_spans) {
    // A query route's statement on one shard: a client span under the server span (its id is the parent the
    // statement's sqlcommenter traceparent named).
    observe::Span& c = spans.emplace_back();
    c.trace_id = p.trace.trace_id;
    c.span_id = d.span_id;
    c.parent_span_id = p.span_id;
    c.name.assign("query ").append(route).append(" shard ").append(std::to_string(d.shard));
    c.kind = observe::SpanKind::client;
    c.start_unix_ns = d.start_ns;
    c.end_unix_ns = std::max(d.end_ns, d.start_ns);
    c.error = !d.error.empty();
    if (c.error) c.status_message.assign(d.error);
    c.attributes.emplace_back("db.system", "postgresql");
    c.attributes.emplace_back("virex.shard.role", d.replica ? "replica" : "primary");
    if (!d.endpoint.empty()) c.attributes.emplace_back("server.address", d.endpoint);
    c.int_attributes.emplace_back("virex.shard.id", static_cast<std::uint64_t>(d.shard));
  }
  worker_.export_spans(spans);
}

void Connection::log_access(unsigned status, std::size_t bytes_out, std::size_t body_bytes,
                            std::string_view error, std::chrono::nanoseconds duration) {
  if (client_.empty()) {
    boost::system::error_code ec;
    const auto ep = socket_.remote_endpoint(ec);
    if (!ec) {
      client_ = ep.address().is_v6() ? "[" + ep.address().to_string() + "]" : ep.address().to_string();
      client_ += ":" + std::to_string(ep.port());
    } else {
      client_ = "-";
    }
  }
  const Pending& p = pending_;
  auto text = [&](int i) -> std::string_view {
    if (p.text.empty()) return {};
    return std::string_view(p.text).substr(p.off[i], p.off[i + 1] - p.off[i]);
  };
  observe::AccessRecord r;
  r.time = p.wall.time_since_epoch().count() ? p.wall : std::chrono::system_clock::now();
  r.client = client_;
  r.method = text(kMethod);
  r.target = text(kTarget);
  r.host = text(kHost);
  r.referer = text(kReferer);
  r.user_agent = text(kAgent);
  r.version = p.version == 10 ? "HTTP/1.0" : "HTTP/1.1";
  r.status = status;
  r.bytes_in = p.bytes_in;
  r.bytes_out = bytes_out;
  r.body_bytes = body_bytes;
  r.duration = duration;
  r.route = p.route ? std::string_view(p.route->name) : std::string_view{};
  if (p.has_trace) r.trace_id = std::string_view(p.trace_id, sizeof p.trace_id);
  if (p.upstream) r.upstream = p.upstream->name;
  if (p.route && p.route->cache)
    r.cache = kEdgeOutcomes[edge_outcome(p)];
  r.regional = regional_log();
  r.shards = p.shards;
  r.upstream_time = p.upstream_time;
  r.error = error;
  worker_.log_access(r);
}

}  // namespace virex::server
