// TLS termination on OpenSSL 3, driven straight on the non-blocking client socket (SSL_set_fd: no memory BIO,
// no copy): TlsServer is one listener's immutable TLS configuration (one SSL_CTX per certificate, SNI choice,
// ALPN, session cache, tickets, OCSP staple), built on the control thread at start-up and on every reload and
// shared read-only by the workers (OpenSSL's SSL_CTX is thread-safe for that use); TlsStream is one
// connection's SSL, used only on its worker's thread. OpenSSL's headers stay in tls.cpp.
#pragma once

#include <virex/config/config.hpp>
#include <virex/core/runtime.hpp>
#include <virex/pipeline/route_table.hpp>

#include <array>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

struct ssl_st;
struct ssl_ctx_st;

namespace virex::server {

namespace asio = boost::asio;
using core::Awaitable;
using core::Socket;
using IoResult = std::tuple<boost::system::error_code, std::size_t>;

// Session ticket keys shared by every TLS listener of the process (so tickets survive a reload), rotated by the
// control thread: a ticket is issued under the current key and accepted under the current or previous one
// (then renewed). Thread-safe: handshakes on any worker read it under a mutex (once per ticket, not per record).
class TicketKeys {
 public:
  struct Key {
    std::array<unsigned char, 16> name{};
    std::array<unsigned char, 32> aes{}, hmac{};
  };
  TicketKeys();
  void rotate();  // a new current key; the current one becomes the previous one
  Key current() const;
  // The key named `name`, and whether it is the current one; false when unknown (a full handshake follows).
  bool find(const unsigned char* name, Key& out, bool& is_current) const;

 private:
  mutable std::mutex mu_;
  Key current_, previous_;
  bool has_previous_ = false;
};

// Counters a TLS listener reports (per worker shard; filled by ListenerState, see worker.hpp).
struct TlsCounters;

class TlsServer {
 public:
  // Builds the contexts for `cfg` (listener `index` of the config, for error key paths). Reads the files through
  // `read` (relative to the config file's directory). Returns nullptr after appending one error per bad file.
  static std::shared_ptr<const TlsServer> build(const config::ListenerTls& cfg, std::size_t index, bool offer_h2,
                                                bool offer_http1, const pipeline::FileReader& read,
                                                std::shared_ptr<TicketKeys> keys,
                                                std::vector<pipeline::BuildError>& errors);
  ~TlsServer();
  TlsServer(const TlsServer&) = delete;
  TlsServer& operator=(const TlsServer&) = delete;

  // A new server-side SSL for the connected socket `fd` (nullptr when out of memory).
  ssl_st* new_ssl(int fd) const;

  struct Cert {
    ssl_ctx_st* ctx = nullptr;
    std::vector<std::string> names;  // DNS names of the leaf (SAN, else CN), lower-case; "*.x" wildcards
    std::string ocsp;                // DER OCSP response stapled when the client asks (status_request)
  };
  const Cert* match(std::string_view host) const;  // the certificate for an SNI host name, or nullptr
  bool offer_h2() const noexcept { return offer_h2_; }
  bool offer_http1() const noexcept { return offer_http1_; }
  const TicketKeys& keys() const noexcept { return *keys_; }
  std::span<const unsigned char> alpn() const noexcept { return alpn_; }

 private:
  TlsServer() = default;
  std::vector<Cert> certs_;  // first = default
  std::unordered_map<std::string, std::size_t> exact_;  // host name → certs_ index
  bool offer_h2_ = false, offer_http1_ = true;
  std::vector<unsigned char> alpn_;  // server preference, wire format
  std::shared_ptr<TicketKeys> keys_;
};

// One connection's TLS state. The coroutines suspend only in readiness waits on the socket (so cancelling the
// socket cancels them); every OpenSSL call is non-blocking.
class TlsStream {
 public:
  TlsStream(std::shared_ptr<const TlsServer> server, ssl_st* ssl) noexcept;
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // The server handshake. Suspends on the socket; false on failure (the peer sent garbage, closed, or the socket
  // was cancelled by the caller's deadline).
  Awaitable<bool> handshake(Socket& s);
  // Reads decrypted bytes into `b` (at least one). Suspends on the socket; eof on close_notify or TCP close.
  Awaitable<IoResult> read_some(Socket& s, asio::mutable_buffer b);
  // Writes all of `bufs`, small pieces gathered into full records. Suspends on the socket.
  Awaitable<IoResult> write(Socket& s, std::span<const asio::const_buffer> bufs);
  Awaitable<IoResult> write_one(Socket& s, asio::const_buffer b) {
    one_ = b;
    return write(s, std::span<const asio::const_buffer>(&one_, 1));
  }
  // Readiness for read_now(): at once when OpenSSL already holds decrypted bytes, else the socket's.
  Awaitable<std::tuple<boost::system::error_code>> wait_readable(Socket& s);
  // A read that never suspends: would_block when nothing can be decrypted yet.
  std::size_t read_now(asio::mutable_buffer b, boost::system::error_code& ec);
  std::size_t pending() const noexcept;  // decrypted bytes OpenSSL holds
  void close_notify() noexcept;          // best effort, never waits

  // After the handshake: the negotiated ALPN protocol ("" when none), version ("TLSv1.3"), and resumption.
  std::string_view alpn() const noexcept;
  std::string_view version() const noexcept;
  bool resumed() const noexcept;

 private:
  Awaitable<boost::system::error_code> write_all(Socket& s, const char* p, std::size_t n);
  std::shared_ptr<const TlsServer> server_;  // keeps the SSL_CTXs alive across a reload
  ssl_st* ssl_;
  std::string staging_;  // small pieces of one write, gathered into one record
  asio::const_buffer one_;
};

}  // namespace virex::server
