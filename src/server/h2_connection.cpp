// HTTP/2 connection on nghttp2 (see h2_connection.hpp). RFC 9113 §3.4 (preface), §5.2 (flow control), §6.8
// (GOAWAY), §8.2.2 (connection-specific fields), §8.3 (request pseudo-header fields).
#include "h2_connection.hpp"
#include "h2_stream.hpp"
#include "query.hpp"

#include <virex/admin/admin.hpp>
#include <virex/cache/cache_status.hpp>
#include <virex/cache/freshness.hpp>
#include <virex/cache/key.hpp>
#include <virex/http/response.hpp>
#include <virex/upstream/balancer.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include <nghttp2/nghttp2.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

namespace virex::server {
namespace {
constexpr auto token = asio::as_tuple(core::kUseAwaitable);
constexpr std::size_t kWriteBatch = 64 * 1024;        // bytes gathered from mem_send per write
constexpr std::int32_t kInitialWindow = 256 * 1024;   // our receive window per stream (request bodies)

H2Connection* self_of(void* p) { return static_cast<H2Connection*>(p); }

std::string_view sv(const std::uint8_t* p, std::size_t n) { return {reinterpret_cast<const char*>(p), n}; }

// No exception crosses the C edge: a throwing handler fails the session.
template <class F>
int guarded(F&& f) noexcept {
  try {
    return f();
  } catch (...) {
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
}

int cb_begin_headers(nghttp2_session*, const nghttp2_frame* f, void* ud) {
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  return guarded([&] { return self_of(ud)->on_begin_headers(f->hd.stream_id); });
}

int cb_header(nghttp2_session*, const nghttp2_frame* f, const std::uint8_t* name, std::size_t namelen,
              const std::uint8_t* value, std::size_t valuelen, std::uint8_t, void* ud) {
  return guarded([&] { return self_of(ud)->on_header(f->hd.stream_id, sv(name, namelen), sv(value, valuelen)); });
}

int cb_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* ud) {
  return guarded([&] { return self_of(ud)->on_begin_frame(hd->type, hd->flags, hd->length); });
}

int cb_frame_recv(nghttp2_session*, const nghttp2_frame* f, void* ud) {
  const bool request = f->hd.type == NGHTTP2_HEADERS &&
                       (f->headers.cat == NGHTTP2_HCAT_REQUEST || f->headers.cat == NGHTTP2_HCAT_HEADERS);
  return guarded(
      [&] { return self_of(ud)->on_frame_recv(f->hd.type, f->hd.flags, f->hd.stream_id, f->hd.length, request); });
}

int cb_data(nghttp2_session*, std::uint8_t, std::int32_t id, const std::uint8_t* data, std::size_t n, void* ud) {
  return guarded([&] { return self_of(ud)->on_data_bytes(id, sv(data, n)); });
}

int cb_stream_close(nghttp2_session*, std::int32_t id, std::uint32_t error_code, void* ud) {
  return guarded([&] { return self_of(ud)->on_stream_close(id, error_code); });
}

ssize_t cb_read(nghttp2_session*, std::int32_t id, std::uint8_t* buf, std::size_t length, std::uint32_t* flags,
                nghttp2_data_source*, void* ud) {
  try {
    return self_of(ud)->read_body(id, buf, length, flags);
  } catch (...) {
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
}

// RFC 9113 §8.2.2: fields that describe an HTTP/1.1 connection have no place in HTTP/2.
bool connection_specific(std::string_view lower_name) {
  return lower_name == "connection" || lower_name == "keep-alive" || lower_name == "transfer-encoding" ||
         lower_name == "upgrade" || lower_name == "proxy-connection";
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string_view http_method_name(http::Method m, std::string_view text) { return text.empty() ? "-" : text; }
}  // namespace

bool H2Connection::Bucket::take(unsigned rate, std::chrono::steady_clock::time_point now) {
  if (last == std::chrono::steady_clock::time_point{}) {
    tokens = rate;
  } else {
    const double secs = std::chrono::duration<double>(now - last).count();
    tokens = std::min<double>(rate, tokens + secs * rate);
  }
  last = now;
  if (tokens < 1) return false;
  tokens -= 1;
  return true;
}

std::string_view H2Connection::to_string(Breach b) noexcept {
  switch (b) {
    case Breach::none: return "none";
    case Breach::header_list_size: return "header_list_size";
    case Breach::header_count: return "header_count";
    case Breach::continuation: return "continuation";
    case Breach::stalled_bytes: return "stalled_bytes";
    case Breach::rapid_reset: return "rapid_reset";
    case Breach::ping_flood: return "ping_flood";
    case Breach::settings_flood: return "settings_flood";
    case Breach::empty_data: return "empty_data";
    case Breach::protocol: return "protocol";
  }
  return "unknown";
}

// ---- life ---------------------------------------------------------------------------------------------------

H2Connection::H2Connection(Worker& w, std::shared_ptr<ListenerState> l, ClientStream s, bool cleartext)
    : worker_(w),
      listener_(std::move(l)),
      stream_(std::move(s)),
      snapshot_(w.snapshot()),
      limits_(snapshot_->config.limits.http2),
      cleartext_(cleartext),
      buf_(w.acquire_buffer()),
      wake_(w.io().get_executor()) {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_option* opt = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cbs);
    throw std::bad_alloc();
  }
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, cb_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, cb_header);
  nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, cb_begin_frame);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cb_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cb_data);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cb_stream_close);
  // Our encoder's dynamic table stays within the budget whatever table size the client allows.
  nghttp2_option_set_max_deflate_dynamic_table_size(opt, limits_.hpack_table_size);
  // Backstops behind our own accounting (which sees the frames first and names the reason).
  nghttp2_option_set_max_continuations(opt, limits_.max_continuation_frames);
  nghttp2_option_set_max_settings(opt, 64);
  nghttp2_option_set_max_outbound_ack(opt, 1000);
  nghttp2_option_set_stream_reset_rate_limit(opt, 2ull * limits_.max_resets_per_second, limits_.max_resets_per_second);
  const int rv = nghttp2_session_server_new2(&session_, cbs, this, opt);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_option_del(opt);
  if (rv != 0) throw std::bad_alloc();
  boost::system::error_code ec;
  stream_.non_blocking(true, ec);
  self_ = worker_.attach_h2(this);
  listener_->open.add(1);
  listener_->accepted.inc();
  deadline_ = worker_.coarse_now() + snapshot_->config.limits.idle_timeout;
  streams_total_ = worker_.counter("virex_http2_streams_total", "HTTP/2 streams (requests) opened by clients.",
                                   {{"listener", listener_->name}});
}

H2Connection::~H2Connection() {
  nghttp2_session_del(session_);
  if (buf_) worker_.release_buffer(std::move(buf_));
  listener_->open.add(-1);
  worker_.detach_h2(self_);
}

void H2Connection::on_tick(std::chrono::steady_clock::time_point now) {
  // A proxied exchange in progress bounds itself (the cluster's timeouts): the client may well be silent.
  if (exchanges_ > 0) deadline_ = now + snapshot_->config.limits.idle_timeout;
  if (now < deadline_ || timed_out_) return;
  // Nothing read or written for idle_timeout (an idle connection, or a client that stopped reading with
  // streams open): GOAWAY and close.
  timed_out_ = true;
  boost::system::error_code ec;
  stream_.cancel(ec);
}

void H2Connection::on_drain() {
  if (draining_) return;
  draining_ = true;
  boost::system::error_code ec;
  stream_.cancel(ec);  // wakes the read: run() sends GOAWAY and finishes the open streams
}

void H2Connection::goaway(std::uint32_t error_code, std::string_view reason) {
  if (goaway_sent_) return;
  goaway_sent_ = true;
  // Graceful (NO_ERROR): streams up to the last one we processed are still answered (RFC 9113 §6.8).
  if (error_code == NGHTTP2_NO_ERROR)
    nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                          NGHTTP2_NO_ERROR, nullptr, 0);
  else
    nghttp2_session_terminate_session(session_, error_code);
  worker_.counter("virex_http2_goaways_total", "GOAWAY frames sent to HTTP/2 clients, by reason.",
                  {{"listener", listener_->name}, {"reason", std::string(reason)}})
      .inc();
}

void H2Connection::breach(Breach b) {
  if (breach_ != Breach::none) return;
  breach_ = b;
  worker_.counter("virex_http2_budget_breaches_total",
                  "HTTP/2 connections closed for breaching their resource budget (limits.http2), by reason.",
                  {{"listener", listener_->name}, {"reason", std::string(to_string(b))}})
      .inc();
  const bool malformed = b == Breach::protocol;
  goaway(malformed ? NGHTTP2_PROTOCOL_ERROR : NGHTTP2_ENHANCE_YOUR_CALM, to_string(b));
}

Awaitable<bool> H2Connection::flush() {
  for (;;) {
    out_.clear();
    for (;;) {
      const std::uint8_t* p = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session_, &p);
      if (n < 0) co_return false;
      if (n == 0) break;
      out_.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
      if (out_.size() >= kWriteBatch) break;
    }
    if (out_.empty()) co_return true;
    auto [ec, n] = co_await stream_.async_write(asio::const_buffer(out_.data(), out_.size()), token);
    listener_->bytes_out.inc(n);
    if (ec) co_return false;
    deadline_ = worker_.coarse_now() + snapshot_->config.limits.idle_timeout;
    if (stalled_bytes() > limits_.max_stalled_bytes) breach(Breach::stalled_bytes);
  }
}

void H2Connection::wake() noexcept {
  wake_pending_ = true;
  wake_.cancel();
}

Awaitable<void> H2Connection::run(H2Connection* raw) {
  std::unique_ptr<H2Connection> self(raw);
  H2Connection& c = *self;
  const nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, c.limits_.max_concurrent_streams},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<std::uint32_t>(c.limits_.max_header_list_size)},
      {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, static_cast<std::uint32_t>(c.limits_.hpack_table_size)},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kInitialWindow},
  };
  nghttp2_submit_settings(c.session_, NGHTTP2_FLAG_NONE, iv, std::size(iv));
  {
    using namespace boost::asio::experimental::awaitable_operators;
    co_await (c.reader() && c.writer());
  }
  // Proxied exchanges still running hold `this`: end them (their upstream sockets are cancelled) and wait.
  c.closing_ = true;
  while (c.exchanges_ > 0) {
    boost::system::error_code ec;
    for (auto& [id, st] : c.streams_) {
      if (st->upstream) st->upstream->cancel(ec);
      if (st->drained) st->drained->cancel();
    }
    c.wake_pending_ = false;
    c.wake_.expires_at(std::chrono::steady_clock::time_point::max());
    co_await c.wake_.async_wait(token);
  }
  boost::system::error_code ignored;
  c.stream_.shutdown(ClientStream::shutdown_both, ignored);
  c.stream_.close(ignored);
}

Awaitable<void> H2Connection::writer() {
  for (;;) {
    wake_pending_ = false;
    if (!co_await flush()) break;
    if (closing_ || breach_ != Breach::none) break;
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_) && exchanges_ == 0) break;
    if (wake_pending_) continue;
    wake_.expires_at(std::chrono::steady_clock::time_point::max());
    co_await wake_.async_wait(token);
  }
  // A write failed, a breach ended the connection, or the session is over: the reader stops too.
  closing_ = true;
  boost::system::error_code ec;
  stream_.cancel(ec);
}

Awaitable<void> H2Connection::reader() {
  try {
    for (;;) {
      if (closing_ || breach_ != Breach::none) break;
      if (!nghttp2_session_want_read(session_)) break;
      if ((draining_ || worker_.draining()) && !goaway_sent_) {
        goaway(NGHTTP2_NO_ERROR, "drain");
        wake();
      }
      auto [ec, n] = co_await stream_.async_read_some(asio::buffer(buf_.get(), kReadBufferSize), token);
      if (ec) {
        if (closing_) break;
        if (ec == asio::error::operation_aborted && draining_ && !timed_out_) continue;  // GOAWAY above
        if (ec == asio::error::operation_aborted && timed_out_) goaway(NGHTTP2_NO_ERROR, "idle");
        break;
      }
      listener_->bytes_in.inc(n);
      deadline_ = worker_.coarse_now() + snapshot_->config.limits.idle_timeout;
      const ssize_t rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const std::uint8_t*>(buf_.get()), n);
      if (rv < 0) {
        if (breach_ == Breach::none) {
          switch (rv) {
            case NGHTTP2_ERR_TOO_MANY_CONTINUATIONS: breach(Breach::continuation); break;
            case NGHTTP2_ERR_TOO_MANY_SETTINGS: breach(Breach::settings_flood); break;
            case NGHTTP2_ERR_FLOODED: breach(Breach::ping_flood); break;
            case NGHTTP2_ERR_BAD_CLIENT_MAGIC: goaway(NGHTTP2_PROTOCOL_ERROR, "bad_preface"); break;
            default: breach(Breach::protocol); break;
          }
        }
        break;
      }
      for (const std::int32_t id : ready_) {
        auto it = streams_.find(id);
        if (it != streams_.end() && !it->second->responded) respond(*it->second);
      }
      ready_.clear();
      wake();
    }
  } catch (const std::exception& e) {
    spdlog::error("h2 connection: {}", e.what());
  }
  // Whatever is queued (a GOAWAY, the last responses) still goes out; then the writer ends.
  closing_ = true;
  wake();
}

// ---- nghttp2 events -----------------------------------------------------------------------------------------

int H2Connection::on_begin_frame(std::uint8_t type, std::uint8_t, std::size_t) {
  if (breach_ != Breach::none) return NGHTTP2_ERR_CALLBACK_FAILURE;
  if (type == NGHTTP2_HEADERS) {
    continuations_ = 0;
  } else if (type == NGHTTP2_CONTINUATION && ++continuations_ > limits_.max_continuation_frames) {
    breach(Breach::continuation);
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

int H2Connection::on_begin_headers(std::int32_t id) {
  auto st = std::make_shared<Stream>();
  st->id = id;
  st->start = std::chrono::steady_clock::now();
  if (worker_.access_log_enabled()) st->wall = std::chrono::system_clock::now();
  streams_[id] = std::move(st);
  streams_total_.inc();
  return 0;
}

int H2Connection::on_header(std::int32_t id, std::string_view name, std::string_view value) {
  if (breach_ != Breach::none) return NGHTTP2_ERR_CALLBACK_FAILURE;
  auto it = streams_.find(id);
  if (it == streams_.end()) return 0;
  Stream& st = *it->second;
  // The budget is per header block, counted as RFC 9113 §6.5.2 counts it: an HPACK bomb (one big field
  // referenced from the dynamic table many times) is caught here, however few bytes it took on the wire.
  st.header_bytes += name.size() + value.size() + 32;
  st.bytes_in += name.size() + value.size() + 32;
  if (++st.header_count > limits_.max_header_count) {
    breach(Breach::header_count);
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  if (st.header_bytes > limits_.max_header_list_size) {
    breach(Breach::header_list_size);
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  if (st.responded) return 0;  // trailers: counted, not kept
  if (name == ":method") st.method = value;
  else if (name == ":path") st.path = value;
  else if (name == ":authority") st.authority = value;
  else if (name == ":scheme") st.scheme = value;
  else if (!name.empty() && name.front() != ':') st.fields.emplace_back(name, value);
  return 0;
}

int H2Connection::on_frame_recv(std::uint8_t type, std::uint8_t flags, std::int32_t id, std::size_t length,
                                bool request_headers) {
  if (breach_ != Breach::none) return NGHTTP2_ERR_CALLBACK_FAILURE;
  const auto now = worker_.coarse_now();
  switch (type) {
    case NGHTTP2_RST_STREAM:
      // CVE-2023-44487: opening and resetting streams costs the client nothing and us a request each.
      if (!resets_.take(limits_.max_resets_per_second, now)) return breach(Breach::rapid_reset), NGHTTP2_ERR_CALLBACK_FAILURE;
      break;
    case NGHTTP2_PING:
      if (!(flags & NGHTTP2_FLAG_ACK) && !pings_.take(limits_.max_pings_per_second, now))
        return breach(Breach::ping_flood), NGHTTP2_ERR_CALLBACK_FAILURE;
      break;
    case NGHTTP2_SETTINGS:
      if (!(flags & NGHTTP2_FLAG_ACK) && !settings_.take(limits_.max_settings_per_second, now))
        return breach(Breach::settings_flood), NGHTTP2_ERR_CALLBACK_FAILURE;
      break;
    case NGHTTP2_DATA:
      if (length == 0 && !(flags & NGHTTP2_FLAG_END_STREAM) && !empty_data_.take(limits_.max_empty_data_per_second, now))
        return breach(Breach::empty_data), NGHTTP2_ERR_CALLBACK_FAILURE;
      break;
    default: break;
  }
  if (type == NGHTTP2_HEADERS) {
    continuations_ = 0;
    if (auto it = streams_.find(id); it != streams_.end()) it->second->header_bytes = 0;  // trailers: a new block
  }
  if ((type == NGHTTP2_DATA || (type == NGHTTP2_HEADERS && request_headers)) && (flags & NGHTTP2_FLAG_END_STREAM))
    ready_.push_back(id);
  return 0;
}

int H2Connection::on_data(std::int32_t id, std::size_t n) {
  if (auto it = streams_.find(id); it != streams_.end()) it->second->bytes_in += n;
  return 0;
}

int H2Connection::on_data_bytes(std::int32_t id, std::string_view data) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return 0;
  Stream& st = *it->second;
  st.bytes_in += data.size();
  // Kept for a proxied route (bounded: past limits.max_body_bytes the request gets 413); dropped otherwise.
  if (st.req_too_large) return 0;
  if (st.req_body.size() + data.size() > snapshot_->config.limits.max_body_bytes) {
    st.req_too_large = true;
    std::string().swap(st.req_body);
    return 0;
  }
  if (!st.path.empty()) st.req_body.append(data);
  return 0;
}

int H2Connection::on_stream_close(std::int32_t id, std::uint32_t error_code) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return 0;
  Stream& st = *it->second;
  st.closed = true;
  if (st.responded && !st.finished) {
    st.error = error_code == NGHTTP2_NO_ERROR ? std::string_view{} : std::string_view("client_reset");
    finish(st);
  }
  boost::system::error_code ec;
  if (st.upstream) st.upstream->cancel(ec);  // a proxied exchange for a stream the client reset ends now
  if (st.drained) st.drained->cancel();
  streams_.erase(it);
  return 0;
}

long H2Connection::read_body(std::int32_t id, std::uint8_t* buf, std::size_t length, std::uint32_t* flags) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  Stream& st = *it->second;
  if (st.proxied) {
    const std::size_t avail = st.pending.size() - st.pending_off;
    if (avail == 0 && !st.upstream_eof) {
      st.deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    const std::size_t n = std::min(length, avail);
    std::memcpy(buf, st.pending.data() + st.pending_off, n);
    st.pending_off += n;
    st.body_off += n;
    if (st.pending_off == st.pending.size()) {
      st.pending.clear();
      st.pending_off = 0;
    } else if (st.pending_off > 32 * 1024) {
      st.pending.erase(0, st.pending_off);
      st.pending_off = 0;
    }
    if (st.drained) st.drained->cancel();  // room again: the exchange reads more from the upstream
    if (st.upstream_eof && st.pending.empty()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!st.trailers.empty()) {
        // The upstream's trailer section: a HEADERS frame with END_STREAM after this last DATA (RFC 9113 §8.1).
        std::vector<nghttp2_nv> nva;
        nva.reserve(st.trailers.size());
        for (auto& [n, v] : st.trailers) {
          nva.push_back({reinterpret_cast<std::uint8_t*>(n.data()), reinterpret_cast<std::uint8_t*>(v.data()),
                         n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
          st.head_bytes += n.size() + v.size();
        }
        if (nghttp2_submit_trailer(session_, st.id, nva.data(), nva.size()) == 0)
          *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        else
          st.error = "trailer_submit_failed";  // the stream still ends, without them
        st.trailers.clear();
      }
      finish(st);
    }
    return static_cast<long>(n);
  }
  const std::size_t n = std::min(length, st.body.size() - st.body_off);
  std::memcpy(buf, st.body.data() + st.body_off, n);
  st.body_off += n;
  if (st.body_off == st.body.size()) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    finish(st);
  }
  return static_cast<long>(n);
}

std::size_t H2Connection::stalled_bytes() const {
  // Only bytes this connection holds: an owned response, or a cache entry it pins. A route's prepared body is
  // the snapshot's, shared by every connection, and costs nothing per stream.
  std::size_t total = 0;
  const bool conn_stalled = nghttp2_session_get_remote_window_size(session_) <= 0;
  for (const auto& [id, st] : streams_) {
    if (!st->responded) continue;
    const std::size_t held = st->proxied ? st->pending.size() - st->pending_off
                             : st->body_owned && st->body_off < st->body.size()
                                 ? st->body.size() - st->body_off + (st->hold ? st->hold->head.size() : 0)
                                 : 0;
    if (held && (conn_stalled || nghttp2_session_get_stream_remote_window_size(session_, id) <= 0)) total += held;
  }
  return total;
}

// ---- the pipeline -------------------------------------------------------------------------------------------

void H2Connection::respond(Stream& st) {
  st.responded = true;
  std::vector<http::Header> fields;
  fields.reserve(st.fields.size());
  for (const auto& [n, v] : st.fields) fields.push_back({n, v});
  http::RequestHead h;
  st.request_line(h);
  // RFC 9113 §8.3.1: :authority stands for Host; the port is not part of the route's host match.
  std::string_view host = st.authority;
  if (host.empty())
    for (const auto& f : fields)
      if (f.name == "host") host = f.value;
  if (const auto colon = host.rfind(':'); colon != std::string_view::npos && host.find(']', colon) == std::string_view::npos)
    host = host.substr(0, colon);
  h.host = host;
  h.version = 11;
  h.headers = fields;
  if (const auto cl = h.header("content-length"); !cl.empty()) {
    std::uint64_t v = 0;
    for (char ch : cl) v = v * 10 + static_cast<unsigned>(ch - '0');
    h.content_length = v;
  }
  const bool head_only = h.method == http::Method::head;
  const std::string_view date = worker_.date_line();
  const auto owned_response = [&](unsigned status) {
    st.status = status;
    submit_owned(st, head_only);
  };
  if (listener_->admin) {
    const admin::Endpoint e = admin::classify(h.path);
    if (e == admin::Endpoint::purge) {
      // The purge API reads a JSON body and credentials; it is served over HTTP/1.1 only.
      http::append_simple_response(st.owned, 505, date, "the purge API is served over HTTP/1.1\n",
                                   http::ConnectionHeader::none, head_only);
      st.error = "purge_over_h2";
      return owned_response(505);
    }
    return owned_response(admin::respond(e, h.method, worker_.admin_context(), st.owned, date,
                                         http::ConnectionHeader::none));
  }
  pipeline::Match m = snapshot_->routes.match(h.host, h.path, h.method, h.method_text);
  if (!m.route) {
    if (m.method_not_allowed) {
      const std::string allow = "Allow: " + m.allow + "\r\n";
      http::append_simple_response(st.owned, 405, date, "method not allowed\n", http::ConnectionHeader::none,
                                   head_only, allow);
      return owned_response(405);
    }
    http::append_simple_response(st.owned, 404, date, "no route\n", http::ConnectionHeader::none, head_only);
    return owned_response(404);
  }
  st.route = m.route;
  const pipeline::CompiledRoute& r = *m.route;
  if (!r.upstream && !r.query) {
    // A `respond` route: its prepared head (status line and fields) and this response's Date.
    std::string head = r.response.head;
    http::append_tail(head, date, http::ConnectionHeader::none);
    st.status = r.response.status;
    return submit(st, head, head_only ? std::string_view{} : std::string_view(r.response.body));
  }
  // An `upstream` or `query` route: answered here from a fresh edge-cache entry (the same key, Vary and freshness
  // rules as HTTP/1.1); a miss goes to the origin (proxy()) or the databases (query()), which store the response
  // when they may.
  if (r.cache && worker_.edge_cache() && !r.cache_policy.private_scope &&
      (h.method == http::Method::get || h.method == http::Method::head)) {
    std::string& key = st.cache_key;
    std::string variant;
    cache::build_key(key, h, r.cache_key);
    const std::uint64_t hash = st.cache_hash = upstream::hash_key(key);
    cache::Store& store = *worker_.edge_cache();
    auto e = store.lookup(key, hash);
    st.fwd = cache::Forward::uri_miss;
    if (e && !e->vary.empty()) {
      std::vector<http::Header> vary;
      for (const std::string& name : e->vary) vary.push_back({"Vary", name});
      e = cache::vary_key(variant, h, vary) ? store.lookup(key, hash, variant) : nullptr;
      if (!e) st.fwd = cache::Forward::vary_miss;
    }
    st.cacheable = h.method == http::Method::get && !h.has_body() && st.req_body.empty();
    if (e) {
      st.fwd = cache::Forward::stale;  // unless it is fresh, below: refetched (no revalidation over HTTP/2 yet)
      const auto in_cache =
          std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - e->stored_at);
      cache::StoreDecision d;
      d.store = true;
      d.ttl = std::chrono::seconds(e->ttl);
      if (!e->stale.load(std::memory_order_relaxed) && cache::usability(d, in_cache) == cache::Usability::fresh) {
        worker_.route_series(*listener_, *snapshot_, r.index).cache[static_cast<std::size_t>(CacheResult::hit)].inc();
        std::string head = e->head;
        head.append("Age: ").append(std::to_string(static_cast<std::int64_t>(e->initial_age) + in_cache.count()));
        head.append("\r\nCache-Status: ");
        cache::CacheStatus cs;
        cs.hit = true;
        cs.ttl = static_cast<std::int64_t>(e->ttl) - in_cache.count();
        cache::append_cache_status(head, cs);
        head.append("\r\n");
        http::append_tail(head, date, http::ConnectionHeader::none);
        st.hold = e;
        st.cache = "edge=hit";
        st.status = e->status;
        st.body_owned = true;  // pins the entry while it streams
        return submit(st, head, head_only ? std::string_view{} : std::string_view(e->body));
      }
    }
    st.cache = st.fwd == cache::Forward::stale ? "edge=stale" : "edge=miss";
    worker_.route_series(*listener_, *snapshot_, r.index)
        .cache[static_cast<std::size_t>(st.fwd == cache::Forward::stale ? CacheResult::stale : CacheResult::miss)]
        .inc();
  }
  if (st.req_too_large) {
    http::append_simple_response(st.owned, 413, date, "request body too large\n", http::ConnectionHeader::none,
                                 head_only);
    st.error = "body_too_large";
    return owned_response(413);
  }
  auto it = streams_.find(st.id);
  if (it == streams_.end()) return;
  if (r.query) {
    QueryRequest in;
    in.snapshot = snapshot_;
    in.route = &r;
    for (std::size_t i = 0; i < m.ncaptures; ++i) in.captures.emplace_back(m.captures[i].name, m.captures[i].value);
    in.query.assign(h.query);
    in.host.assign(h.host);
    for (char& ch : in.host) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    in.path.assign(h.path);
    in.accept.assign(h.header("accept").substr(0, 256));
    in.body = std::move(st.req_body);
    in.body_too_large = in.body.size() > kMaxQueryBody;
    // The variant key of this request's Accept, for storing the answer (computed while the head is here).
    if (st.cacheable && r.cache && !r.cache_policy.private_scope) {
      const std::array<http::Header, 1> vary = {http::Header{"Vary", "accept"}};
      cache::vary_key(st.variant_key, h, vary);
    }
    ++exchanges_;
    asio::co_spawn(worker_.io(), query(it->second, std::move(in), head_only), asio::detached);
    return;
  }
  st.proxied = true;
  ++exchanges_;
  asio::co_spawn(worker_.io(), proxy(it->second), asio::detached);
}

Awaitable<void> H2Connection::query(std::shared_ptr<Stream> hold, QueryRequest in, bool head_only) {
  Stream& st = *hold;
  struct Done {  // however it ends: no longer counted, the connection may finish
    H2Connection& c;
    ~Done() {
      --c.exchanges_;
      c.wake();
    }
  } done{*this};
  const pipeline::CompiledRoute& route = *in.route;
  const bool read = route.query->reads();
  QueryResponse out;
  QueryPlan plan;
  shard::ResultSet rows;
  std::string missing;
  if (plan_query(in, plan, out) && co_await run_query(worker_, in, std::move(plan), rows, missing, out)) {
    if (!read) {  // after commit: as over HTTP/1.1 (query.cpp), this node's edge, then the region and fleet
      for (auto& [kind, value] : query_invalidations(in)) {
        if (cache::Store* store = worker_.edge_cache()) purge_edge(*store, kind, value);
        co_await regional_purge_wait(worker_, std::move(kind), std::move(value));
      }
    }
    encode_rows(in, rows, read, missing, out);
    // A complete answer to a cacheable GET goes into the edge cache (the regional tier is HTTP/1.1's so far).
    const bool store = st.cacheable && route.cache && !route.cache_policy.private_scope && missing.empty() &&
                       route.cache_policy.edge_ttl && worker_.edge_cache() &&
                       out.body.size() <= worker_.edge_cache_max_object();
    if (route.cache) {
      cache::CacheStatus cs;
      cs.fwd = st.fwd;
      cs.stored = store;
      if (store) cs.ttl = route.cache_policy.edge_ttl->count();
      out.extra.append("Cache-Status: ");
      cache::append_cache_status(out.extra, cs);
      out.extra.append("\r\n");
    }
    if (store) worker_.edge_cache()->insert(query_entry(in, out, st.cache_key, st.variant_key), st.cache_hash);
  }
  if (st.closed) co_return;  // the client reset the stream while the statement ran (logged then)
  st.shards = std::move(out.shards);
  st.error = out.error;
  st.status = out.status;
  http::append_body_response(st.owned, out.status, out.content_type, out.body, worker_.date_line(),
                             http::ConnectionHeader::none, head_only, out.extra);
  submit_owned(st, head_only);
}

void H2Connection::submit_owned(Stream& st, bool head_only) {
  const std::size_t end = st.owned.find("\r\n\r\n");
  const std::string_view all(st.owned);
  submit(st, all.substr(0, end == std::string::npos ? all.size() : end + 2),
         end == std::string::npos || head_only ? std::string_view{} : all.substr(end + 4));
  st.body_owned = true;
}

// Re-frames an HTTP/1.1 response head ("HTTP/1.1 200 OK\r\nName: value\r\n…") as HEADERS, and `body` as DATA.
void H2Connection::submit(Stream& st, std::string_view h1_head, std::string_view body) {
  std::vector<std::string> text;   // lower-case names and values; nghttp2 copies them on submit
  text.reserve(32);
  std::size_t line_end = h1_head.find("\r\n");
  const std::string_view status_line = h1_head.substr(0, line_end);
  text.emplace_back(":status");
  text.emplace_back(status_line.size() >= 12 ? status_line.substr(9, 3) : std::string_view("500"));
  while (line_end != std::string_view::npos && line_end + 2 < h1_head.size()) {
    const std::size_t from = line_end + 2;
    line_end = h1_head.find("\r\n", from);
    const std::string_view line = h1_head.substr(from, line_end == std::string_view::npos ? line_end : line_end - from);
    const std::size_t colon = line.find(':');
    if (line.empty() || colon == std::string_view::npos) continue;
    std::string name(line.substr(0, colon));
    for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (connection_specific(name)) continue;
    text.push_back(std::move(name));
    text.emplace_back(trim(line.substr(colon + 1)));
  }
  std::vector<nghttp2_nv> nva;
  nva.reserve(text.size() / 2);
  st.head_bytes = 0;
  for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
    nva.push_back({reinterpret_cast<std::uint8_t*>(text[i].data()), reinterpret_cast<std::uint8_t*>(text[i + 1].data()),
                   text[i].size(), text[i + 1].size(), NGHTTP2_NV_FLAG_NONE});
    st.head_bytes += text[i].size() + text[i + 1].size();
  }
  st.body = body;
  st.body_off = 0;
  nghttp2_data_provider prd{};
  prd.read_callback = cb_read;
  const int rv = nghttp2_submit_response(session_, st.id, nva.data(), nva.size(), body.empty() ? nullptr : &prd);
  if (rv != 0) {
    st.error = "submit_failed";
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, st.id, NGHTTP2_INTERNAL_ERROR);
  }
  if (body.empty() || rv != 0) finish(st);
}

void H2Connection::finish(Stream& st) {
  if (st.finished) return;
  st.finished = true;
  const pipeline::Snapshot& s = *snapshot_;
  const std::uint32_t idx = st.route ? st.route->index : static_cast<std::uint32_t>(s.routes.routes().size());
  RouteSeries& series = worker_.route_series(*listener_, s, idx);
  const unsigned cls = st.status / 100;
  if (cls >= 1 && cls <= 5) series.by_class[cls - 1].inc();
  const auto duration =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - st.start);
  series.duration.observe(static_cast<std::uint64_t>(duration.count()));
  if (!worker_.access_log_enabled()) return;
  if (client_.empty()) {
    boost::system::error_code ec;
    const auto ep = stream_.remote_endpoint(ec);
    client_ = ec ? "-" : (ep.address().is_v6() ? "[" + ep.address().to_string() + "]" : ep.address().to_string()) +
                             ":" + std::to_string(ep.port());
  }
  observe::AccessRecord r;
  r.time = st.wall.time_since_epoch().count() ? st.wall : std::chrono::system_clock::now();
  r.client = client_;
  r.method = http_method_name(http::Method::other, st.method);
  r.target = st.path;
  r.host = st.authority;
  std::string_view referer, agent;
  for (const auto& [n, v] : st.fields) {
    if (n == "referer") referer = v;
    else if (n == "user-agent") agent = v;
  }
  r.referer = referer;
  r.user_agent = agent;
  r.version = "HTTP/2.0";
  r.status = st.status;
  r.bytes_in = st.bytes_in;
  r.bytes_out = st.head_bytes + st.body_off;
  r.body_bytes = st.body_off;
  r.duration = duration;
  r.route = st.route ? std::string_view(st.route->name) : std::string_view{};
  r.cache = st.cache;
  r.error = st.error;
  r.shards = st.shards;
  worker_.log_access(r);
}

}  // namespace virex::server
