// One HTTP/2 stream's state (request, response, proxied body buffer), shared by h2_connection.cpp (nghttp2
// callbacks, local answers) and h2_upstream.cpp (the proxy exchange). Private to src/server; worker thread only.
#pragma once

#include "h2_connection.hpp"

#include <virex/cache/cache_status.hpp>
#include <virex/http/request.hpp>
#include <virex/pipeline/route_table.hpp>

namespace virex::server {

struct H2Connection::Stream {
  std::int32_t id = 0;
  std::string method, path, authority, scheme;
  std::vector<std::pair<std::string, std::string>> fields;  // regular request fields, names lower-case
  std::size_t header_bytes = 0;   // RFC 9113 §6.5.2 accounting of the current header block
  unsigned header_count = 0;
  std::uint64_t bytes_in = 0;     // header block (accounted size) + body
  bool responded = false, finished = false;
  // the response
  unsigned status = 0;
  std::string owned;              // an owned response (admin page, error): HTTP/1.1 head + body
  std::string_view body;          // into owned, a route's prepared body or a cache entry's
  std::size_t body_off = 0;
  bool body_owned = false;        // owned or pinned bytes (counted against max_stalled_bytes)
  std::shared_ptr<const cache::Entry> hold;
  const pipeline::CompiledRoute* route = nullptr;
  std::string_view cache;         // access log: "edge=hit" …
  // An edge-cache miss on a caching route (respond() looked the key up): why it goes forward (none: the
  // exchange does not store), the key and its hash. A GET without a body may be stored (h2_upstream.cpp).
  cache::Forward fwd = cache::Forward::none;
  bool cacheable = false;
  std::string cache_key;
  std::uint64_t cache_hash = 0;
  std::string variant_key;        // a query route's: the Accept variant its answer is stored under
  std::string_view error;
  std::string shards;             // a query route's statements, "id:role" each (access log)
  std::size_t head_bytes = 0;
  std::chrono::steady_clock::time_point start;
  std::chrono::system_clock::time_point wall;
  // request body (kept only for proxied routes, bounded by limits.max_body_bytes)
  std::string req_body;
  bool req_too_large = false;
  bool closed = false;            // nghttp2 closed the stream (done, or reset by the client)
  // a proxied response: body bytes relayed from the upstream, handed to nghttp2 as the window allows
  bool proxied = false;
  std::string pending;
  std::size_t pending_off = 0;
  bool upstream_eof = false;      // the whole body is in `pending`
  // the upstream's trailer fields (a chunked body's trailer section, names lower-case, fields a trailer may
  // not carry dropped), sent as a trailing HEADERS frame with END_STREAM after the last DATA (RFC 9113 §8.1)
  std::vector<std::pair<std::string, std::string>> trailers;
  bool deferred = false;          // read_body returned DEFERRED: resume when bytes come
  Timer* drained = nullptr;       // the exchange waits on it while `pending` is full
  core::Socket* upstream = nullptr;  // the exchange's upstream socket (cancelled when the stream goes away)
  std::string_view upstream_name;
  std::chrono::nanoseconds upstream_time{-1};

  // The method and target of the request (:method, :path split at '?') into `h`, as views into this stream.
  void request_line(http::RequestHead& h) const {
    h.method_text = method;
    h.method = http::method_from_string(method);
    h.target = path;
    const std::size_t q = path.find('?');
    h.path = std::string_view(path).substr(0, q);
    if (q != std::string::npos) h.query = std::string_view(path).substr(q + 1);
  }
};

}  // namespace virex::server
