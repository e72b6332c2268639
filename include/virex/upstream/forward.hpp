// Proxy header rewriting, sans-IO (RFC 9110 §7.6 intermediaries): the request head a worker sends to an
// upstream and the response head it sends back to the client, each appended to a string. Hop-by-hop fields
// (§7.6.1: Connection and the fields it names, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*)
// are removed; X-Forwarded-For/-Proto/-Host and Via are added; framing is re-decided for the next hop.
#pragma once

#include <virex/config/config.hpp>
#include <virex/http/h1_response_parser.hpp>
#include <virex/http/request.hpp>

#include <span>
#include <string>
#include <string_view>

namespace virex::upstream {

// Whether `addr` (an IPv4 or IPv6 address in text, as from the socket) lies in one of `ranges`.
bool is_trusted(std::span<const config::Cidr> ranges, std::string_view addr) noexcept;

// The path a route sends upstream (its `rewrite:`), replacing `out`: `strip_prefix` removed when the path starts
// with it, then `add_prefix` put in front (one '/' between them); the result always starts with '/'.
void rewrite_path(std::string& out, std::string_view path, std::string_view strip_prefix, std::string_view add_prefix);

struct RequestForward {
  std::string_view path;            // after the route's rewrite (strip/add prefix); must start with '/'
  std::string_view query;           // without '?'; empty = none
  std::string_view client_addr;     // the peer's IP in text ("203.0.113.7", "2001:db8::1"), no port
  bool client_trusted = false;      // peer within proxy.trusted_proxies: keep its X-Forwarded-* and append
  std::string_view proto = "http";  // X-Forwarded-Proto when not kept from a trusted peer
  std::string_view host_override;   // non-empty: the cluster's host_header replaces Host
  std::string_view via;             // e.g. "1.1 edge-fra-1"; empty = no Via
  std::string_view traceparent;     // non-empty: replaces any incoming traceparent (W3C trace context)
  bool websocket = false;           // forward `Upgrade: websocket` + `Connection: Upgrade` (RFC 6455 §4.1)
};

// Appends "METHOD path?query HTTP/1.1\r\n" + headers + framing + "\r\n". Framing: `Content-Length: n` for a
// request with a length, `Transfer-Encoding: chunked` for a chunked one (the caller re-chunks the decoded
// body), none otherwise. Host: the original Host header value (with its port) unless overridden.
void append_request_head(std::string& out, const http::RequestHead& head, const RequestForward& f);

struct ResponseForward {
  int client_version = 11;          // 10: a body without Content-Length is close-delimited instead of chunked
  bool head_request = false;        // the client's request was HEAD (keep Content-Length, send no body)
  bool websocket = false;           // the request was forwarded as a WebSocket handshake: a 101 keeps its
                                    // Upgrade field and gets `Connection: Upgrade` (the caller adds no other)
  std::string_view via;             // e.g. "1.1 edge-fra-1"; empty = no Via
  std::string_view extra;           // complete header lines added verbatim ("Name: v\r\n"…), e.g. Date/trace id
};

struct ResponseFraming {
  bool chunked = false;             // the caller must chunk-encode the body it relays
  bool close_delimited = false;     // the caller must close the client connection after the body
};

// Appends the status line and headers for the client, without the final CRLF and without Connection (the
// caller adds its Connection line and "\r\n", as with http::append_tail) — except for a 101 to a WebSocket
// handshake (f.websocket), which already carries `Connection: Upgrade`. The upstream's Date and Server are
// kept. Returns how the body must be framed to the client.
ResponseFraming append_response_head(std::string& out, const http::ResponseHead& head, const ResponseForward& f);

// Whether the request asks for a WebSocket upgrade (RFC 6455 §4.1: GET, `Upgrade: websocket`, Connection
// naming `upgrade`).
bool wants_websocket(const http::RequestHead& head) noexcept;

}  // namespace virex::upstream
