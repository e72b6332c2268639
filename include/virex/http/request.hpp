// The HTTP request head as the codecs hand it to the pipeline: views into the connection's read buffer,
// valid until the connection consumes the request (sans-IO; no Beast or Asio types here).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace virex::http {

enum class Method : std::uint8_t { get, head, post, put, delete_, connect, options, trace, patch, other };

Method method_from_string(std::string_view m) noexcept;

struct Header {
  std::string_view name;
  std::string_view value;
};

struct RequestHead {
  Method method = Method::other;
  std::string_view method_text;        // as received (token)
  std::string_view target;             // request-target as received
  std::string_view path;               // origin-form path of target (no query), "/" for asterisk-form
  std::string_view query;              // after '?', without it; empty if none
  std::string_view host;               // Host header (or absolute-form authority), port stripped, as received
  int version = 11;                    // 10 or 11
  std::span<const Header> headers;     // in received order
  bool keep_alive = true;              // per RFC 9112 §9.3 (HTTP/1.0 needs keep-alive, 1.1 unless close)
  bool expect_continue = false;        // Expect: 100-continue
  bool chunked = false;
  std::optional<std::uint64_t> content_length;
  std::size_t head_bytes = 0;          // bytes of request line + header section

  // First header with this name (case-insensitive), or empty.
  std::string_view header(std::string_view name) const noexcept;
  bool has_body() const noexcept { return chunked || (content_length && *content_length > 0); }
};

}  // namespace virex::http
