// The regional tier's Redis client (see client.hpp). hiredis 0.14 owns each connection's fd and asks for
// read/write readiness through its ev hooks; the adapter turns them into one outstanding async_wait per
// direction on a stream_descriptor that never owns the fd (cleanup releases it, hiredis closes it). Replies
// arrive in command order, so each connection keeps a FIFO of what it sent; one timer per connection watches the
// oldest command's deadline and resets the connection when it passes (hiredis 0.14 has no timeouts).
// Worker thread only. No exception crosses a hiredis callback: everything called from one is noexcept in effect
// (handlers are posted, never invoked inline).
#include <virex/regional/client.hpp>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <spdlog/spdlog.h>

#include <array>
#include <deque>
#include <optional>
#include <random>

namespace virex::regional {
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {
struct Category final : boost::system::error_category {
  const char* name() const noexcept override { return "virex.regional"; }
  std::string message(int e) const override {
    switch (static_cast<errc>(e)) {
      case errc::timeout: return "redis command timed out";
      case errc::disconnected: return "redis connection lost";
      case errc::unavailable: return "no redis connection";
      case errc::breaker_open: return "regional tier breaker open";
      case errc::queue_full: return "redis in-flight queue full";
      case errc::server_error: return "redis error reply";
    }
    return "unknown";
  }
};

using Descriptor = asio::posix::basic_stream_descriptor<core::Executor>;
using Resolver = asio::ip::basic_resolver<asio::ip::tcp, core::Executor>;
constexpr int kMaxReplyDepth = 8;

Reply convert(const redisReply* r, int depth = 0) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING: out.type = Reply::Type::string; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_STATUS: out.type = Reply::Type::status; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_ERROR: out.type = Reply::Type::error; out.str.assign(r->str, r->len); break;
    case REDIS_REPLY_INTEGER: out.type = Reply::Type::integer; out.integer = r->integer; break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::array;
      if (depth >= kMaxReplyDepth) break;
      out.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) out.elements.push_back(convert(r->element[i], depth + 1));
      break;
    default: out.type = Reply::Type::nil; break;
  }
  return out;
}
}  // namespace

const boost::system::error_category& category() noexcept {
  static const Category c;
  return c;
}

// One hiredis connection and its FIFO of commands in flight.
struct Conn : std::enable_shared_from_this<Conn> {
  enum class State : std::uint8_t { down, resolving, connecting, ready };
  struct Pending {
    Client::Handler h;  // empty for send()
    Clock::time_point sent, deadline;
  };
  Conn(Client::Impl* k, core::Executor ex, bool sub) : client(k), timer(ex), retry(ex), resolver(ex), subscriber(sub) {}

  Client::Impl* client;               // null once the client is gone
  redisAsyncContext* ac = nullptr;
  State state = State::down;
  std::optional<Descriptor> fd;       // wraps ac->c.fd, never owns it
  bool want_read = false, want_write = false, reading = false, writing = false;
  std::deque<Pending> inflight;
  core::Timer timer;                  // the connect deadline, then the oldest command's deadline
  std::uint64_t timer_seq = 0;        // an expiry for an older arming ignores itself
  bool timer_armed = false;
  core::Timer retry;                  // reconnect backoff
  Resolver resolver;
  std::uint64_t attempt = 0;          // connect attempts: a late resolver answer ignores itself
  std::uint64_t gen = 0;              // bumped when the hiredis context goes: late waits ignore themselves
  unsigned failures = 0;              // consecutive connect failures (backoff exponent)
  std::size_t address = 0;            // which of the client's addresses (the next one after a failed connect)
  unsigned batched = 0;               // commands appended since the last write
  bool subscriber = false;
  bool was_subscribed = false;
};

struct Client::Impl {
  Impl(core::Executor e, ClientOptions opt, ClientMetrics met)
      : ex(e), o(std::move(opt)), m(met), breaker(o.breaker), rng(std::random_device{}()) {
    addresses.push_back({o.host, o.port, o.unix_path});
    addresses.insert(addresses.end(), o.fallbacks.begin(), o.fallbacks.end());
  }
  std::vector<ClientOptions::Address> addresses;  // the primary, then the fallbacks
  core::Executor ex;
  ClientOptions o;
  ClientMetrics m;
  ClientStats stats;
  Breaker breaker;
  std::int64_t breaker_gauge = 0;
  std::vector<std::shared_ptr<Conn>> conns;
  std::size_t next = 0;
  std::shared_ptr<Conn> sub;
  std::string channel;
  std::function<void(std::string_view)> on_message;
  std::function<void(bool)> on_subscribed;
  std::mt19937_64 rng;
  bool started = false;
  bool stopping = false;

  void sync_breaker_gauge() {
    const auto s = static_cast<std::int64_t>(breaker.state());
    if (s != breaker_gauge && m.breaker_state.valid()) m.breaker_state.add(s - breaker_gauge);
    breaker_gauge = s;
  }
  void outcome(bool ok) {
    if (ok) breaker.success();
    else breaker.failure(Clock::now());
    sync_breaker_gauge();
  }
  void post(Client::Handler h, boost::system::error_code ec, Reply r) {
    if (!h) return;
    asio::post(ex, [h = std::move(h), ec, r = std::move(r)]() mutable { std::move(h)(ec, std::move(r)); });
  }
};

namespace {
void start_connect(Conn& c);
void arm_deadline(Conn& c);

void count(const observe::CounterRef& r) {
  if (r.valid()) r.inc();
}

void arm_read(Conn& c) {
  if (c.reading || !c.fd) return;
  c.reading = true;
  c.fd->async_wait(Descriptor::wait_read, [self = c.shared_from_this(), gen = c.gen](boost::system::error_code ec) {
    Conn& c = *self;
    if (gen != c.gen) return;  // the context this wait was for is gone (a new one may have its own wait)
    c.reading = false;
    if (ec || !c.ac) return;
    if (c.want_read) redisAsyncHandleRead(c.ac);
    if (gen == c.gen && c.want_read) arm_read(c);
  });
}

void arm_write(Conn& c) {
  if (c.writing || !c.fd) return;
  c.writing = true;
  c.fd->async_wait(Descriptor::wait_write, [self = c.shared_from_this(), gen = c.gen](boost::system::error_code ec) {
    Conn& c = *self;
    if (gen != c.gen) return;
    c.writing = false;
    if (ec || !c.ac || !c.want_write) return;
    if (c.state == Conn::State::ready && c.batched && c.client) {
      // Everything issued since the last write leaves in this one: the pipeline depth of a round trip.
      auto& k = *c.client;
      ++k.stats.writes;
      k.stats.written_commands += c.batched;
      if (k.m.pipeline_depth.valid()) k.m.pipeline_depth.observe(c.batched);
      c.batched = 0;
    }
    redisAsyncHandleWrite(c.ac);  // the first one also completes the non-blocking connect
    if (gen == c.gen && c.want_write) arm_write(c);
  });
}

// hiredis ev hooks (privdata = the Conn).
void ev_add_read(void* p) {
  auto& c = *static_cast<Conn*>(p);
  c.want_read = true;
  arm_read(c);
}
void ev_del_read(void* p) { static_cast<Conn*>(p)->want_read = false; }
void ev_add_write(void* p) {
  auto& c = *static_cast<Conn*>(p);
  c.want_write = true;
  arm_write(c);
}
void ev_del_write(void* p) { static_cast<Conn*>(p)->want_write = false; }
void ev_cleanup(void* p) {
  // The context is being freed (hiredis closes the fd right after): give the fd back, cancel our waits.
  auto& c = *static_cast<Conn*>(p);
  c.want_read = c.want_write = c.reading = c.writing = false;
  if (c.fd) {
    c.fd->release();
    c.fd.reset();
  }
  c.ac = nullptr;
  ++c.gen;
}

void disarm(Conn& c) {
  ++c.timer_seq;
  c.timer_armed = false;
  c.timer.cancel();
}

void schedule_retry(Conn& c) {
  if (!c.client || c.client->stopping) return;
  auto& k = *c.client;
  // Exponential backoff with jitter in [d/2, d].
  const auto cap = k.o.reconnect_max.count();
  const auto d = std::min<std::int64_t>(cap, k.o.reconnect_min.count() << std::min(c.failures, 16u));
  const auto wait = d / 2 + static_cast<std::int64_t>(k.rng() % static_cast<std::uint64_t>(d / 2 + 1));
  ++c.failures;
  c.retry.expires_after(std::chrono::milliseconds(wait));
  c.retry.async_wait([self = c.shared_from_this()](boost::system::error_code ec) {
    if (!ec && self->client && !self->client->stopping && self->state == Conn::State::down) start_connect(*self);
  });
}

void connect_failed(Conn& c) {
  c.state = Conn::State::down;
  disarm(c);
  if (!c.client) return;
  c.address = (c.address + 1) % c.client->addresses.size();  // the next server, if there is another
  ++c.client->stats.connect_failures;
  if (!c.subscriber) c.client->outcome(false);
  schedule_retry(c);
}

// Fails the command at the head of the FIFO, or answers it.
void complete(Conn& c, const redisReply* r) {
  if (c.inflight.empty()) return;
  Conn::Pending p = std::move(c.inflight.front());
  c.inflight.pop_front();
  if (!c.client) return;  // the client is going away: the handler is dropped
  auto& k = *c.client;
  const auto now = Clock::now();
  if (k.m.latency.valid()) k.m.latency.observe(static_cast<std::uint64_t>((now - p.sent).count()));
  boost::system::error_code ec;
  Reply reply;
  if (!r) {
    ec = now >= p.deadline ? errc::timeout : errc::disconnected;
    if (ec == errc::timeout) ++k.stats.timeouts, count(k.m.timeouts);
    else ++k.stats.errors, count(k.m.errors);
  } else {
    reply = convert(r);
    if (reply.type == Reply::Type::error) {
      ec = errc::server_error;
      ++k.stats.errors;
      count(k.m.errors);
    } else {
      ++k.stats.ok;
      count(k.m.ok);
    }
  }
  k.outcome(!ec);
  k.post(std::move(p.h), ec, std::move(reply));
}

void on_reply(redisAsyncContext*, void* r, void* priv) {
  auto& c = *static_cast<Conn*>(priv);
  complete(c, static_cast<const redisReply*>(r));
  if (c.state == Conn::State::ready && !c.timer_armed) arm_deadline(c);
}

// Resets a connection: every command in flight fails (timeout past its deadline, else disconnected).
void reset(Conn& c) {
  c.state = Conn::State::down;
  disarm(c);
  if (c.ac) redisAsyncFree(c.ac);  // runs the reply callbacks with NULL, cleanup, then on_disconnect
  while (!c.inflight.empty()) complete(c, nullptr);
}

void arm_deadline(Conn& c) {
  if (c.timer_armed) return;
  const bool connecting = c.state == Conn::State::resolving || c.state == Conn::State::connecting;
  if (!connecting && c.inflight.empty()) return;
  c.timer_armed = true;
  const std::uint64_t seq = ++c.timer_seq;
  if (!connecting) c.timer.expires_at(c.inflight.front().deadline);
  c.timer.async_wait([self = c.shared_from_this(), seq](boost::system::error_code) {
    Conn& c = *self;
    if (seq != c.timer_seq || !c.client) return;
    c.timer_armed = false;
    if (c.state == Conn::State::resolving || c.state == Conn::State::connecting) {
      spdlog::debug("redis: connect timed out");
      c.resolver.cancel();
      ++c.attempt;
      if (c.ac) redisAsyncFree(c.ac);  // not connected yet: no disconnect callback
      connect_failed(c);
      return;
    }
    if (c.state != Conn::State::ready || c.inflight.empty()) return;
    if (c.inflight.front().deadline <= Clock::now()) {
      spdlog::debug("redis: command timed out; resetting the connection");
      reset(c);  // on_disconnect schedules the reconnect
      return;
    }
    arm_deadline(c);  // the oldest command changed: wait for its deadline
  });
}

void on_sub_reply(redisAsyncContext*, void* r, void* priv) {
  auto& c = *static_cast<Conn*>(priv);
  const auto* reply = static_cast<const redisReply*>(r);
  if (!reply || !c.client || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
  const redisReply* kind = reply->element[0];
  if (kind->type != REDIS_REPLY_STRING) return;
  const std::string_view k(kind->str, kind->len);
  auto& cl = *c.client;
  if (k == "subscribe") {
    const bool again = c.was_subscribed;
    c.was_subscribed = true;
    if (cl.on_subscribed) cl.on_subscribed(again);
  } else if (k == "message" && reply->element[2]->type == REDIS_REPLY_STRING) {
    if (cl.on_message) cl.on_message(std::string_view(reply->element[2]->str, reply->element[2]->len));
  }
}

void on_connect(const redisAsyncContext* ac, int status) {
  auto& c = *static_cast<Conn*>(ac->data);
  if (status != REDIS_OK) {
    spdlog::debug("redis: connect failed: {}", ac->errstr ? ac->errstr : "?");
    connect_failed(c);  // hiredis frees the context after this returns (cleanup bumps gen)
    return;
  }
  disarm(c);
  c.state = Conn::State::ready;
  c.failures = 0;
  if (!c.client) return;
  auto& k = *c.client;
  ++k.stats.connects;
  count(k.m.connects);
  if (c.subscriber) {
    auto* mut = const_cast<redisAsyncContext*>(ac);
    redisEnableKeepAlive(&mut->c);  // TCP keepalive: a silently dead peer is noticed without a command of ours
    const char* argv[] = {"SUBSCRIBE", k.channel.data()};
    const std::size_t lens[] = {9, k.channel.size()};
    redisAsyncCommandArgv(mut, on_sub_reply, &c, 2, argv, lens);
  }
}

void on_disconnect(const redisAsyncContext* ac, int) {
  auto& c = *static_cast<Conn*>(ac->data);
  c.state = Conn::State::down;
  disarm(c);
  if (!c.client) return;
  ++c.client->stats.disconnects;
  count(c.client->m.disconnects);
  schedule_retry(c);
}

void open(Conn& c, const std::optional<asio::ip::address>& addr) {
  auto& k = *c.client;
  const ClientOptions::Address& to = k.addresses[c.address];
  redisAsyncContext* ac = addr ? redisAsyncConnect(addr->to_string().c_str(), to.port)  // numeric: no DNS
                               : redisAsyncConnectUnix(to.unix_path.c_str());
  if (!ac) return connect_failed(c);
  if (ac->err) {
    spdlog::debug("redis: connect: {}", ac->errstr);
    redisAsyncFree(ac);
    return connect_failed(c);
  }
  c.ac = ac;
  ac->data = &c;
  ac->ev.data = &c;
  ac->ev.addRead = ev_add_read;
  ac->ev.delRead = ev_del_read;
  ac->ev.addWrite = ev_add_write;
  ac->ev.delWrite = ev_del_write;
  ac->ev.cleanup = ev_cleanup;
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  c.fd.emplace(k.ex, ac->c.fd);
  c.state = Conn::State::connecting;
  // hiredis 0.14 learns that the connect finished from the first writability: wait for it.
  c.want_write = true;
  arm_write(c);
}

void start_connect(Conn& c) {
  auto& k = *c.client;
  c.state = Conn::State::resolving;
  const std::uint64_t attempt = ++c.attempt;
  c.timer.expires_after(k.o.connect_timeout);
  c.timer_armed = false;
  arm_deadline(c);
  const ClientOptions::Address& to = k.addresses[c.address];
  if (!to.unix_path.empty()) return open(c, std::nullopt);
  boost::system::error_code ec;
  const auto addr = asio::ip::make_address(to.host, ec);
  if (!ec) return open(c, addr);
  // getaddrinfo runs on Asio's resolver thread, never on the worker (hiredis would call it inline).
  c.resolver.async_resolve(to.host, std::to_string(to.port),
                           [self = c.shared_from_this(), attempt](boost::system::error_code ec,
                                                                  Resolver::results_type results) {
                             Conn& c = *self;
                             if (attempt != c.attempt || !c.client || c.state != Conn::State::resolving) return;
                             if (ec || results.empty()) {
                               spdlog::debug("redis: resolving failed: {}", ec.message());
                               return connect_failed(c);
                             }
                             open(c, results.begin()->endpoint().address());
                           });
}
}  // namespace

Client::Client(core::Executor ex, ClientOptions o, ClientMetrics m)
    : impl_(std::make_shared<Impl>(ex, std::move(o), m)) {
  const unsigned n = std::max(1u, impl_->o.pool);
  for (unsigned i = 0; i < n; ++i) impl_->conns.push_back(std::make_shared<Conn>(impl_.get(), ex, false));
}

Client::~Client() {
  stop();
  // Waits still queued on the executor hold their Conn: they must find no client behind it.
  for (auto& c : impl_->conns) c->client = nullptr;
  if (impl_->sub) impl_->sub->client = nullptr;
}

void Client::stop() {
  Impl& k = *impl_;
  k.stopping = true;
  auto stop = [](Conn& c) {
    c.retry.cancel();
    c.resolver.cancel();
    disarm(c);
    c.state = Conn::State::down;
    if (c.ac) redisAsyncFree(c.ac);
    while (!c.inflight.empty()) complete(c, nullptr);
  };
  for (auto& c : k.conns) stop(*c);
  if (k.sub) stop(*k.sub);
}

void Client::start() {
  Impl& k = *impl_;
  if (k.started || k.stopping) return;
  k.started = true;
  for (auto& c : k.conns) start_connect(*c);
  if (k.sub) start_connect(*k.sub);
}

void Client::subscribe(std::string channel, std::function<void(std::string_view)> on_message,
                       std::function<void(bool)> on_subscribed) {
  Impl& k = *impl_;
  k.channel = std::move(channel);
  k.on_message = std::move(on_message);
  k.on_subscribed = std::move(on_subscribed);
  k.sub = std::make_shared<Conn>(impl_.get(), k.ex, true);
  if (k.started) start_connect(*k.sub);
}

void Client::execute(std::span<const std::string_view> argv, Handler h) {
  Impl& k = *impl_;
  const auto now = Clock::now();
  auto reject = [&](errc e) {
    ++k.stats.rejected;
    count(k.m.rejected);
    k.post(std::move(h), e, {});
  };
  if (!k.breaker.allow(now)) {
    k.sync_breaker_gauge();
    return reject(errc::breaker_open);
  }
  k.sync_breaker_gauge();
  // Round robin over the connections that are up and have room.
  Conn* c = nullptr;
  bool any_up = false;
  for (std::size_t i = 0; i < k.conns.size() && !c; ++i) {
    Conn& cand = *k.conns[(k.next + i) % k.conns.size()];
    if (cand.state != Conn::State::ready) continue;
    any_up = true;
    if (cand.inflight.size() < k.o.max_in_flight) c = &cand;
  }
  ++k.next;
  if (!c) {
    k.outcome(false);  // the tier cannot take it: a probe that finds no connection fails too
    return reject(any_up ? errc::queue_full : errc::unavailable);
  }
  std::array<const char*, 16> small_ptr;
  std::array<std::size_t, 16> small_len;
  std::vector<const char*> big_ptr;
  std::vector<std::size_t> big_len;
  const char** ptr = small_ptr.data();
  std::size_t* len = small_len.data();
  if (argv.size() > small_ptr.size()) {
    big_ptr.resize(argv.size());
    big_len.resize(argv.size());
    ptr = big_ptr.data();
    len = big_len.data();
  }
  for (std::size_t i = 0; i < argv.size(); ++i) {
    ptr[i] = argv[i].data();
    len[i] = argv[i].size();
  }
  if (redisAsyncCommandArgv(c->ac, on_reply, c, static_cast<int>(argv.size()), ptr, len) != REDIS_OK) {
    k.outcome(false);
    return reject(errc::disconnected);
  }
  c->inflight.push_back({std::move(h), now, now + k.o.command_timeout});
  ++c->batched;
  arm_deadline(*c);
}

void Client::send(std::span<const std::string_view> argv) { execute(argv, Handler()); }

Breaker::State Client::breaker_state() const noexcept { return impl_->breaker.state(); }

bool Client::connected() const noexcept {
  for (const auto& c : impl_->conns)
    if (c->state == Conn::State::ready) return true;
  return false;
}

const ClientStats& Client::stats() const noexcept { return impl_->stats; }

}  // namespace virex::regional
