// Serialisation of prepared and simple responses (RFC 9112 §4, RFC 9110 §15).
#include <virex/http/response.hpp>

namespace virex::http {

std::string_view reason_phrase(unsigned status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

namespace {
void append_status_line(std::string& out, unsigned status) {
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += reason_phrase(status);
  out += "\r\nServer: ";
  out += kServerName;
  out += "\r\n";
}
// RFC 9110 §6.4.1: 1xx, 204 and 304 carry no content and (1xx, 204) no Content-Length.
bool has_content_length(unsigned status) { return status >= 200 && status != 204 && status != 304; }
}  // namespace

PreparedResponse PreparedResponse::make(unsigned status,
                                        const std::vector<std::pair<std::string, std::string>>& headers,
                                        std::string body) {
  PreparedResponse r;
  r.status = status;
  if (!has_content_length(status)) body.clear();
  append_status_line(r.head, status);
  for (const auto& [name, value] : headers) {
    r.head += name;
    r.head += ": ";
    r.head += value;
    r.head += "\r\n";
  }
  if (has_content_length(status)) {
    r.head += "Content-Length: ";
    r.head += std::to_string(body.size());
    r.head += "\r\n";
  }
  r.body = std::move(body);
  return r;
}

void append_tail(std::string& out, std::string_view date_line, ConnectionHeader c, std::string_view extra) {
  out += date_line;
  out += extra;
  if (c == ConnectionHeader::close) out += "Connection: close\r\n";
  else if (c == ConnectionHeader::keep_alive) out += "Connection: keep-alive\r\n";
  out += "\r\n";
}

void append_simple_response(std::string& out, unsigned status, std::string_view date_line,
                            std::string_view body, ConnectionHeader c, bool head_only,
                            std::string_view extra_headers) {
  append_body_response(out, status, "text/plain; charset=utf-8", body, date_line, c, head_only, extra_headers);
}

void append_body_response(std::string& out, unsigned status, std::string_view content_type, std::string_view body,
                          std::string_view date_line, ConnectionHeader c, bool head_only,
                          std::string_view extra_headers) {
  append_status_line(out, status);
  out += extra_headers;
  if (has_content_length(status)) {
    out += "Content-Type: ";
    out += content_type;
    out += "\r\nContent-Length: ";
    out += std::to_string(body.size());
    out += "\r\n";
  }
  append_tail(out, date_line, c);
  if (!head_only && has_content_length(status)) out += body;
}

}  // namespace virex::http
