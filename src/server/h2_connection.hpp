// One HTTP/2 connection (RFC 9113) on nghttp2, driven by this coroutine: bytes read from the client stream go to
// nghttp2_session_mem_recv, whatever nghttp2_session_mem_send produces is gathered into one write. nghttp2's
// callbacks (the only C edge) record the request of each stream and enforce the connection's resource budget
// (limits.http2); a breach ends the connection with GOAWAY and is counted by reason. A complete request goes
// through the same route table, edge cache and admin code as HTTP/1.1 — those produce an HTTP/1.1-framed
// response (the prepared bytes of a `respond` route, a cache entry's stored head, an admin page), and this layer
// only re-frames it: status line and fields become HEADERS, the body goes out as DATA by reference under flow
// control. Owned by its coroutine; worker thread only; registered with the worker for ticks and drain.
#pragma once

#include "client_stream.hpp"
#include "worker.hpp"

#include <virex/cache/store.hpp>

#include <chrono>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

struct nghttp2_session;

namespace virex::server {

struct QueryRequest;

class H2Connection {
 public:
  // `protocol`: "h2" (TLS, ALPN) or "h2c" (cleartext, prior knowledge; the preface is still unread).
  H2Connection(Worker& w, std::shared_ptr<ListenerState> l, ClientStream s, bool cleartext);
  ~H2Connection();
  H2Connection(const H2Connection&) = delete;
  H2Connection& operator=(const H2Connection&) = delete;

  // The connection's life. Suspends on socket I/O only; deletes `self` when it returns.
  static Awaitable<void> run(H2Connection* self);

  // Worker tick: the idle deadline (no stream open and nothing read) and the drain.
  void on_tick(std::chrono::steady_clock::time_point now);
  // Worker drain: GOAWAY (RFC 9113 §6.8, graceful: streams already opened are finished), then close.
  void on_drain();
  const std::string& listener_key() const noexcept { return listener_->key; }

  // ---- nghttp2 callbacks (h2_connection.cpp); public only for the C trampolines ----
  struct Stream;
  int on_begin_headers(std::int32_t id);
  int on_header(std::int32_t id, std::string_view name, std::string_view value);
  int on_begin_frame(std::uint8_t type, std::uint8_t flags, std::size_t length);
  int on_frame_recv(std::uint8_t type, std::uint8_t flags, std::int32_t id, std::size_t length, bool request_headers);
  int on_data(std::int32_t id, std::size_t n);
  int on_stream_close(std::int32_t id, std::uint32_t error_code);
  long read_body(std::int32_t id, std::uint8_t* buf, std::size_t length, std::uint32_t* flags);
  int on_data_bytes(std::int32_t id, std::string_view data);

 private:
  enum class Breach : std::uint8_t {
    none, header_list_size, header_count, continuation, stalled_bytes, rapid_reset, ping_flood, settings_flood,
    empty_data, protocol
  };
  static std::string_view to_string(Breach b) noexcept;
  struct Bucket {  // token bucket: a one-second burst of `rate`, refilled continuously
    double tokens = 0;
    std::chrono::steady_clock::time_point last{};
    bool take(unsigned rate, std::chrono::steady_clock::time_point now);
  };

  Awaitable<void> reader();                 // socket → nghttp2, requests answered or their exchanges started
  Awaitable<void> writer();                 // nghttp2 → socket, whenever woken
  void wake() noexcept;                     // something to send (a response, proxied bytes, GOAWAY)
  Awaitable<bool> flush();                  // everything nghttp2 has to send; false on a write error
  // The reverse-proxy exchange of one stream (h2_upstream.cpp): the request (body buffered, bounded by
  // limits.max_body_bytes) goes up as HTTP/1.1 on a pooled connection, the response comes back re-framed, its
  // body streamed under the client's flow control with bounded buffering. Suspends; tracked by exchanges_.
  Awaitable<void> proxy(std::shared_ptr<Stream> st);
  // A query route's exchange (query.hpp): the SQL answer as one owned response. Suspends; tracked by exchanges_.
  Awaitable<void> query(std::shared_ptr<Stream> st, QueryRequest in, bool head_only);
  void submit_owned(Stream& st, bool head_only);  // st.owned (an HTTP/1.1 head and body) as the response
  void proxy_error(Stream& st, unsigned status, std::string_view error, std::string_view details);
  void breach(Breach b);                    // count, GOAWAY ENHANCE_YOUR_CALM / PROTOCOL_ERROR, stop reading
  void respond(Stream& st);                 // the pipeline for a complete request; queues the response
  void submit(Stream& st, std::string_view h1_head, std::string_view body);
  void finish(Stream& st);                  // metrics and access log once the response is complete
  void goaway(std::uint32_t error_code, std::string_view reason);
  std::size_t stalled_bytes() const;        // owned response bytes of streams that cannot send

  Worker& worker_;
  std::shared_ptr<ListenerState> listener_;
  ClientStream stream_;
  std::shared_ptr<const pipeline::Snapshot> snapshot_;
  const config::Http2Limits limits_;
  bool cleartext_;
  nghttp2_session* session_ = nullptr;
  std::list<H2Connection*>::iterator self_;
  std::unordered_map<std::int32_t, std::shared_ptr<Stream>> streams_;
  std::vector<std::int32_t> ready_;         // streams whose request is complete, to answer after mem_recv
  std::unique_ptr<char[]> buf_;
  std::string out_;
  std::string client_;
  // budget state
  Breach breach_ = Breach::none;
  std::uint32_t continuations_ = 0;         // CONTINUATION frames in the current header block
  Bucket resets_, pings_, settings_, empty_data_;
  bool goaway_sent_ = false, draining_ = false, timed_out_ = false;
  bool closing_ = false;                    // the reader is done: the writer flushes and ends
  bool wake_pending_ = false;
  Timer wake_;                              // the writer's wait (cancelled by wake())
  unsigned exchanges_ = 0;                  // proxy() coroutines running (they hold `this`)
  std::string client_ip_;
  std::chrono::steady_clock::time_point deadline_;
  observe::CounterRef streams_total_;
};

}  // namespace virex::server
