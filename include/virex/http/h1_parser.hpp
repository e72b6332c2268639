// Sans-IO HTTP/1.1 request codec on Boost.Beast's basic_parser: bytes in, events out. No sockets, no
// allocation per request; header views point into the caller's buffer. One instance per connection,
// used by its worker thread only. Malformed input yields an error with the status to answer and a reason
// (RFC 9112 §2.2, §6.1, §6.3, §7.1; RFC 9110 §7.2): the caller answers it and closes the connection.
#pragma once

#include <virex/http/request.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace virex::http {

// Bounded-cardinality reasons, used as a metric label and in the error body.
enum class ParseError : std::uint8_t {
  none,
  header_too_large,       // 431
  too_many_headers,       // 431
  uri_too_long,           // 414
  body_too_large,         // 413
  bad_request_line,       // 400
  bad_header,             // 400: malformed field
  bad_header_chars,       // 400: NUL, bare CR/LF
  obs_fold,               // 400
  conflicting_framing,    // 400: Content-Length with Transfer-Encoding, duplicate TE
  bad_content_length,     // 400: malformed or differing duplicates
  bad_chunk,              // 400
  unknown_transfer_encoding,  // 501
  missing_host,           // 400
  duplicate_host,         // 400
  bad_version,            // 505
  bad_target,             // 400: not origin-form, http(s) absolute-form, or "*" with OPTIONS
  bad_host,               // 400: Host not a valid authority
  header_timeout,         // 408: not produced by the codec; the connection's header deadline
};
constexpr std::size_t kParseErrorCount = static_cast<std::size_t>(ParseError::header_timeout) + 1;

std::string_view to_string(ParseError e) noexcept;   // "header_too_large", …
unsigned status_of(ParseError e) noexcept;           // 431, 414, …
std::string_view describe(ParseError e) noexcept;    // a sentence for the response body

struct H1Limits {
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_uri_bytes = 8 * 1024;
  std::uint64_t max_body_bytes = 1024 * 1024;
  std::size_t max_headers = 100;
};

class H1RequestParser {
 public:
  enum class Event : std::uint8_t {
    need_more,   // feed more bytes (consumed may be > 0)
    head,        // head() is ready; the body (if any) follows
    body,        // body() holds the next body bytes (a view into the fed data)
    complete,    // the message is complete; call next() before feeding the following request
    error,       // error() says why; the connection must answer and close
  };
  struct Result {
    Event event;
    std::size_t consumed;   // bytes of `data` used; feed the rest again (plus more) next time
  };

  explicit H1RequestParser(H1Limits limits);
  ~H1RequestParser();
  H1RequestParser(H1RequestParser&&) noexcept;
  H1RequestParser& operator=(H1RequestParser&&) noexcept;

  // Feeds the unconsumed bytes of the connection buffer. While a head is being parsed the data must
  // start at the request's first byte and the views in head() point into it.
  Result feed(std::string_view data);
  // Prepares for the next request on the connection.
  void next();
  // Between requests: hands the per-request state (header array, Beast parser; ~4.5 KiB) back to a
  // thread-local pool, so idle keep-alive connections stay small. The next feed() takes it again.
  void release_idle() noexcept;

  const RequestHead& head() const noexcept;
  std::string_view body() const noexcept;
  ParseError error() const noexcept;
  bool in_message() const noexcept;   // some bytes of a request have been consumed and it is not complete
  std::uint64_t body_bytes() const noexcept;

 private:
  struct Impl;
  Impl& impl();
  H1Limits limits_;
  std::unique_ptr<Impl> impl_;   // null while idle (see release_idle)
};

}  // namespace virex::http
