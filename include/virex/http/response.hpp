// Ready-made HTTP/1.1 response bytes: what a static `respond` route (and later a cache hit) sends.
// The head is serialised once, at config load; per request only the Date line, an optional Connection
// line and the final CRLF are appended (see ResponseTail). Immutable, shared by all workers.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace virex::http {

std::string_view reason_phrase(unsigned status) noexcept;

inline constexpr std::string_view kServerName = "virex-edge";

struct PreparedResponse {
  unsigned status = 200;
  std::string head;   // status line + headers incl. Server and Content-Length, without Date and final CRLF
  std::string body;

  // `headers` must not contain Content-Length, Transfer-Encoding, Connection, Date or Server.
  static PreparedResponse make(unsigned status, const std::vector<std::pair<std::string, std::string>>& headers,
                               std::string body);
};

// The per-request part: "Date: …\r\n" [Connection: close|keep-alive\r\n] "\r\n", appended to `out`.
enum class ConnectionHeader { none, close, keep_alive };
// `extra` is zero or more complete header lines ("Name: value\r\n") added after Date.
void append_tail(std::string& out, std::string_view date_line, ConnectionHeader c, std::string_view extra = {});

// A complete error or small response with a text body, serialised into `out` (status line … body).
void append_simple_response(std::string& out, unsigned status, std::string_view date_line,
                            std::string_view body, ConnectionHeader c, bool head_only,
                            std::string_view extra_headers = {});
// The same with any content type (admin JSON and metrics pages, the purge API).
void append_body_response(std::string& out, unsigned status, std::string_view content_type, std::string_view body,
                          std::string_view date_line, ConnectionHeader c, bool head_only,
                          std::string_view extra_headers = {});

}  // namespace virex::http
