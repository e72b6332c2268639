// The Redis client's adapter against real sockets on loopback: a listener that accepts and never answers
// (command timeout → connection reset → reconnect), a listener whose accept queue is full (connect timeout), a
// closed port (refused → breaker), and a real redis-server (pipelining, reconnect after CLIENT KILL, outage and
// restart with the breaker, pub/sub resubscription, name resolution off the loop).
#include "redis_process.hpp"

#include <virex/regional/client.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <gtest/gtest.h>

#include <list>

namespace asio = boost::asio;
using namespace std::chrono_literals;
using virex::regional::Breaker;
using virex::regional::Client;
using virex::regional::ClientOptions;
using virex::regional::errc;
using virex::regional::Reply;
using Clock = std::chrono::steady_clock;

namespace {

struct Loop {
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
  // Runs handlers until `pred` holds or `limit` passes; returns pred().
  template <class P>
  bool until(P pred, std::chrono::milliseconds limit = 5000ms) {
    const auto deadline = Clock::now() + limit;
    while (!pred() && Clock::now() < deadline) io.run_one_for(10ms);
    return pred();
  }
};

struct Outcome {
  bool done = false;
  boost::system::error_code ec;
  Reply reply;
  Clock::time_point at;
};

void issue(Client& c, std::vector<std::string> args, Outcome& out) {
  std::vector<std::string_view> argv(args.begin(), args.end());
  c.execute(argv, [&out](boost::system::error_code ec, Reply r) {
    out.done = true;
    out.ec = ec;
    out.reply = std::move(r);
    out.at = Clock::now();
  });
}

ClientOptions options(int port) {
  ClientOptions o;
  o.host = "127.0.0.1";
  o.port = static_cast<std::uint16_t>(port);
  o.reconnect_min = 10ms;
  o.reconnect_max = 50ms;
  return o;
}

// Accepts connections and reads (discarding) without ever answering.
struct SilentServer {
  explicit SilentServer(asio::io_context& io) : acceptor(io, {asio::ip::make_address("127.0.0.1"), 0}) { accept(); }
  void accept() {
    acceptor.async_accept([this](boost::system::error_code ec, asio::ip::tcp::socket s) {
      if (ec) return;
      ++accepted;
      auto& sock = conns.emplace_back(std::move(s));
      drain(sock);
      accept();
    });
  }
  void drain(asio::ip::tcp::socket& s) {
    s.async_read_some(asio::buffer(buf), [this, &s](boost::system::error_code ec, std::size_t n) {
      if (ec) return;
      bytes += n;
      drain(s);
    });
  }
  int port() const { return acceptor.local_endpoint().port(); }
  asio::ip::tcp::acceptor acceptor;
  std::list<asio::ip::tcp::socket> conns;
  char buf[4096];
  int accepted = 0;
  std::size_t bytes = 0;
};

}  // namespace

TEST(RegionalClient, CommandTimeoutResetsTheConnectionAndReconnects) {
  Loop loop;
  SilentServer server(loop.io);
  auto o = options(server.port());
  o.command_timeout = 60ms;
  o.breaker.failures = 100;
  Client c(loop.io.get_executor(), o);
  c.start();
  ASSERT_TRUE(loop.until([&] { return c.connected(); }));
  Outcome a, b;
  const auto sent = Clock::now();
  issue(c, {"GET", "k1"}, a);
  issue(c, {"GET", "k2"}, b);
  ASSERT_TRUE(loop.until([&] { return a.done && b.done; }, 3000ms));
  EXPECT_EQ(a.ec, errc::timeout);
  EXPECT_TRUE(b.ec == errc::timeout || b.ec == errc::disconnected) << b.ec.message();
  EXPECT_GE(a.at - sent, 60ms);
  EXPECT_LT(a.at - sent, 1000ms) << "one timeout, not more";
  EXPECT_GE(c.stats().timeouts, 1u);
  // The connection was reset (hiredis 0.14 has no timeout of its own) and a new one is made.
  EXPECT_TRUE(loop.until([&] { return server.accepted >= 2 && c.connected(); }));
  EXPECT_GE(c.stats().disconnects, 1u);
  EXPECT_GT(server.bytes, 0u);
}

TEST(RegionalClient, ConnectTimeoutOpensTheBreaker) {
  Loop loop;
  // A listener whose accept queue is full drops further SYNs: a connect to it stays in progress.
  const int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(lfd, 0), 0);
  socklen_t len = sizeof a;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  std::vector<int> fillers;
  for (int i = 0; i < 2; ++i) {  // fill the queue (a blocking connect to a full queue would hang: non-blocking)
    const int f = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(f, reinterpret_cast<sockaddr*>(&a), sizeof a);
    fillers.push_back(f);
  }
  auto o = options(ntohs(a.sin_port));
  o.connect_timeout = 80ms;
  o.breaker.failures = 1;
  o.breaker.open_for = 10s;
  o.reconnect_min = 5s;  // one attempt in this test
  o.reconnect_max = 5s;
  Client c(loop.io.get_executor(), o);
  const auto t0 = Clock::now();
  c.start();
  ASSERT_TRUE(loop.until([&] { return c.stats().connect_failures >= 1; }, 3000ms));
  const auto took = Clock::now() - t0;
  EXPECT_GE(took, 80ms);
  EXPECT_LT(took, 1500ms);
  EXPECT_FALSE(c.connected());
  EXPECT_EQ(c.breaker_state(), Breaker::State::open);
  Outcome r;
  issue(c, {"GET", "k"}, r);
  ASSERT_TRUE(loop.until([&] { return r.done; }, 1000ms));
  EXPECT_EQ(r.ec, errc::breaker_open);
  for (int f : fillers) ::close(f);
  ::close(lfd);
}

TEST(RegionalClient, RefusedConnectionFailsFastThenBreakerSkips) {
  Loop loop;
  const int port = virex::test::free_port();  // nothing listens there
  auto o = options(port);
  o.breaker.failures = 2;
  o.breaker.open_for = 10s;
  Client c(loop.io.get_executor(), o);
  c.start();
  ASSERT_TRUE(loop.until([&] { return c.stats().connect_failures >= 2; }));
  Outcome r;
  issue(c, {"GET", "k"}, r);
  ASSERT_TRUE(loop.until([&] { return r.done; }, 1000ms));
  EXPECT_EQ(r.ec, errc::breaker_open);
}

TEST(RegionalClient, RealRedisPipelinesCommandsOfOneLoopTurn) {
  virex::test::RedisProcess redis;
  Loop loop;
  virex::observe::Registry reg(1);
  Client c(loop.io.get_executor(), options(redis.port()));
  c.start();
  ASSERT_TRUE(loop.until([&] { return c.connected(); }));
  std::vector<Outcome> sets(200);
  for (std::size_t i = 0; i < sets.size(); ++i)
    issue(c, {"SET", "key" + std::to_string(i), std::string("v\0al", 4) + std::to_string(i), "PX", "60000"}, sets[i]);
  Outcome get, missing, bad;
  issue(c, {"GET", "key7"}, get);
  issue(c, {"GET", "nokey"}, missing);
  issue(c, {"INCR", "key1"}, bad);  // not an integer: an error reply
  ASSERT_TRUE(loop.until([&] { return get.done && missing.done && bad.done; }));
  for (const auto& s : sets) {
    ASSERT_TRUE(s.done);
    EXPECT_FALSE(s.ec) << s.ec.message();
    EXPECT_EQ(s.reply.str, "OK");
  }
  EXPECT_FALSE(get.ec);
  EXPECT_EQ(get.reply.type, Reply::Type::string);
  EXPECT_EQ(get.reply.str, std::string("v\0al7", 5));
  EXPECT_EQ(missing.reply.type, Reply::Type::nil);
  EXPECT_EQ(bad.ec, errc::server_error);
  EXPECT_NE(bad.reply.str.find("not an integer"), std::string::npos);
  // 203 commands issued in one turn of the loop leave in a few writes.
  EXPECT_EQ(c.stats().written_commands, 203u);
  EXPECT_LE(c.stats().writes, 3u);
  const auto pttl = std::stol(redis({"PTTL", "key3"}).substr(1));
  EXPECT_GT(pttl, 50000);
  EXPECT_LE(pttl, 60000);
}

TEST(RegionalClient, ReconnectsAfterClientKill) {
  virex::test::RedisProcess redis;
  Loop loop;
  Client c(loop.io.get_executor(), options(redis.port()));
  c.start();
  ASSERT_TRUE(loop.until([&] { return c.connected(); }));
  Outcome first;
  issue(c, {"PING"}, first);
  ASSERT_TRUE(loop.until([&] { return first.done; }));
  ASSERT_FALSE(first.ec);
  EXPECT_EQ(redis({"CLIENT", "KILL", "TYPE", "normal"}).substr(0, 1), ":");
  ASSERT_TRUE(loop.until([&] { return c.stats().disconnects >= 1; })) << "the kill is noticed without a command";
  ASSERT_TRUE(loop.until([&] { return c.connected(); }));
  EXPECT_GE(c.stats().connects, 2u);
  Outcome again;
  issue(c, {"PING"}, again);
  ASSERT_TRUE(loop.until([&] { return again.done; }));
  EXPECT_FALSE(again.ec) << again.ec.message();
  EXPECT_EQ(again.reply.str, "PONG");
}

TEST(RegionalClient, OutageOpensTheBreakerAndRestartClosesIt) {
  virex::test::RedisProcess redis;
  Loop loop;
  auto o = options(redis.port());
  o.breaker.failures = 3;
  o.breaker.open_for = 100ms;
  o.command_timeout = 200ms;
  Client c(loop.io.get_executor(), o);
  c.start();
  ASSERT_TRUE(loop.until([&] { return c.connected(); }));
  redis.kill();
  // Commands fail (lost connection, then no connection) until the breaker opens; none waits longer than a
  // timeout.
  bool opened = false;
  for (int i = 0; i < 50 && !opened; ++i) {
    Outcome r;
    const auto t = Clock::now();
    issue(c, {"GET", "k"}, r);
    ASSERT_TRUE(loop.until([&] { return r.done; }, 1000ms));
    EXPECT_TRUE(r.ec) << "redis is down";
    EXPECT_LT(r.at - t, 400ms);
    opened = r.ec == errc::breaker_open;
    loop.until([] { return false; }, 5ms);
  }
  ASSERT_TRUE(opened);
  redis.restart();
  bool ok = false;
  for (int i = 0; i < 200 && !ok; ++i) {
    Outcome r;
    issue(c, {"GET", "k"}, r);
    ASSERT_TRUE(loop.until([&] { return r.done; }, 1000ms));
    ok = !r.ec;
    if (!ok) loop.until([] { return false; }, 20ms);
  }
  EXPECT_TRUE(ok) << "the half-open probe found redis back";
  EXPECT_EQ(c.breaker_state(), Breaker::State::closed);
}

TEST(RegionalClient, SubscriberGetsMessagesAndReportsResubscription) {
  virex::test::RedisProcess redis;
  Loop loop;
  Client c(loop.io.get_executor(), options(redis.port()));
  std::vector<std::string> messages;
  std::vector<bool> subscribed;
  c.subscribe("virex:inv", [&](std::string_view m) { messages.emplace_back(m); },
              [&](bool again) { subscribed.push_back(again); });
  c.start();
  ASSERT_TRUE(loop.until([&] { return subscribed.size() == 1; }));
  EXPECT_FALSE(subscribed[0]);
  EXPECT_EQ(redis({"PUBLISH", "virex:inv", std::string("a\0b", 3)}), ":1");
  ASSERT_TRUE(loop.until([&] { return messages.size() == 1; }));
  EXPECT_EQ(messages[0], std::string("a\0b", 3));
  redis({"CLIENT", "KILL", "TYPE", "pubsub"});
  ASSERT_TRUE(loop.until([&] { return subscribed.size() == 2; }));
  EXPECT_TRUE(subscribed[1]) << "a lost subscription is reported as such";
  EXPECT_EQ(redis({"PUBLISH", "virex:inv", "x"}), ":1");
  ASSERT_TRUE(loop.until([&] { return messages.size() == 2; }));
}

TEST(RegionalClient, FailsOverToTheNextAddress) {
  virex::test::RedisProcess redis;
  Loop loop;
  auto o = options(virex::test::free_port());  // nothing listens on the primary
  o.fallbacks.push_back({"127.0.0.1", static_cast<std::uint16_t>(redis.port()), ""});
  o.breaker.failures = 100;
  Client c(loop.io.get_executor(), o);
  c.start();
  ASSERT_TRUE(loop.until([&] { return c.connected(); }));
  EXPECT_GE(c.stats().connect_failures, 1u);
  Outcome r;
  issue(c, {"PING"}, r);
  ASSERT_TRUE(loop.until([&] { return r.done; }));
  EXPECT_FALSE(r.ec) << r.ec.message();
}

TEST(RegionalClient, ResolvesNamesOffTheLoop) {
  virex::test::RedisProcess redis;
  Loop loop;
  auto o = options(redis.port());
  o.host = "localhost";
  Client c(loop.io.get_executor(), o);
  c.start();
  ASSERT_TRUE(loop.until([&] { return c.connected(); }));
  Outcome r;
  std::string_view argv[] = {"PING"};
  // The awaitable form, from a coroutine.
  asio::co_spawn(
      loop.io,
      [&]() -> asio::awaitable<void> {
        auto [ec, reply] = co_await c.command(argv, asio::as_tuple(asio::use_awaitable));
        r.ec = ec;
        r.reply = std::move(reply);
        r.done = true;
      },
      asio::detached);
  ASSERT_TRUE(loop.until([&] { return r.done; }));
  EXPECT_FALSE(r.ec);
  EXPECT_EQ(r.reply.str, "PONG");
}
