// Admin endpoints. Responses are small and rare: built per request, no caching.
#include <virex/admin/admin.hpp>

namespace virex::admin {

Endpoint classify(std::string_view path) noexcept {
  if (path == "/metrics") return Endpoint::metrics;
  if (path == "/healthz") return Endpoint::healthz;
  if (path == "/readyz") return Endpoint::readyz;
  return Endpoint::none;
}

unsigned respond(Endpoint e, http::Method method, const Context& ctx, std::string& out,
                 std::string_view date_line, http::ConnectionHeader conn) {
  const bool head_only = method == http::Method::head;
  if (e == Endpoint::none) {
    http::append_simple_response(out, 404, date_line, "not found\n", conn, head_only);
    return 404;
  }
  if (method != http::Method::get && method != http::Method::head) {
    http::append_simple_response(out, 405, date_line, "method not allowed\n", conn, head_only,
                                 "Allow: GET, HEAD\r\n");
    return 405;
  }
  switch (e) {
    case Endpoint::metrics: {
      const std::string body = ctx.registry->expose();
      out += "HTTP/1.1 200 OK\r\nServer: ";
      out += http::kServerName;
      out += "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nCache-Control: no-store\r\nContent-Length: ";
      out += std::to_string(body.size());
      out += "\r\n";
      http::append_tail(out, date_line, conn);
      if (!head_only) out += body;
      return 200;
    }
    case Endpoint::healthz:
      http::append_simple_response(out, 200, date_line, "ok\n", conn, head_only);
      return 200;
    case Endpoint::readyz: {
      const bool ready = ctx.ready && ctx.ready->load(std::memory_order_relaxed);
      http::append_simple_response(out, ready ? 200 : 503, date_line, ready ? "ready\n" : "not ready\n", conn,
                                   head_only);
      return ready ? 200 : 503;
    }
    case Endpoint::none: break;
  }
  return 500;
}

}  // namespace virex::admin
