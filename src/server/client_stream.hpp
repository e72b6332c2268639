// The client side of a connection as the HTTP layers see it: the TCP socket, optionally with TLS on top. It has
// the few socket operations the connection code uses, under the same names, so that the HTTP/1.1 code is the
// same for both. Cleartext costs one predictable branch per call over the bare socket (the TLS state is a null
// pointer); TLS goes through TlsStream. Worker thread only; owned by its connection.
#pragma once

#include "tls.hpp"

#include <boost/asio/write.hpp>

#include <memory>
#include <span>
#include <tuple>
#include <vector>

namespace virex::server {

class ClientStream {
 public:
  using wait_type = Socket::wait_type;
  using shutdown_type = Socket::shutdown_type;
  static constexpr wait_type wait_read = Socket::wait_read;
  static constexpr shutdown_type shutdown_send = Socket::shutdown_send;
  static constexpr shutdown_type shutdown_both = Socket::shutdown_both;

  ClientStream(Socket s) noexcept : sock_(std::move(s)) {}  // NOLINT: implicit, a cleartext connection
  ClientStream(Socket s, std::unique_ptr<TlsStream> tls) noexcept : sock_(std::move(s)), tls_(std::move(tls)) {}

  Socket& socket() noexcept { return sock_; }
  TlsStream* tls() const noexcept { return tls_.get(); }

  // Reads at least one byte. Suspends; `token` is the caller's as_tuple(use_awaitable).
  template <class Token>
  Awaitable<IoResult> async_read_some(asio::mutable_buffer b, const Token& token) {
    if (tls_) [[unlikely]]
      return tls_->read_some(sock_, b);
    return sock_.async_read_some(b, token);
  }
  // Writes all of `b` (a buffer or a sequence of them). Suspends.
  template <class Token>
  Awaitable<IoResult> async_write(const std::vector<asio::const_buffer>& b, const Token& token) {
    if (tls_) [[unlikely]]
      return tls_->write(sock_, std::span<const asio::const_buffer>(b.data(), b.size()));
    return asio::async_write(sock_, b, token);
  }
  template <class Token>
  Awaitable<IoResult> async_write(std::span<const asio::const_buffer> b, const Token& token) {
    if (tls_) [[unlikely]]
      return tls_->write(sock_, b);
    return asio::async_write(sock_, b, token);
  }
  template <class Token>
  Awaitable<IoResult> async_write(asio::const_buffer b, const Token& token) {
    if (tls_) [[unlikely]]
      return tls_->write_one(sock_, b);
    return asio::async_write(sock_, b, token);
  }
  // Readable without suspending in read_some() (or closed). Suspends.
  template <class Token>
  Awaitable<std::tuple<boost::system::error_code>> async_wait(wait_type w, const Token& token) {
    if (tls_) [[unlikely]]
      return tls_->wait_readable(sock_);
    return sock_.async_wait(w, token);
  }
  // Never suspends; would_block when nothing can be read yet.
  std::size_t read_some(asio::mutable_buffer b, boost::system::error_code& ec) {
    if (tls_) [[unlikely]]
      return tls_->read_now(b, ec);
    return sock_.read_some(b, ec);
  }
  std::size_t available(boost::system::error_code& ec) const {
    const std::size_t n = sock_.available(ec);
    return tls_ ? n + tls_->pending() : n;
  }
  void shutdown(shutdown_type what, boost::system::error_code& ec) {
    if (tls_ && what != Socket::shutdown_receive) tls_->close_notify();
    sock_.shutdown(what, ec);
  }
  void cancel(boost::system::error_code& ec) { sock_.cancel(ec); }
  void close(boost::system::error_code& ec) { sock_.close(ec); }
  void non_blocking(bool on, boost::system::error_code& ec) { sock_.non_blocking(on, ec); }
  Socket::endpoint_type remote_endpoint(boost::system::error_code& ec) const { return sock_.remote_endpoint(ec); }

 private:
  Socket sock_;
  std::unique_ptr<TlsStream> tls_;
};

}  // namespace virex::server
