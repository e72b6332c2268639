// What a listener puts between accept() and the HTTP layer: TLS (handshake, SNI, ALPN) and the HTTP/2 choice
// (ALPN "h2", or the cleartext connection preface on an h2c listener). Listeners with neither have no
// ListenerTransport and their sockets go straight to an HTTP/1.1 Connection (worker.cpp), so the cleartext
// HTTP/1.1 path pays nothing for this. Built by the server on the control thread, read by workers.
#pragma once

#include "tls.hpp"
#include "worker.hpp"

#include <memory>

namespace virex::server {

struct ListenerTransport {
  std::shared_ptr<const TlsServer> tls;  // null: cleartext
  bool http1 = true;                     // HTTP/1.1 served
  bool h2 = false;                       // HTTP/2 by ALPN (with tls)
  bool h2c = false;                      // cleartext HTTP/2 with prior knowledge (the preface is looked for)
};

// Builds the transports of `listeners` (only those with TLS or HTTP/2). Reads certificate files through `read`;
// appends an error per bad file. `keys` are the process's ticket keys.
std::shared_ptr<const Transports> build_transports(const std::vector<config::Listener>& listeners,
                                                   const pipeline::FileReader& read, std::shared_ptr<TicketKeys> keys,
                                                   std::vector<pipeline::BuildError>& errors);

// The start of a connection on a listener with a transport: TLS handshake (bounded by limits.header_timeout),
// then the protocol, then the connection's life. Suspends on the socket; worker thread.
Awaitable<void> start_transport(Worker* w, std::shared_ptr<ListenerState> l, std::shared_ptr<const ListenerTransport> t,
                                Socket sock);

}  // namespace virex::server
