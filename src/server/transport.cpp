// The transport start of a connection (see transport.hpp): TLS handshake under a deadline, handshake and
// protocol counters, then the HTTP/1.1 Connection.
#include "transport.hpp"

#include "connection.hpp"

#include <boost/asio/as_tuple.hpp>

#include <spdlog/spdlog.h>

namespace virex::server {
namespace {
constexpr auto token = asio::as_tuple(core::kUseAwaitable);

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
    t->h2 = false;   // HTTP/2 is not served yet: ALPN offers http/1.1 only
    t->h2c = false;
    if (l.tls) {
      t->tls = TlsServer::build(*l.tls, i, t->h2, true, read, keys, errors);
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
  if (!t->tls) {  // h2c without TLS: nothing to do before HTTP/1.1 until HTTP/2 is served
    count_connection(*w, *l, "http1", "none");
    std::unique_ptr<Connection> c(new Connection(*w, l, std::move(sock)));
    co_await Connection::run(c.release());
    co_return;
  }
  // A handshake that does not finish within header_timeout is cut (a slow or silent client holds no more).
  Timer deadline(w->io().get_executor());
  deadline.expires_after(w->snapshot()->config.limits.header_timeout);
  deadline.async_wait([s = &sock](boost::system::error_code e) {
    boost::system::error_code ignored;
    if (!e) s->cancel(ignored);
  });
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
  count_connection(*w, *l, "http1", tls->version());
  std::unique_ptr<Connection> c(new Connection(*w, l, ClientStream(std::move(sock), std::move(tls))));
  co_await Connection::run(c.release());
}

}  // namespace virex::server
