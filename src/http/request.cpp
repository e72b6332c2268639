// Request head helpers and the parse-error table (status, metric label, sentence).
#include <virex/http/h1_parser.hpp>
#include <virex/http/request.hpp>

#include <array>

namespace virex::http {

Method method_from_string(std::string_view m) noexcept {
  switch (m.size()) {
    case 3:
      if (m == "GET") return Method::get;
      if (m == "PUT") return Method::put;
      break;
    case 4:
      if (m == "HEAD") return Method::head;
      if (m == "POST") return Method::post;
      break;
    case 5:
      if (m == "PATCH") return Method::patch;
      if (m == "TRACE") return Method::trace;
      break;
    case 6:
      if (m == "DELETE") return Method::delete_;
      break;
    case 7:
      if (m == "OPTIONS") return Method::options;
      if (m == "CONNECT") return Method::connect;
      break;
  }
  return Method::other;
}

std::string_view RequestHead::header(std::string_view name) const noexcept {
  for (const Header& h : headers) {
    if (h.name.size() != name.size()) continue;
    bool eq = true;
    for (std::size_t i = 0; i < name.size() && eq; ++i) {
      const char a = h.name[i], b = name[i];
      eq = a == b || ((a | 0x20) == (b | 0x20) && (a | 0x20) >= 'a' && (a | 0x20) <= 'z');
    }
    if (eq) return h.value;
  }
  return {};
}

namespace {
struct ErrorInfo {
  std::string_view name;
  unsigned status;
  std::string_view text;
};
constexpr std::array<ErrorInfo, kParseErrorCount> kErrors{{
    {"none", 200, ""},
    {"header_too_large", 431, "request header section too large\n"},
    {"too_many_headers", 431, "too many request header fields\n"},
    {"uri_too_long", 414, "request target too long\n"},
    {"body_too_large", 413, "request body too large\n"},
    {"bad_request_line", 400, "malformed request line\n"},
    {"bad_header", 400, "malformed header field\n"},
    {"bad_header_chars", 400, "invalid character (NUL, bare CR or LF) in request head\n"},
    {"obs_fold", 400, "obsolete line folding is not accepted\n"},
    {"conflicting_framing", 400, "conflicting Content-Length and Transfer-Encoding\n"},
    {"bad_content_length", 400, "invalid or conflicting Content-Length\n"},
    {"bad_chunk", 400, "malformed chunked body\n"},
    {"unknown_transfer_encoding", 501, "transfer coding not implemented (only chunked)\n"},
    {"missing_host", 400, "HTTP/1.1 request without Host\n"},
    {"duplicate_host", 400, "more than one Host header\n"},
    {"bad_version", 505, "HTTP version not supported\n"},
    {"bad_target", 400, "unsupported request target form\n"},
    {"bad_host", 400, "invalid Host\n"},
    {"header_timeout", 408, "request header timeout\n"},
}};
}  // namespace

std::string_view to_string(ParseError e) noexcept { return kErrors[static_cast<std::size_t>(e)].name; }
unsigned status_of(ParseError e) noexcept { return kErrors[static_cast<std::size_t>(e)].status; }
std::string_view describe(ParseError e) noexcept { return kErrors[static_cast<std::size_t>(e)].text; }

}  // namespace virex::http
