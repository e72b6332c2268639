// A Redis client for one worker: hiredis 0.14's async API driven by the worker's io_context through an adapter
// of our own (readiness waits on the connection's fd), with what hiredis 0.14 lacks — non-blocking name
// resolution (Asio's resolver, then a numeric address for hiredis), connect and per-command timeouts,
// reconnection with exponential backoff and jitter — plus a bounded in-flight queue per connection, a circuit
// breaker, and pipelining: every command issued while the loop runs other handlers joins the same write, so many
// requests share one round trip. Worker thread only (hiredis is not thread-safe); callbacks run on that thread.
// hiredis stays out of this header.
#pragma once

#include <virex/core/runtime.hpp>
#include <virex/observe/metrics.hpp>
#include <virex/regional/breaker.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace virex::regional {

enum class errc {
  timeout = 1,      // no reply within command_timeout (the connection is reset)
  disconnected,     // the connection was lost with the command in flight
  unavailable,      // no connection is up (connecting or backing off)
  breaker_open,     // the breaker skips the tier
  queue_full,       // max_in_flight commands already wait on every connection
  server_error,     // Redis answered with an error reply (text in Reply::str)
};
const boost::system::error_category& category() noexcept;
inline boost::system::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category()}; }

// One RESP2 reply.
struct Reply {
  enum class Type : std::uint8_t { nil, string, integer, status, error, array };
  Type type = Type::nil;
  std::string str;               // string, status, error
  long long integer = 0;
  std::vector<Reply> elements;   // array
};

struct ClientOptions {
  std::string host = "127.0.0.1";   // IP literal or DNS name (resolved off the loop); or a unix socket path
  std::uint16_t port = 6379;        //   when `unix_path` is set
  std::string unix_path;
  // Further servers (e.g. a replica promoted by Sentinel-less failover), tried in turn after a failed connect.
  struct Address {
    std::string host;
    std::uint16_t port = 6379;
    std::string unix_path;
  };
  std::vector<Address> fallbacks;
  unsigned pool = 1;                // connections (pipelining makes one enough for most loads)
  std::chrono::milliseconds connect_timeout{250};   // resolve + TCP connect
  std::chrono::milliseconds command_timeout{100};   // per command; on expiry the connection is reset
  std::size_t max_in_flight = 4096;                 // per connection; beyond, commands fail queue_full
  std::chrono::milliseconds reconnect_min{20};      // backoff after a failure, doubling up to reconnect_max
  std::chrono::milliseconds reconnect_max{2000};
  BreakerOptions breaker;
};

// Series the client feeds (any may be left invalid). The histogram units: nanoseconds; commands.
struct ClientMetrics {
  observe::CounterRef ok, errors, timeouts, rejected;   // commands answered / failed / timed out / skipped
  observe::CounterRef breaker_state;                     // gauge: 0 closed, 1 open, 2 half-open
  observe::CounterRef connects, disconnects;
  observe::HistogramRef latency;                         // command round trip, ns
  observe::HistogramRef pipeline_depth;                  // commands per write (one round trip)
};

struct ClientStats {
  std::uint64_t ok = 0, errors = 0, timeouts = 0, rejected = 0, connects = 0, disconnects = 0;
  std::uint64_t connect_failures = 0;               // resolve/connect errors and connect timeouts
  std::uint64_t writes = 0, written_commands = 0;  // written_commands / writes = mean commands per round trip
};

class Client {
 public:
  using Handler = boost::asio::any_completion_handler<void(boost::system::error_code, Reply)>;
  using Clock = std::chrono::steady_clock;

  Client(core::Executor ex, ClientOptions o, ClientMetrics m = {});
  ~Client();  // fails what is in flight (handlers are posted, never run inline) and closes the connections
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Starts connecting (every connection of the pool). Returns at once.
  void start();
  // Closes every connection for good (no reconnect): what is in flight fails with `disconnected` (posted), later
  // commands with `unavailable`. Leaves no pending operation on the executor (a draining worker can finish).
  void stop();

  // Sends one command (binary-safe arguments, copied before returning). `h` is posted with the reply, or with
  // an errc; a Redis error reply is errc::server_error with the text in Reply::str. Counts toward the breaker.
  void execute(std::span<const std::string_view> argv, Handler h);
  // The same for a caller that needs no answer (e.g. the asynchronous SET after an origin fetch).
  void send(std::span<const std::string_view> argv);

  // Awaitable form: `auto [ec, reply] = co_await client.command(argv, asio::as_tuple(kUseAwaitable));`.
  // Suspends until the reply, the command timeout or a failure.
  template <class Token>
  auto command(std::span<const std::string_view> argv, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, Reply)>(
        [this](auto handler, std::span<const std::string_view> a) { execute(a, Handler(std::move(handler))); },
        token, argv);
  }

  // A dedicated subscriber connection for `channel` (one per client). `on_message(payload)` per message;
  // `on_subscribed(resubscribed)` each time the subscription is (re)established — `resubscribed` is true when
  // it had been lost before (messages may have been missed meanwhile).
  void subscribe(std::string channel, std::function<void(std::string_view)> on_message,
                 std::function<void(bool resubscribed)> on_subscribed);

  Breaker::State breaker_state() const noexcept;
  bool connected() const noexcept;  // some connection is up
  const ClientStats& stats() const noexcept;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace virex::regional

template <>
struct boost::system::is_error_code_enum<virex::regional::errc> : std::true_type {};
