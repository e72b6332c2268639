// The reverse-proxy exchange of one HTTP/2 stream (see H2Connection::proxy): the HTTP/2 side of what proxy.cpp
// does for an HTTP/1.1 connection, on the same upstream pieces (balancer, worker pool, request head writer,
// response codec, Proxy-Status errors). One try, plus one more on a pooled connection the upstream had closed;
// no coalescing. An edge-cache miss on a caching route is stored as the HTTP/1.1 path stores it (decide(),
// make_entry(), seal(); bodies over max_object_bytes pass through unstored). A chunked body's trailer fields go
// on as trailing HEADERS (RFC 9110 §6.5, RFC 9113 §8.1). RFC 9110 §7.6, RFC 9113 §8.2.2, RFC 9209. Runs on the connection's worker thread as its own coroutine; holds the stream alive.
#include "cache_fill.hpp"
#include "h2_connection.hpp"
#include "h2_stream.hpp"

#include <virex/cache/cache_status.hpp>
#include <virex/cache/freshness.hpp>

#include <virex/http/h1_response_parser.hpp>
#include <virex/http/response.hpp>
#include <virex/upstream/balancer.hpp>
#include <virex/upstream/cluster.hpp>
#include <virex/upstream/forward.hpp>
#include <virex/upstream/pool.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/write.hpp>

#include <nghttp2/nghttp2.h>

#include <cctype>
#include <cstring>
#include <span>

namespace virex::server {
namespace {
constexpr auto token = asio::as_tuple(core::kUseAwaitable);
constexpr std::size_t kStreamBuffer = 64 * 1024;   // body bytes held per stream before reading the upstream waits
constexpr std::size_t kMaxUpstreamHead = 64 * 1024;
using upstream::ProxyErrc;

// A deadline for one stage of the exchange: cancels the upstream socket when it passes.
struct Deadline {
  Timer timer;
  bool expired = false;
  explicit Deadline(asio::io_context& io) : timer(io.get_executor()) {}
  void arm(core::Socket* s, config::Duration d) {
    expired = false;
    timer.expires_after(d);
    timer.async_wait([this, s](boost::system::error_code ec) {
      if (ec) return;
      expired = true;
      boost::system::error_code ignored;
      s->cancel(ignored);
    });
  }
  ~Deadline() { timer.cancel(); }
};

// Fields a trailer section may not carry or that a proxy must not pass on (RFC 9110 §6.5.1): framing, routing,
// connection-specific ones (RFC 9113 §8.2.2; a trailer is hop-to-hop content otherwise), and response control
// data and content metadata that only the header section can carry. Lower-case names.
bool dropped_trailer(std::string_view n) {
  static constexpr std::string_view kDropped[] = {
      "content-length", "transfer-encoding", "host", "connection", "keep-alive", "proxy-connection", "te",
      "upgrade", "trailer", "content-encoding", "content-type", "content-range", "cache-control", "expires",
      "age", "date", "location", "retry-after", "vary", "set-cookie", "authorization", "www-authenticate",
      "proxy-authenticate", "proxy-authorization", "range", "if-match", "if-none-match", "if-modified-since",
      "if-unmodified-since", "if-range", "max-forwards", "expect"};
  for (const std::string_view d : kDropped)
    if (n == d) return true;
  return false;
}

// The trailer fields of a complete chunked response, as the stream will send them.
void keep_trailers(std::vector<std::pair<std::string, std::string>>& out, std::span<const http::Header> in) {
  out.clear();
  for (const http::Header& f : in) {
    std::string name(f.name);
    for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (!dropped_trailer(name)) out.emplace_back(std::move(name), std::string(f.value));
  }
}
}  // namespace

void H2Connection::proxy_error(Stream& st, unsigned status, std::string_view error, std::string_view details) {
  if (st.closed) return;
  std::string extra = "Proxy-Status: virex-edge; error=";
  extra.append(error);
  if (!details.empty()) extra.append("; details=\"").append(details).append("\"");
  extra.append("\r\n");
  std::string body(error);
  body.push_back('\n');
  st.owned.clear();
  http::append_simple_response(st.owned, status, worker_.date_line(), body, http::ConnectionHeader::none,
                               st.method == "HEAD", extra);
  st.status = status;
  st.error = error;
  st.proxied = false;
  st.body_owned = true;
  const std::size_t end = st.owned.find("\r\n\r\n");
  const std::string_view all(st.owned);
  submit(st, all.substr(0, end + 2), st.method == "HEAD" ? std::string_view{} : all.substr(end + 4));
  wake();
}

Awaitable<void> H2Connection::proxy(std::shared_ptr<Stream> hold) {
  Stream& st = *hold;
  struct Done {  // however the exchange ends: no longer counted, the connection may finish
    H2Connection& c;
    Stream& st;
    ~Done() {
      st.upstream = nullptr;
      --c.exchanges_;
      c.wake();
    }
  } done{*this, st};
  const std::shared_ptr<const pipeline::Snapshot> snap = snapshot_;
  const pipeline::CompiledRoute& route = *st.route;
  const config::RouteUpstream& ru = *route.upstream;
  const pipeline::Cluster& cl = snap->clusters[route.cluster];
  const config::Upstream& cfg = *cl.config;
  const std::shared_ptr<upstream::WorkerPool> pool_hold = worker_.upstream_pool(cl);
  upstream::WorkerPool& pool = *pool_hold;
  upstream::ClusterState& cs = *cl.state;

  // The request as the HTTP/1.1 writer wants it: Host from :authority, framing from the buffered body.
  std::vector<http::Header> fields;
  fields.reserve(st.fields.size() + 1);
  bool has_host = false;
  for (const auto& [n, v] : st.fields) {
    if (n == "content-length" || n == "te") continue;  // re-framed below; TE is hop-by-hop (RFC 9110 §10.1.4)
    if (n == "host") has_host = true;
    fields.push_back({n, v});
  }
  if (!has_host && !st.authority.empty()) fields.push_back({"Host", st.authority});
  http::RequestHead h;
  st.request_line(h);
  h.host = st.authority;
  h.version = 11;
  h.headers = fields;
  if (!st.req_body.empty() || (h.method != http::Method::get && h.method != http::Method::head))
    h.content_length = st.req_body.size();
  std::string path;
  upstream::rewrite_path(path, h.path, ru.strip_prefix, ru.add_prefix);
  if (client_ip_.empty()) {
    boost::system::error_code ec;
    auto a = stream_.remote_endpoint(ec).address();
    if (a.is_v6() && a.to_v6().is_v4_mapped()) a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
    client_ip_ = ec ? "unknown" : a.to_string();
  }
  upstream::RequestForward f;
  f.path = path;
  f.query = h.query;
  f.client_addr = client_ip_;
  f.client_trusted = !snap->config.proxy.trusted_proxies.empty() &&
                     upstream::is_trusted(snap->config.proxy.trusted_proxies, f.client_addr);
  f.proto = cleartext_ ? "http" : "https";
  f.host_override = cfg.host_header;
  f.via = worker_.via();
  std::string head;
  upstream::append_request_head(head, h, f);

  if (!cs.try_acquire(cs.requests, cfg.limits.max_requests)) {
    pool.series().rejected[2].inc();
    co_return proxy_error(st, 503, upstream::to_string(ProxyErrc::connection_limit_reached), "max_requests");
  }
  struct RequestSlot {
    upstream::ClusterState& cs;
    ~RequestSlot() { cs.requests.fetch_sub(1, std::memory_order_relaxed); }
  } request_slot{cs};

  std::uint64_t key_hash = 0;
  bool has_key = false;
  if (cfg.balance == config::Balance::consistent_hash) {
    const std::string_view key = upstream::hash_input(h, cfg.hash_on, cfg.hash_key);
    has_key = !key.empty();
    if (has_key) key_hash = upstream::hash_key(key);
  }
  std::vector<upstream::Candidate> cands(cs.size());
  const auto now = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < cs.size(); ++i) {
    const upstream::EndpointState& e = cs.endpoint(i);
    cands[i].available = e.available(now);
    cands[i].active = e.active.load(std::memory_order_relaxed);
  }
  const auto pick = cl.balancer->pick(cands, pool.pick_state(), has_key, key_hash, 0);
  if (!pick) co_return proxy_error(st, 503, upstream::to_string(ProxyErrc::destination_unavailable), "no healthy endpoint");
  const std::uint32_t endpoint = *pick;
  upstream::EndpointState& ep = cs.endpoint(endpoint);
  ep.active.fetch_add(1, std::memory_order_relaxed);
  struct Active {
    upstream::EndpointState& e;
    ~Active() { e.active.fetch_sub(1, std::memory_order_relaxed); }
  } active{ep};
  st.upstream_name = ep.name;

  Deadline deadline(worker_.io());
  http::H1ResponseParser parser;
  std::unique_ptr<char[]> ubuf(new char[kReadBufferSize]);
  std::size_t ucap = kReadBufferSize, ubegin = 0, uend = 0;
  std::unique_ptr<upstream::UpstreamConn> conn;
  ProxyErrc err = ProxyErrc::none;
  std::chrono::steady_clock::time_point sent_at;
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool reused = false;
    err = ProxyErrc::none;
    conn = pool.take_idle(endpoint, worker_.coarse_now());
    if (conn) {
      reused = true;
      pool.series().reused.inc();
    } else {
      core::tcp::endpoint addr;
      if (!pool.address(endpoint, addr)) co_return proxy_error(st, 503, upstream::to_string(ProxyErrc::destination_unavailable), "no address");
      conn = pool.open(endpoint, cfg.limits.max_connections);
      if (!conn) {
        pool.series().rejected[0].inc();
        co_return proxy_error(st, 503, upstream::to_string(ProxyErrc::connection_limit_reached), "max_connections");
      }
      st.upstream = &conn->socket;
      deadline.arm(&conn->socket, cfg.timeouts.connect);
      auto [ec] = co_await conn->socket.async_connect(addr, token);
      if (st.closed) co_return;
      if (ec) {
        err = deadline.expired ? ProxyErrc::connection_timeout : ProxyErrc::connection_refused;
        break;
      }
      boost::system::error_code ignored;
      conn->socket.set_option(core::tcp::no_delay(true), ignored);
    }
    st.upstream = &conn->socket;
    ++conn->requests;
    pool.endpoint_series(endpoint).requests.inc();
    const std::array<asio::const_buffer, 2> out{asio::buffer(head), asio::buffer(st.req_body)};
    deadline.arm(&conn->socket, ru.idle.value_or(cfg.timeouts.idle));
    auto [wec, wn] = co_await asio::async_write(conn->socket, out, token);
    if (st.closed) co_return;
    if (wec) {
      err = deadline.expired ? ProxyErrc::connection_read_timeout : ProxyErrc::connection_terminated;
      if (reused) continue;  // a pooled connection the upstream had closed: one fresh try
      break;
    }
    sent_at = std::chrono::steady_clock::now();
    // ---- the response head ----
    parser.next();
    parser.set_head_request(h.method == http::Method::head);
    ubegin = uend = 0;
    deadline.arm(&conn->socket, ru.first_byte.value_or(cfg.timeouts.first_byte));
    bool got_head = false;
    while (!got_head && err == ProxyErrc::none) {
      while (ubegin < uend) {
        const auto r = parser.feed(std::string_view(ubuf.get() + ubegin, uend - ubegin));
        ubegin += r.consumed;
        using E = http::H1ResponseParser::Event;
        if (r.event == E::head) {
          if (parser.head().status >= 200) {
            got_head = true;
            break;
          }
          continue;  // 1xx interim: dropped
        }
        if (r.event == E::complete) {
          parser.next();
          parser.set_head_request(h.method == http::Method::head);
          continue;
        }
        if (r.event == E::error) err = ProxyErrc::http_response_incomplete;
        break;
      }
      if (got_head || err != ProxyErrc::none) break;
      if (uend == ucap) {
        if (ucap >= kMaxUpstreamHead) {
          err = ProxyErrc::http_protocol_error;
          break;
        }
        std::unique_ptr<char[]> nb(new char[ucap * 2]);
        std::memcpy(nb.get(), ubuf.get(), uend);
        ubuf = std::move(nb);
        ucap *= 2;
      }
      auto [ec, n] = co_await conn->socket.async_read_some(asio::buffer(ubuf.get() + uend, ucap - uend), token);
      if (st.closed) co_return;
      if (ec) {
        err = deadline.expired ? ProxyErrc::http_response_timeout : ProxyErrc::connection_terminated;
        break;
      }
      uend += n;
    }
    if (err == ProxyErrc::connection_terminated && reused && !parser.in_message()) continue;
    break;
  }
  using O = upstream::ClusterState::Outcome;
  const auto outcome_time = std::chrono::steady_clock::now();
  if (err != ProxyErrc::none) {
    pool.series().errors[static_cast<std::size_t>(err)].inc();
    if (cs.record(endpoint, O::failure, cfg.outlier, outcome_time)) pool.endpoint_series(endpoint).ejections.inc();
    st.upstream = nullptr;
    conn.reset();
    co_return proxy_error(st, upstream::status_of(err), upstream::to_string(err), {});
  }
  const http::ResponseHead& rh = parser.head();
  st.upstream_time = std::chrono::duration_cast<std::chrono::nanoseconds>(outcome_time - sent_at);
  pool.series().response_time.observe(static_cast<std::uint64_t>(st.upstream_time.count()));
  pool.endpoint_series(endpoint).responses[std::min(rh.status / 100, 5u) - 1].inc();
  if (cs.record(endpoint, rh.status >= 500 ? O::status_5xx : O::success, cfg.outlier, outcome_time))
    pool.endpoint_series(endpoint).ejections.inc();
  if (rh.status == 101) {  // no upgrade over HTTP/2 (RFC 9113 §8.6)
    st.upstream = nullptr;
    conn.reset();
    co_return proxy_error(st, 502, upstream::to_string(ProxyErrc::http_protocol_error), "101 over HTTP/2");
  }
  // The head re-framed: the HTTP/1.1 writer's fields (Via, hop-by-hop removed), Date; the framing is HTTP/2's.
  std::string out_head;
  upstream::ResponseForward rf;
  rf.head_request = h.method == http::Method::head;
  rf.via = worker_.via();
  // A miss on a caching route (respond() set fwd): stored when decide() allows it (RFC 9111 §3), as the
  // HTTP/1.1 path does; Cache-Status says so (RFC 9211).
  std::shared_ptr<cache::Entry> entry;
  std::string store_body, extra;
  const std::size_t max_object = worker_.edge_cache_max_object();
  if (st.fwd != cache::Forward::none && route.cache && worker_.edge_cache()) {
    cache::CacheStatus cs;
    cs.fwd = st.fwd;
    cs.fwd_status = rh.status;
    if (st.cacheable && !rh.no_body && !rh.until_close) {
      const auto d = cache::decide(h, rh, route.cache_policy, std::time(nullptr));
      if (d.store && (!rh.content_length || *rh.content_length <= max_object)) {
        entry = make_entry(h, rh, d, *snap, route, st.cache_key, worker_.via());
        cs.stored = entry != nullptr;
        if (entry) cs.ttl = d.ttl.count();
      }
    }
    extra.append("Cache-Status: ");
    cache::append_cache_status(extra, cs);
    extra.append("\r\n");
    rf.extra = extra;
  }
  upstream::append_response_head(out_head, rh, rf);
  // RFC 9110 §6.6.1: the origin's Date stands; one is added only when it sent none.
  http::append_tail(out_head, rh.header("Date").empty() ? worker_.date_line() : std::string_view{},
                    http::ConnectionHeader::none);
  st.status = rh.status;
  const bool body = !rh.no_body;
  if (st.closed) co_return;
  st.proxied = body;
  submit(st, out_head, body ? std::string_view("-") : std::string_view{});  // body bytes come from `pending`
  wake();
  // ---- the body, under the client's flow control: at most kStreamBuffer held for this stream ----
  bool complete = !body;
  Timer drained(worker_.io().get_executor());
  const config::Duration idle = ru.idle.value_or(cfg.timeouts.idle);
  while (!complete && err == ProxyErrc::none && !st.closed) {
    // Fed even with no bytes left: the codec reports `complete` for a body that ended with the last ones.
    while (!complete) {
      const auto r = parser.feed(std::string_view(ubuf.get() + ubegin, uend - ubegin));
      ubegin += r.consumed;
      using E = http::H1ResponseParser::Event;
      if (r.event == E::body) {
        st.pending.append(parser.body());
        if (entry) {
          if (store_body.size() + parser.body().size() > max_object) {  // too big: passed on only
            entry.reset();
            std::string().swap(store_body);
          } else {
            store_body.append(parser.body());
          }
        }
        continue;
      }
      if (r.event == E::complete) {
        complete = true;
        if (rh.chunked) keep_trailers(st.trailers, parser.trailers());
        if (entry) {  // stored before the last bytes go out, like the HTTP/1.1 path
          seal(*entry, std::move(store_body));
          worker_.edge_cache()->insert(std::move(entry), st.cache_hash);
        }
      } else if (r.event == E::error) {
        err = ProxyErrc::http_response_incomplete;
      }
      break;
    }
    if (st.deferred && (st.pending.size() > st.pending_off || complete)) {
      st.deferred = false;
      if (complete) st.upstream_eof = true;
      nghttp2_session_resume_data(session_, st.id);
      wake();
    }
    if (complete || err != ProxyErrc::none) break;
    // Backpressure: a client whose window is closed makes this exchange wait, not the buffer grow.
    while (st.pending.size() - st.pending_off >= kStreamBuffer && !st.closed) {
      st.drained = &drained;
      drained.expires_after(idle);
      auto [dec] = co_await drained.async_wait(token);
      st.drained = nullptr;
      if (!dec) {  // the client took nothing for the idle timeout
        err = ProxyErrc::connection_read_timeout;
        break;
      }
    }
    if (st.closed || err != ProxyErrc::none) break;
    if (ubegin == uend) ubegin = uend = 0;
    else if (ubegin > 0) {
      std::memmove(ubuf.get(), ubuf.get() + ubegin, uend - ubegin);
      uend -= ubegin;
      ubegin = 0;
    }
    deadline.arm(&conn->socket, idle);
    auto [ec, n] = co_await conn->socket.async_read_some(asio::buffer(ubuf.get() + uend, ucap - uend), token);
    if (st.closed) break;
    if (ec == asio::error::eof) {
      const auto r = parser.feed_eof();
      if (r.event == http::H1ResponseParser::Event::complete) complete = true;
      else err = ProxyErrc::http_response_incomplete;
      break;
    }
    if (ec) {
      err = deadline.expired ? ProxyErrc::connection_read_timeout : ProxyErrc::http_response_incomplete;
      break;
    }
    uend += n;
  }
  st.upstream = nullptr;
  if (st.closed) co_return;  // the client reset the stream: the upstream connection is not reused
  if (err != ProxyErrc::none) {
    pool.series().errors[static_cast<std::size_t>(err)].inc();
    // Cut short after the head went out: the client learns by RST_STREAM (RFC 9113 §8.1).
    st.error = upstream::to_string(err);
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, st.id, NGHTTP2_INTERNAL_ERROR);
    wake();
    co_return;
  }
  if (body) {
    st.upstream_eof = true;
    if (st.deferred) {
      st.deferred = false;
      nghttp2_session_resume_data(session_, st.id);
    }
    wake();
  }
  const bool reusable = rh.keep_alive && !rh.until_close && ubegin == uend;
  pool.release(std::move(conn), reusable, cfg.pool, std::chrono::steady_clock::now());
}

}  // namespace virex::server
