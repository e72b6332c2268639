// Sans-IO HTTP/1.1 response codec (what an upstream sends back), hand-written: bytes in, events out, header
// views into the caller's buffer, no allocation per response once warm. One instance per upstream exchange,
// used by one worker thread. RFC 9112 §4 (status line), §6.3 (message body length), §7.1 (chunked),
// RFC 9110 §15.2 (1xx), §9.3.2 (HEAD), §15.3.5/§15.4.5 (204/304 carry no body).
#pragma once

#include <virex/http/request.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

namespace virex::http {

// Bounded-cardinality reasons (a metric label and the Proxy-Status `details`).
enum class ResponseError : std::uint8_t {
  none,
  header_too_large,      // status line + headers over the limit
  too_many_headers,
  bad_status_line,
  bad_header,            // malformed field, NUL, bare CR/LF, obs-fold
  conflicting_framing,   // Content-Length with Transfer-Encoding, or differing Content-Length values;
                         // also Transfer-Encoding in HTTP/1.0 or chunked applied twice (RFC 9112 §6.1)
  bad_content_length,
  bad_chunk,             // chunk-size line, extensions or trailer section malformed or over max_header_bytes
  unknown_transfer_encoding,  // a Transfer-Encoding naming no valid coding, or whose chunked-ness depends on
                              // reading past a coding's parameters (a non-chunked final coding is not an
                              // error for a response: RFC 9112 §6.3 rule 4 makes it close-delimited)
  truncated,             // the upstream closed before the message was complete
};
std::string_view to_string(ResponseError e) noexcept;

struct ResponseHead {
  unsigned status = 0;
  int version = 11;                     // 10 or 11
  std::string_view reason;
  std::span<const Header> headers;      // in received order
  bool keep_alive = true;               // RFC 9112 §9.3: HTTP/1.1 unless `Connection: close`; 1.0 only with
                                        // keep-alive; never for close-delimited bodies or 101
  bool chunked = false;
  std::optional<std::uint64_t> content_length;  // as framed (none for chunked / close-delimited / no body)
  bool no_body = false;                 // 1xx, 204, 304, or the answer to HEAD: no body follows
  bool until_close = false;             // the body is delimited by the upstream closing the connection
  std::size_t head_bytes = 0;

  std::string_view header(std::string_view name) const noexcept;   // first one, case-insensitive, or empty
};

struct H1ResponseLimits {
  std::size_t max_header_bytes = 64 * 1024;  // status line + header section; also bounds each chunk-size line,
                                             // and the last-chunk line + trailer section together
  std::size_t max_headers = 100;             // at most 128 (the fixed header array)
};

class H1ResponseParser {
 public:
  enum class Event : std::uint8_t {
    need_more,   // feed more bytes (consumed may be > 0)
    head,        // head() is ready; for a 1xx interim response, `complete` follows at once (call next())
    body,        // body() holds the next decoded body bytes (a view into the fed data)
    complete,    // the message is complete; call next() before feeding another response
    error,       // error() says why; the upstream connection must not be reused
  };
  struct Result {
    Event event;
    std::size_t consumed;
  };

  explicit H1ResponseParser(H1ResponseLimits limits = {});
  ~H1ResponseParser();
  H1ResponseParser(H1ResponseParser&&) noexcept;
  H1ResponseParser& operator=(H1ResponseParser&&) noexcept;

  // Before the head of each response is complete: whether the request was HEAD (its answer has no body).
  // next() keeps it after a 1xx interim response (the final one answers the same request) and clears it
  // after a final response.
  void set_head_request(bool head) noexcept;
  // Feeds unconsumed bytes. While the head is being parsed the data must start at the response's first byte;
  // head() views point into it and stay valid until the caller drops or moves those bytes. Bytes after a
  // complete message are not consumed: after a 101 they belong to the tunnel (feed nothing more).
  Result feed(std::string_view data);
  // The upstream closed (EOF), after feed() took what it would: completes a close-delimited body (event
  // complete), else error `truncated` if a response is in progress. With none in progress (nothing fed
  // since next(), or the last response complete) it returns need_more with consumed 0: a clean close.
  Result feed_eof();
  // Prepares for the next response on the connection (after complete; also resets after an error).
  void next();

  const ResponseHead& head() const noexcept;
  std::string_view body() const noexcept;
  ResponseError error() const noexcept;
  bool in_message() const noexcept;     // some bytes of a response fed, not complete
  bool body_started() const noexcept;   // any body byte has been produced for this response
  // The trailer fields of a chunked response (RFC 9112 §7.1.2), in received order, as sent (names not
  // case-folded; framing fields are refused by the codec, other fields RFC 9110 §6.5.1 keeps out of a trailer
  // section are the caller's to drop). Non-empty only once the message is `complete`; the views are the
  // parser's own copies (not views into the fed data) and stay valid until next(). At most
  // max_headers fields (else error too_many_headers); their bytes count towards max_header_bytes with the
  // last-chunk line.
  std::span<const Header> trailers() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace virex::http
