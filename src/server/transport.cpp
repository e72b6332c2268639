// The transport start of a connection (see transport.hpp): TLS handshake under a deadline, handshake and
// protocol counters, then the HTTP/1.1 Connection.
#include "transport.hpp"

#include "connection.hpp"
#include "h2_connection.hpp"

#include <boost/asio/as_tuple.hpp>

#include <spdlog/spdlog.h>

#include <sys/socket.h>

namespace virex::server {
namespace {
constexpr auto token = asio::as_tuple(core::kUseAwaitable);
constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";  // RFC 9113 §3.4

std::string listener_key(const config::Listener& l) {  // as server.cpp's (name|host|port|admin)
  return l.name + "|" + l.host + "|" + std::to_string(l.port) + "|" + (l.admin ? "admin" : "public");
}

bool has(const config::Listener& l, config::Protocol p) {
  return std::find(l.protocols.begin(), l.protocols.end(), p) != l.protocols.end();
}

void close(Socket& s) {
  boost::system::error_code ec;
  s.shutdown(Socket::shutdown_both, ec);
  s.close(ec);
}

void count_connection(Worker& w, const ListenerState& l, std::string_view protocol, std::string_view tls) {
  w.counter("virex_http_connections_by_protocol_total",
            "Client connections by the HTTP version and TLS version they settled on.",
            {{"listener", l.name}, {"protocol", std::string(protocol)}, {"tls", std::string(tls)}})
      .inc();
}
}  // namespace

std::shared_ptr<const Transports> build_transports(const std::vector<config::Listener>& listeners,
                                                   const pipeline::FileReader& read, std::shared_ptr<TicketKeys> keys,
                                                   std::vector<pipeline::BuildError>& errors) {
  auto out = std::make_shared<Transports>();
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    const config::Listener& l = listeners[i];
    auto t = std::make_shared<ListenerTransport>();
    t->http1 = has(l, config::Protocol::http1);
    t->h2 = l.tls && has(l, config::Protocol::h2);
    t->h2c = !l.tls && has(l, config::Protocol::h2c);
    if (l.tls) {
      t->tls = TlsServer::build(*l.tls, i, t->h2, t->http1, read, keys, errors);
      if (!t->tls) continue;
    }
    if (t->tls || t->h2c) out->emplace(listener_key(l), std::move(t));
  }
  return out;
}

Awaitable<void> start_transport(Worker* w, std::shared_ptr<ListenerState> l, std::shared_ptr<const ListenerTransport> t,
                                Socket sock) {
  boost::system::error_code ec;
  sock.non_blocking(true, ec);
  // The TLS handshake, or the wait for the connection preface, must finish within header_timeout (a slow or
  // silent client holds no more).
  Timer deadline(w->io().get_executor());
  bool expired = false;
  deadline.expires_after(w->snapshot()->config.limits.header_timeout);
  deadline.async_wait([s = &sock, &expired](boost::system::error_code e) {
    boost::system::error_code ignored;
    if (e) return;
    expired = true;
    s->cancel(ignored);
  });
  if (!t->tls) {
    // h2c (RFC 9113 §3.3): a client with prior knowledge starts with the preface; anything else is HTTP/1.1.
    // Peeked, not read, so either protocol reads the connection from its first byte.
    bool h2 = !t->http1;
    while (!h2 && t->http1) {
      auto [wec] = co_await sock.async_wait(Socket::wait_read, token);
      if (wec) break;
      char peek[kPreface.size()];
      const ssize_t n = ::recv(sock.native_handle(), peek, sizeof peek, MSG_PEEK);
      if (n <= 0) break;
      const std::string_view got(peek, static_cast<std::size_t>(n));
      if (got != kPreface.substr(0, got.size())) break;  // HTTP/1.1
      if (got.size() == kPreface.size()) {
        h2 = true;
        break;
      }
      // A preface split over segments: wait a moment for the rest (the peeked bytes stay readable).
      Timer pause(w->io().get_executor());
      pause.expires_after(std::chrono::milliseconds(2));
      co_await pause.async_wait(token);
      if (expired) break;
    }
    deadline.cancel();
    if (expired || w->draining()) {
      close(sock);
      co_return;
    }
    count_connection(*w, *l, h2 ? "h2c" : "http1", "none");
    if (h2) {
      std::unique_ptr<H2Connection> c(new H2Connection(*w, l, ClientStream(std::move(sock)), true));
      co_await H2Connection::run(c.release());
    } else {
      std::unique_ptr<Connection> c(new Connection(*w, l, std::move(sock)));
      co_await Connection::run(c.release());
    }
    co_return;
  }
  ssl_st* ssl = t->tls->new_ssl(static_cast<int>(sock.native_handle()));
  if (!ssl) {
    deadline.cancel();
    close(sock);
    co_return;
  }
  auto tls = std::make_unique<TlsStream>(t->tls, ssl);
  const bool ok = co_await tls->handshake(sock);
  deadline.cancel();
  const char* result = !ok ? "failed" : tls->resumed() ? "resumed" : "full";
  w->counter("virex_tls_handshakes_total", "TLS handshakes on client connections: full, resumed or failed.",
             {{"listener", l->name}, {"result", result}})
      .inc();
  if (!ok || w->draining()) {
    close(sock);
    co_return;
  }
  // ALPN chose h2; a client without ALPN on a listener without http1 is taken to speak HTTP/2 too.
  const bool h2 = tls->alpn() == "h2" || (!t->http1 && tls->alpn().empty());
  count_connection(*w, *l, h2 ? "h2" : "http1", tls->version());
  if (h2) {
    std::unique_ptr<H2Connection> c(new H2Connection(*w, l, ClientStream(std::move(sock), std::move(tls)), false));
    co_await H2Connection::run(c.release());
    co_return;
  }
  std::unique_ptr<Connection> c(new Connection(*w, l, ClientStream(std::move(sock), std::move(tls))));
  co_await Connection::run(c.release());
}

}  // namespace virex::server
