// libpq on the worker's io_context (client.hpp). One PgConn = one PGconn in non-blocking pipeline mode whose
// socket is watched by a stream_descriptor (released, never closed: libpq owns the fd). A request queues
// [Parse] Bind/Execute and waits on a timer that the connection's reader cancels when its segment's Sync comes
// back; the reader matches results to requests FIFO. Many requests share one connection up to
// pool.max_pipeline; connections per endpoint grow up to the pool's share of max_per_endpoint. A connection
// that breaks or times out is closed, never reused.
// Segments: PostgreSQL pays most of a round trip per Sync (a transaction end and a flush: ~28 µs here against
// ~6 µs per statement, bench/RESULTS.md), so the reads queued on a connection during one turn of the event loop
// share one Sync, sent with the flush posted at the end of the turn. A write has a segment of its own (its
// commit is its Sync). When a statement of a shared segment fails, PostgreSQL aborts the rest of the segment and
// rolls its implicit transaction back: the failing request gets its error, every other request of the segment
// runs again in a segment of its own — so a read never fails, nor is reported done and then undone, because of
// another request.
#include <virex/shard/client.hpp>

#include <libpq-fe.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/basic_stream_descriptor.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <list>
#include <unordered_map>
#include <unordered_set>

namespace virex::shard {

namespace asio = boost::asio;
using Descriptor = asio::posix::basic_stream_descriptor<core::Executor>;
using core::Timer;
namespace {
constexpr auto token = asio::as_tuple(core::kUseAwaitable);
constexpr auto kMaxBackoff = std::chrono::seconds(5);
constexpr auto kBaseBackoff = std::chrono::milliseconds(100);
constexpr auto kClientSlack = std::chrono::milliseconds(500);  // beyond statement_timeout, the client gives up
constexpr std::string_view kClientTimeout = "statement timeout (client side)";  // the server did not answer
// (A timeout with a SQLSTATE is the server's own cancel, 57014: the statement was slow. Without one, the server
// said nothing at all.)
const char* const kLagSql =
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN -1::float8 "
    "WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0::float8 "
    "ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), -1)::float8 END";
// (Behind with no transaction replayed since the replica started: the lag is unknown (-1) and the replica is
// not read from until it has caught up once.) The time since the last replayed commit overstates the lag of a
// replica whose primary was idle: the first WAL after a quiet hour makes it look an hour behind until it has
// replayed it. So the lag taken is at most how long the replica has been seen behind (since the first probe of
// this streak that found unreplayed WAL, plus one probe interval): a replica stuck or truly behind still crosses
// max_lag, at the rate of the clock.

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 1469598103934665603ULL;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  return h;
}
}  // namespace

std::string_view to_string(QueryErrc e) noexcept {
  switch (e) {
    case QueryErrc::none: return "ok";
    case QueryErrc::unavailable: return "unavailable";
    case QueryErrc::pool_timeout: return "pool_timeout";
    case QueryErrc::overloaded: return "overloaded";
    case QueryErrc::timeout: return "timeout";
    case QueryErrc::sql_error: return "sql_error";
    case QueryErrc::connection_lost: return "connection_lost";
    case QueryErrc::too_many_rows: return "too_many_rows";
  }
  return "unknown";
}

struct Endpoint;
struct PgConn;

// One request's statement: lives in the query coroutine's frame; the connection points at it while it is in
// the FIFO and detaches it on completion (or the request detaches itself when it gives up).
struct Request {
  explicit Request(core::Executor ex) : wake(ex) {}
  Timer wake;
  QueryOutcome out;
  std::size_t max_rows = 0;
  bool done = false;
  bool aborted = false;  // PostgreSQL skipped a statement of ours after another's error in the segment
  bool retry = false;    // set at the Sync: run again in a segment of its own
  std::shared_ptr<PgConn> conn;
};

struct Op {
  enum class Kind : std::uint8_t { prepare, query, sync } kind;
  Request* req;          // null: the request gave up (results are drained and dropped); sync: always null
  std::uint64_t stmt = 0;  // prepare: the statement hash (forgotten again if the Parse fails)
  bool got = false;
  unsigned nreq = 0;     // sync: the requests of the segment it ends
};

struct PgConn : std::enable_shared_from_this<PgConn> {
  PgConn(core::Executor ex, Endpoint* ep) : sock(ex), deadline(ex), endpoint(ep) {}
  ~PgConn() {
    if (sock.is_open()) sock.release();  // libpq owns the fd
    if (pg) PQfinish(pg);
  }

  PGconn* pg = nullptr;
  Descriptor sock;
  Timer deadline;       // connect deadline
  Endpoint* endpoint;   // null once the endpoint dropped it
  std::deque<Op> fifo;
  std::unordered_set<std::uint64_t> prepared;
  unsigned in_flight = 0;  // requests outstanding (queued, sent or awaiting their Sync)
  unsigned open_reqs = 0;  // requests queued since the last Sync (the open segment)
  std::vector<Request*> seg;  // the requests of the segment being read, completed at its Sync
  bool seg_error = false;  // a statement of the segment being read failed
  bool ready = false;      // connected and in pipeline mode
  bool broken = false;
  bool flushing = false;   // a write wait is in progress
  bool flush_posted = false;  // the end-of-turn Sync + flush is queued
  bool timed_out = false;  // connect deadline passed
  std::chrono::steady_clock::time_point opened_at = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_active = opened_at;  // the last Sync answered (idle since)

  void fail_all(QueryErrc e, const std::string& why);
  void close(QueryErrc e, const std::string& why);
};

struct Endpoint {
  Endpoint(core::Executor ex, std::string d) : dsn(std::move(d)), ex_(ex) {}
  std::string dsn;
  std::string label;            // host:port for metrics and logs
  Role role = Role::primary;
  std::string region;
  std::size_t shard = 0;
  std::int64_t shard_id = 0;
  bool in_config = true;
  std::list<std::shared_ptr<PgConn>> conns;
  std::list<Timer*> waiters;            // acquire waits, woken (cancelled) when a slot frees
  unsigned failures = 0;
  std::chrono::steady_clock::time_point retry_at{};
  double lag = -1;              // seconds; replicas: -1 until measured / when unreachable
  std::chrono::steady_clock::time_point behind_since{};  // replicas: first probe of the streak that saw it behind
  bool lag_probe_running = false;
  unsigned outstanding = 0;     // statements in flight on this endpoint
  EndpointStats stats;
  core::Executor ex_;

  bool backing_off(std::chrono::steady_clock::time_point now) const { return failures > 0 && now < retry_at; }
  void wake_one() {
    if (!waiters.empty()) {
      waiters.front()->cancel();
      waiters.pop_front();
    }
  }
  void wake_all() {
    for (Timer* t : waiters) t->cancel();
    waiters.clear();
  }
  void remove(PgConn* c) {
    for (auto it = conns.begin(); it != conns.end(); ++it) {
      if (it->get() == c) {
        conns.erase(it);
        break;
      }
    }
    wake_all();  // a slot for a new connection
  }
};

void PgConn::fail_all(QueryErrc e, const std::string& why) {
  std::deque<Op> ops;
  ops.swap(fifo);
  std::vector<Request*> reqs;
  reqs.swap(seg);  // (their ops are behind them; every other request has an op in the FIFO)
  for (Op& op : ops)
    if (op.req) reqs.push_back(op.req);
  for (Request* r : reqs) {
    if (r->done) continue;
    if (r->out.error == QueryErrc::none || r->aborted) {
      r->out.error = e;
      r->out.message = why;
    }
    r->retry = false;
    r->done = true;
    r->conn.reset();
    r->wake.cancel();
  }
  if (endpoint) endpoint->outstanding -= std::min(endpoint->outstanding, in_flight);
  in_flight = 0;
  open_reqs = 0;
  seg_error = false;
}

void PgConn::close(QueryErrc e, const std::string& why) {
  if (broken) return;
  broken = true;
  ready = false;
  boost::system::error_code ec;
  sock.cancel(ec);
  fail_all(e, why);
  auto self = shared_from_this();  // keep alive until the end of this function
  if (endpoint) endpoint->remove(this);
}

struct Databases::Impl : std::enable_shared_from_this<Databases::Impl> {
  Impl(core::Executor e, unsigned w, unsigned index, std::string region)
      : ex(e), workers(w ? w : 1), worker_index(index), local_region(std::move(region)), tick_timer(e) {}
  core::Executor ex;
  unsigned workers, worker_index;
  std::string local_region;
  config::Databases cfg;
  std::unordered_map<std::string, std::unique_ptr<Endpoint>> endpoints;  // by "role|dsn"
  struct ShardEndpoints {
    Endpoint* primary = nullptr;
    std::vector<Endpoint*> replicas;
  };
  std::vector<ShardEndpoints> shards;
  Timer tick_timer;  // the maintenance loop's (replica lag, pool minimum, idle probes, retirement)
  bool loop_running = false;
  bool closed = false;
  QueryObserver observer;

  // This worker's part of a per-node count: total / workers, plus one for the first total % workers workers.
  unsigned share(unsigned total) const { return total / workers + (worker_index < total % workers ? 1 : 0); }
  unsigned max_conns() const { return std::max(1u, share(cfg.pool.max_per_endpoint)); }
  unsigned min_conns(const Endpoint& ep) const;
  Awaitable<std::shared_ptr<PgConn>> open(Endpoint& ep);
  // One request's statement on `conn`: queued, flushed at the end of the turn, awaited until its segment's Sync
  // (or statement_timeout + slack, which resets the connection).
  Awaitable<void> exchange(std::shared_ptr<PgConn> conn, Request& r, const std::string& sql,
                           const std::vector<std::string>& params, const std::string& comment, bool shared,
                           bool unnamed);
  Awaitable<void> maintain(Endpoint& ep);
  Endpoint* endpoint(const std::string& dsn, Role role, std::size_t shard, std::int64_t id, const std::string& region);
  Awaitable<std::shared_ptr<PgConn>> acquire(Endpoint& ep, std::chrono::steady_clock::time_point deadline,
                                             bool shared, QueryErrc& err);
  Awaitable<bool> connect(std::shared_ptr<PgConn> c);
  // `shared`: a read that may share its segment (its Sync) with the other reads queued in the same turn.
  Awaitable<void> run(Endpoint& ep, std::string sql, std::vector<std::string> params, std::size_t max_rows,
                      QueryOutcome& out, bool shared, std::string comment = {});
  Endpoint* pick_replica(std::size_t shard);
  // `unnamed`: Parse + Bind + Execute of the unnamed statement, independent of what this connection prepared.
  void send(PgConn& c, Request& r, const std::string& sql, const std::vector<std::string>& params,
            const std::string& comment, bool shared, bool unnamed);
  static void sync(PgConn& c);
  void flush_at_end_of_turn(const std::shared_ptr<PgConn>& c);
  void flush(const std::shared_ptr<PgConn>& c);
  static void on_readable(PgConn& c);
  void start_loop();
};

namespace {

// The reader: consumes input whenever the socket is readable and completes requests in FIFO order.
Awaitable<void> read_loop(std::shared_ptr<PgConn> c) {
  while (!c->broken) {
    auto [ec] = co_await c->sock.async_wait(Descriptor::wait_read, token);
    if (c->broken) break;
    if (ec) {
      c->close(QueryErrc::connection_lost, "connection closed");
      break;
    }
    Databases::Impl::on_readable(*c);
  }
}

Awaitable<void> flush_loop(std::shared_ptr<PgConn> c) {
  while (!c->broken) {
    const int r = PQflush(c->pg);
    if (r == 0) break;
    if (r < 0) {
      c->close(QueryErrc::connection_lost, PQerrorMessage(c->pg));
      break;
    }
    auto [ec] = co_await c->sock.async_wait(Descriptor::wait_write, token);
    if (ec) break;
  }
  c->flushing = false;
}

// Replica lag and pool upkeep of this worker's map (its own connections, like queries); defined below.
Awaitable<void> maintenance_loop(std::shared_ptr<Databases::Impl> impl);

std::string trimmed(const char* msg) {
  std::string s = msg ? msg : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

void Databases::Impl::on_readable(PgConn& c) {
  if (!PQconsumeInput(c.pg)) {
    c.close(QueryErrc::connection_lost, trimmed(PQerrorMessage(c.pg)));
    return;
  }
  while (!c.fifo.empty() && !PQisBusy(c.pg)) {
    Op& op = c.fifo.front();
    PGresult* res = PQgetResult(c.pg);
    if (op.kind == Op::Kind::sync) {
      if (!res) break;  // not there yet
      const auto st = PQresultStatus(res);
      PQclear(res);
      if (st != PGRES_PIPELINE_SYNC) {
        c.close(QueryErrc::connection_lost, "pipeline out of step");
        return;
      }
      const unsigned n = op.nreq;
      c.fifo.pop_front();
      c.last_active = std::chrono::steady_clock::now();
      c.in_flight -= std::min(c.in_flight, n);
      if (c.endpoint) c.endpoint->outstanding -= std::min(c.endpoint->outstanding, n);
      std::vector<Request*> seg;
      seg.swap(c.seg);
      for (Request* r : seg) {
        // Another request's error rolled this segment back: run again alone (a request that failed on its own
        // keeps its error; one whose statement was merely skipped is retried, never failed).
        if (n > 1 && c.seg_error && r->out.error == QueryErrc::none) r->retry = true;
        else if (r->aborted && r->out.error == QueryErrc::none) {
          r->out.error = QueryErrc::sql_error;
          r->out.message = "aborted";
        }
        r->done = true;
        r->conn.reset();  // may drop the last reference to c only after we return (the reader holds one)
        r->wake.cancel();
      }
      c.seg_error = false;
      if (c.endpoint)
        for (unsigned i = 0; i < n; ++i) c.endpoint->wake_one();
      continue;
    }
    if (!res) {  // the end of this statement's results
      if (Request* r = op.req; r && (c.seg.empty() || c.seg.back() != r)) c.seg.push_back(r);
      c.fifo.pop_front();
      continue;
    }
    Request* r = op.req;
    const auto st = PQresultStatus(res);
    if (r && !op.got) {
      QueryOutcome& out = r->out;
      if (st == PGRES_TUPLES_OK && op.kind == Op::Kind::query && out.error == QueryErrc::none) {
        const int nf = PQnfields(res), nt = PQntuples(res);
        if (static_cast<std::size_t>(nt) > r->max_rows) {
          out.error = QueryErrc::too_many_rows;
          out.message = "more than max_rows (" + std::to_string(r->max_rows) + ") rows";
        } else {
          out.rows.columns.clear();
          for (int f = 0; f < nf; ++f) out.rows.columns.emplace_back(PQfname(res, f));
          out.rows.rows.reserve(static_cast<std::size_t>(nt));
          for (int t = 0; t < nt; ++t) {
            Row row;
            row.reserve(static_cast<std::size_t>(nf));
            for (int f = 0; f < nf; ++f) {
              if (PQgetisnull(res, t, f)) row.push_back(Value::null());
              else row.push_back(decode(PQftype(res, f), std::string_view(PQgetvalue(res, t, f), static_cast<std::size_t>(PQgetlength(res, t, f)))));
            }
            out.rows.rows.push_back(std::move(row));
          }
        }
      } else if (st == PGRES_COMMAND_OK && op.kind == Op::Kind::query) {
        const char* n = PQcmdTuples(res);
        out.rows.affected = n && *n ? static_cast<std::size_t>(std::strtoull(n, nullptr, 10)) : 0;
      } else if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR) {
        if (st == PGRES_FATAL_ERROR) c.seg_error = true;
        if (out.error == QueryErrc::none || out.error == QueryErrc::too_many_rows) {
          out.error = QueryErrc::sql_error;
          out.message = trimmed(PQresultErrorMessage(res));
          const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
          out.sqlstate = state ? state : "";
          // 57014: canceled by statement_timeout.
          if (out.sqlstate == "57014") out.error = QueryErrc::timeout;
        }
      } else if (st == PGRES_PIPELINE_ABORTED) {
        r->aborted = true;
      }
    } else if (st == PGRES_FATAL_ERROR) {
      c.seg_error = true;
    }
    if (op.kind == Op::Kind::prepare && st != PGRES_COMMAND_OK) c.prepared.erase(op.stmt);
    op.got = true;
    PQclear(res);
  }
  if (c.fifo.empty() && PQstatus(c.pg) == CONNECTION_BAD) c.close(QueryErrc::connection_lost, "connection closed");
}

Endpoint* Databases::Impl::endpoint(const std::string& dsn, Role role, std::size_t shard, std::int64_t id,
                                    const std::string& region) {
  const std::string key = std::string(role == Role::primary ? "p|" : "r|") + dsn;
  auto& slot = endpoints[key];
  if (!slot) {
    slot = std::make_unique<Endpoint>(ex, dsn);
    // host:port for labels, from libpq's own parse (the loader checked the string).
    char* err = nullptr;
    std::string host, port = "5432";
    if (PQconninfoOption* o = PQconninfoParse(dsn.c_str(), &err)) {
      for (PQconninfoOption* i = o; i->keyword; ++i) {
        if (!i->val || !*i->val) continue;
        if (!std::strcmp(i->keyword, "host") || (!std::strcmp(i->keyword, "hostaddr") && host.empty())) host = i->val;
        if (!std::strcmp(i->keyword, "port")) port = i->val;
      }
      PQconninfoFree(o);
    }
    PQfreemem(err);
    slot->label = host + ":" + port;
  }
  Endpoint* ep = slot.get();
  ep->role = role;
  ep->shard = shard;
  ep->shard_id = id;
  ep->region = region;
  ep->in_config = true;
  return ep;
}

void Databases::Impl::send(PgConn& c, Request& r, const std::string& sql, const std::vector<std::string>& params,
                          const std::string& comment, bool shared, bool unnamed) {
  if (c.broken || !c.pg) {  // broke while this request waited for it
    r.out.error = QueryErrc::connection_lost;
    r.out.message = "connection closed";
    r.done = true;
    return;
  }
  const std::uint64_t h = fnv1a(sql);
  char name[24];
  std::snprintf(name, sizeof name, "v%016llx", static_cast<unsigned long long>(h));
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const std::string& p : params) values.push_back(p.c_str());
  const int n = static_cast<int>(params.size());
  if (!shared && c.open_reqs > 0) sync(c);  // a write's segment is its own
  if (c.broken) {
    r.out.error = QueryErrc::connection_lost;
    r.out.message = "connection closed";
    r.done = true;
    return;
  }
  bool ok = true;
  if (unnamed || !comment.empty()) {
    // sqlcommenter: the comment makes the text unique per request, so it runs as the unnamed statement.
    const std::string text = comment.empty() ? sql : sql + " " + comment;
    ok = PQsendQueryParams(c.pg, text.c_str(), n, nullptr, values.data(), nullptr, nullptr, 0) == 1;
    if (ok) c.fifo.push_back({Op::Kind::query, &r});
  } else if (!c.prepared.count(h)) {
    ok = PQsendPrepare(c.pg, name, sql.c_str(), n, nullptr) == 1;
    if (ok) {
      c.prepared.insert(h);
      c.fifo.push_back({Op::Kind::prepare, &r, h});
    }
  }
  if (!unnamed && comment.empty()) {
    ok = ok && PQsendQueryPrepared(c.pg, name, n, values.data(), nullptr, nullptr, 0) == 1;
    if (ok) c.fifo.push_back({Op::Kind::query, &r});
  }
  ++c.in_flight;
  ++c.open_reqs;
  if (c.endpoint) ++c.endpoint->outstanding;
  if (!ok) {
    c.close(QueryErrc::connection_lost, trimmed(PQerrorMessage(c.pg)));
    return;
  }
  if (!shared || c.open_reqs >= cfg.pool.max_pipeline) sync(c);
}

// Ends the open segment: a Sync for the requests queued since the last one.
void Databases::Impl::sync(PgConn& c) {
  if (c.broken || c.open_reqs == 0) return;
  if (PQpipelineSync(c.pg) != 1) return c.close(QueryErrc::connection_lost, trimmed(PQerrorMessage(c.pg)));
  Op op{Op::Kind::sync, nullptr};
  op.nreq = c.open_reqs;
  c.fifo.push_back(op);
  c.open_reqs = 0;
  if (c.endpoint) ++c.endpoint->stats.syncs_total;
}

// The Sync of the open segment and the flush, once the handlers ready in this turn of the event loop (the other
// requests parsed from the same readiness batch) have queued their statements.
void Databases::Impl::flush_at_end_of_turn(const std::shared_ptr<PgConn>& c) {
  if (c->flush_posted || c->broken) return;
  c->flush_posted = true;
  asio::post(ex, [self = shared_from_this(), c] {
    c->flush_posted = false;
    if (c->broken) return;
    sync(*c);
    self->flush(c);
  });
}

void Databases::Impl::flush(const std::shared_ptr<PgConn>& c) {
  if (c->flushing || c->broken) return;
  const int r = PQflush(c->pg);
  if (r < 0) return c->close(QueryErrc::connection_lost, trimmed(PQerrorMessage(c->pg)));
  if (r == 1) {
    c->flushing = true;
    asio::co_spawn(ex, flush_loop(c), asio::detached);
  }
}

Awaitable<bool> Databases::Impl::connect(std::shared_ptr<PgConn> c) {
  Endpoint& ep = *c->endpoint;
  // Keywords from the configured string, with hostaddr resolved here (libpq would resolve with blocking DNS).
  std::vector<std::string> keys, vals;
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(ep.dsn.c_str(), &err);
  PQfreemem(err);
  if (!opts) co_return false;
  std::string host, port = "5432", options, hostaddr;
  bool has_app = false;
  for (PQconninfoOption* o = opts; o->keyword; ++o) {
    if (!o->val) continue;
    const std::string_view k = o->keyword;
    if (k == "host") host = o->val;
    else if (k == "port") port = o->val;
    else if (k == "hostaddr") hostaddr = o->val;
    else if (k == "options") options = o->val;
    else {
      if (k == "application_name") has_app = true;
      keys.emplace_back(o->keyword);
      vals.emplace_back(o->val);
    }
  }
  PQconninfoFree(opts);
  if (hostaddr.empty() && !host.empty() && host.front() != '/' && host.front() != '@') {
    asio::ip::basic_resolver<asio::ip::tcp, core::Executor> resolver(ex);
    auto [rec, results] = co_await resolver.async_resolve(host, port, token);
    if (rec || results.empty()) co_return false;
    hostaddr = results.begin()->endpoint().address().to_string();
  }
  if (!host.empty()) keys.emplace_back("host"), vals.push_back(host);
  if (!hostaddr.empty()) keys.emplace_back("hostaddr"), vals.push_back(hostaddr);
  keys.emplace_back("port"), vals.push_back(port);
  if (!has_app) keys.emplace_back("application_name"), vals.emplace_back("virex-edge");
  // Server-side statement_timeout, and the output formats the decoder expects (value.hpp).
  options += " -c statement_timeout=" + std::to_string(cfg.pool.statement_timeout.count()) +
             " -c TimeZone=UTC -c DateStyle=ISO -c IntervalStyle=iso_8601 -c extra_float_digits=1";
  keys.emplace_back("options"), vals.push_back(options);
  std::vector<const char*> k, v;
  for (std::size_t i = 0; i < keys.size(); ++i) k.push_back(keys[i].c_str()), v.push_back(vals[i].c_str());
  k.push_back(nullptr), v.push_back(nullptr);
  c->pg = PQconnectStartParams(k.data(), v.data(), 0);
  if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) co_return false;
  boost::system::error_code ec;
  int fd = PQsocket(c->pg);
  if (fd < 0) co_return false;
  c->sock.assign(fd, ec);
  if (ec) co_return false;
  // The connect deadline cancels the waits below (the handler holds the connection, so it outlives it).
  c->deadline.expires_after(cfg.pool.connect_timeout);
  c->deadline.async_wait([weak = std::weak_ptr<PgConn>(c)](boost::system::error_code e) {
    if (e) return;
    if (auto self = weak.lock()) {
      self->timed_out = true;
      boost::system::error_code ignored;
      self->sock.cancel(ignored);
    }
  });
  PostgresPollingStatusType poll = PGRES_POLLING_WRITING;
  while (poll != PGRES_POLLING_OK) {
    if (poll == PGRES_POLLING_FAILED || c->timed_out || c->broken) {
      c->deadline.cancel();
      co_return false;
    }
    auto [wec] = co_await c->sock.async_wait(poll == PGRES_POLLING_READING ? Descriptor::wait_read : Descriptor::wait_write, token);
    if (wec || c->timed_out || c->broken) {
      c->deadline.cancel();
      co_return false;
    }
    poll = PQconnectPoll(c->pg);
    // "Do not assume that the socket remains the same across PQconnectPoll calls" (libpq docs §34.1).
    const int nfd = PQsocket(c->pg);
    if (nfd != c->sock.native_handle()) {
      c->sock.release();
      if (nfd >= 0) c->sock.assign(nfd, ec);
    }
  }
  c->deadline.cancel();
  if (PQsetnonblocking(c->pg, 1) != 0 || PQenterPipelineMode(c->pg) != 1) co_return false;
  c->ready = true;
  co_return true;
}

Awaitable<std::shared_ptr<PgConn>> Databases::Impl::open(Endpoint& ep) {
  auto self = shared_from_this();
  auto c = std::make_shared<PgConn>(ex, &ep);
  ep.conns.push_back(c);
  ++ep.stats.opened_total;
  const bool ok = co_await connect(c);
  if (ok && !c->broken && c->endpoint) {
    ep.failures = 0;
    asio::co_spawn(ex, read_loop(c), asio::detached);
    ep.wake_all();
    co_return c;
  }
  const std::string why = c->pg ? trimmed(PQerrorMessage(c->pg)) : "cannot connect";
  if (!c->broken) {
    c->broken = true;
    if (c->endpoint) ep.remove(c.get());
  }
  ++ep.failures;
  ++ep.stats.connect_failures_total;
  // Exponential backoff: 100 ms, 200 ms, … up to 5 s while the endpoint keeps refusing.
  const auto backoff = std::min<std::chrono::steady_clock::duration>(
      kMaxBackoff, kBaseBackoff * (1 << std::min(ep.failures - 1, 6u)));
  ep.retry_at = std::chrono::steady_clock::now() + backoff;
  spdlog::warn("shard {} {} {}: connect failed: {}", ep.shard_id, ep.role == Role::primary ? "primary" : "replica",
               ep.label, why);
  co_return nullptr;
}

Awaitable<std::shared_ptr<PgConn>> Databases::Impl::acquire(Endpoint& ep, std::chrono::steady_clock::time_point deadline,
                                                            bool shared, QueryErrc& err) {
  auto self = shared_from_this();
  for (;;) {
    if (closed) {
      err = QueryErrc::unavailable;
      co_return nullptr;
    }
    std::shared_ptr<PgConn> best;
    for (const auto& c : ep.conns) {
      if (!c->ready || c->broken || c->in_flight >= cfg.pool.max_pipeline) continue;
      // A read joins the segment open on a connection in this turn (one Sync for all); otherwise the least busy.
      if (shared && c->open_reqs > 0 && c->flush_posted) co_return c;
      if (!best || c->in_flight < best->in_flight) best = c;
    }
    const auto now = std::chrono::steady_clock::now();
    const bool can_open = ep.conns.size() < max_conns() && !ep.backing_off(now);
    if (best && (best->in_flight == 0 || !can_open)) co_return best;
    if (can_open) {
      if (auto c = co_await open(ep)) co_return c;
      if (best && !best->broken) co_return best;
      err = QueryErrc::unavailable;
      co_return nullptr;
    }
    if (best) co_return best;
    if (ep.conns.empty()) {  // backing off and nothing open
      err = QueryErrc::unavailable;
      co_return nullptr;
    }
    if (ep.waiters.size() >= cfg.pool.max_waiting) {
      err = QueryErrc::overloaded;
      co_return nullptr;
    }
    if (now >= deadline) {
      ++ep.stats.acquire_timeouts_total;
      err = QueryErrc::pool_timeout;
      co_return nullptr;
    }
    Timer t(ex);
    t.expires_at(deadline);
    ep.waiters.push_back(&t);
    ++ep.stats.waiting;
    auto [ec] = co_await t.async_wait(token);
    --ep.stats.waiting;
    ep.waiters.remove(&t);
    if (!ec) {  // the deadline, not a wake-up
      ++ep.stats.acquire_timeouts_total;
      err = QueryErrc::pool_timeout;
      co_return nullptr;
    }
  }
}

Awaitable<void> Databases::Impl::exchange(std::shared_ptr<PgConn> conn, Request& r, const std::string& sql,
                                          const std::vector<std::string>& params, const std::string& comment,
                                          bool shared, bool unnamed) {
  r.conn = conn;
  send(*conn, r, sql, params, comment, shared, unnamed);
  if (!r.done) {
    flush_at_end_of_turn(conn);
    r.wake.expires_at(std::chrono::steady_clock::now() + cfg.pool.statement_timeout + kClientSlack);
    while (!r.done) {
      auto [ec] = co_await r.wake.async_wait(token);
      if (!ec && !r.done) {
        // No answer in time: the connection is reset (its other requests fail too) and never reused.
        conn->close(QueryErrc::timeout, std::string(kClientTimeout));
        break;
      }
    }
  }
  if (!r.done && r.out.error == QueryErrc::none) {  // (close() found the connection already closed)
    r.out.error = QueryErrc::timeout;
    r.out.message = kClientTimeout;
  }
  if (!r.done) {  // detach from any op still naming this frame
    for (Op& op : conn->fifo)
      if (op.req == &r) op.req = nullptr;
    std::erase(conn->seg, &r);
  }
}

Awaitable<void> Databases::Impl::run(Endpoint& ep, std::string sql, std::vector<std::string> params,
                                     std::size_t max_rows, QueryOutcome& out, bool shared, std::string comment) {
  auto self = shared_from_this();
  const auto start = std::chrono::steady_clock::now();
  out.role = ep.role;
  out.endpoint = ep.label;
  unsigned depth = 0;
  bool unnamed = false;
  for (int attempt = 0;; ++attempt) {
    QueryErrc err = QueryErrc::none;
    auto conn = co_await acquire(ep, start + cfg.pool.acquire_timeout, shared, err);
    if (!conn) {
      out.error = err;
      out.message = std::string(to_string(err));
    } else {
      Request r(ex);
      r.max_rows = max_rows;
      depth = conn->in_flight + 1;
      co_await exchange(conn, r, sql, params, comment, shared, unnamed);
      // Rolled back with a segment another request's error aborted, or a Bind whose statement's Parse (sent by
      // another request) failed or was skipped (26000: nothing of ours ran): once more, in a segment of its own
      // and with a Parse of its own, so the answer is this statement's own.
      if (attempt == 0 && ((shared && r.retry) || (r.out.error == QueryErrc::sql_error && r.out.sqlstate == "26000"))) {
        shared = false;
        unnamed = true;
        ++ep.stats.segment_retries_total;
        continue;
      }
      out.error = r.out.error;
      out.message = std::move(r.out.message);
      out.sqlstate = std::move(r.out.sqlstate);
      out.rows = std::move(r.out.rows);
    }
    break;
  }
  if (observer) {
    observer(ep.shard_id, ep.role, out.error,
             std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), depth);
  }
}

Endpoint* Databases::Impl::pick_replica(std::size_t shard) {
  const auto now = std::chrono::steady_clock::now();
  Endpoint* best = nullptr;
  bool best_local = false;
  const double max_lag = std::chrono::duration<double>(cfg.max_lag).count();
  for (Endpoint* r : shards[shard].replicas) {
    if (r->backing_off(now) || r->lag < 0 || r->lag > max_lag) continue;
    const bool local = r->region == local_region;
    if (!best || (local && !best_local) || (local == best_local && r->outstanding < best->outstanding)) {
      best = r;
      best_local = local;
    }
  }
  return best;
}

unsigned Databases::Impl::min_conns(const Endpoint& ep) const {
  unsigned n = std::min(share(cfg.pool.min_per_endpoint), max_conns());
  // A primary whose shard has replicas is where reads fall back when a replica fails: at least one connection
  // on every worker, so a fallback never waits for a fresh connection.
  if (ep.role == Role::primary && ep.shard < shards.size() && !shards[ep.shard].replicas.empty()) n = std::max(n, 1u);
  return n;
}

// Pool upkeep of one endpoint, every health_interval: idle connections past max_lifetime, and idle ones above
// the minimum past idle_timeout, close; connections idle for a whole interval are probed with SELECT 1 (a dead
// peer or a server that lost them is found here rather than by a request); then the pool is topped up to its
// minimum unless the endpoint is backing off (so an endpoint that came back is reconnected in the background).
Awaitable<void> Databases::Impl::maintain(Endpoint& ep) {
  auto self = shared_from_this();
  const auto now = std::chrono::steady_clock::now();
  const unsigned keep = min_conns(ep);
  const auto idle = [](const std::shared_ptr<PgConn>& c) {
    return c->ready && !c->broken && c->in_flight == 0 && !c->flush_posted;
  };
  std::vector<std::shared_ptr<PgConn>> probe;
  for (const auto& c : std::vector<std::shared_ptr<PgConn>>(ep.conns.begin(), ep.conns.end())) {
    if (!idle(c)) continue;
    if (now - c->opened_at >= cfg.pool.max_lifetime) {
      ++ep.stats.retired_total;
      c->close(QueryErrc::unavailable, "max_lifetime");
    } else if (ep.conns.size() > keep && now - c->last_active >= cfg.pool.idle_timeout) {
      ++ep.stats.retired_total;
      c->close(QueryErrc::unavailable, "idle_timeout");
    } else if (now - c->last_active >= cfg.pool.health_interval) {
      probe.push_back(c);
    }
  }
  const std::string ping = "SELECT 1", no_comment;
  const std::vector<std::string> no_params;
  for (const auto& c : probe) {
    if (closed || !idle(c)) continue;
    Request r(ex);
    r.max_rows = 1;
    co_await exchange(c, r, ping, no_params, no_comment, false, false);
    if (r.out.error != QueryErrc::none) {
      ++ep.stats.health_failures_total;
      spdlog::warn("shard {} {} {}: idle connection failed its probe: {}", ep.shard_id,
                   ep.role == Role::primary ? "primary" : "replica", ep.label, r.out.message);
      c->close(QueryErrc::connection_lost, "failed its probe");
    }
  }
  while (!closed && ep.in_config && ep.conns.size() < keep && !ep.backing_off(std::chrono::steady_clock::now())) {
    if (!co_await open(ep)) break;
  }
}

namespace {
// Every lag_interval (when the map has replicas) each replica's lag; every health_interval each endpoint's pool
// upkeep (maintain). Started by configure() — so the pools' minimum is opened at start and after a reload — and
// stopped by close().
Awaitable<void> maintenance_loop(std::shared_ptr<Databases::Impl> impl) {
  auto next_upkeep = std::chrono::steady_clock::now();
  while (!impl->closed) {
    std::vector<Endpoint*> replicas;
    for (auto& [key, ep] : impl->endpoints)
      if (ep->role == Role::replica && ep->in_config) replicas.push_back(ep.get());
    for (Endpoint* ep : replicas) {
      if (impl->closed) break;
      if (ep->backing_off(std::chrono::steady_clock::now())) {
        ep->lag = -1;
        continue;
      }
      QueryOutcome out;
      co_await impl->run(*ep, kLagSql, {}, 1, out, false);
      if (out.error == QueryErrc::none && out.rows.rows.size() == 1 && out.rows.rows[0].size() == 1) {
        const Value& v = out.rows.rows[0][0];
        const double since_replay =
            v.kind == Value::Kind::real ? v.d : v.kind == Value::Kind::integer ? static_cast<double>(v.i) : -1;
        // A "replica" that is not in recovery (promoted, or misconfigured) is not used for reads (-1).
        if (since_replay > 0) {  // behind (kLagSql)
          const auto now = std::chrono::steady_clock::now();
          if (ep->behind_since == std::chrono::steady_clock::time_point{}) ep->behind_since = now;
          const double seen_behind =
              std::chrono::duration<double>(now - ep->behind_since + impl->cfg.lag_interval).count();
          ep->lag = std::min(since_replay, seen_behind);
        } else {
          ep->behind_since = {};
          ep->lag = since_replay;
        }
      } else {
        ep->behind_since = {};
        ep->lag = -1;
      }
    }
    if (std::chrono::steady_clock::now() >= next_upkeep) {
      next_upkeep = std::chrono::steady_clock::now() + impl->cfg.pool.health_interval;
      std::vector<Endpoint*> all;  // chosen before any co_await (endpoints live as long as impl)
      for (auto& [key, ep] : impl->endpoints)
        if (ep->in_config) all.push_back(ep.get());
      for (Endpoint* ep : all) {
        if (impl->closed) break;
        co_await impl->maintain(*ep);
      }
    }
    if (impl->closed) break;
    const auto tick = replicas.empty() ? impl->cfg.pool.health_interval
                                       : std::min(impl->cfg.lag_interval, impl->cfg.pool.health_interval);
    impl->tick_timer.expires_after(tick);
    auto [ec] = co_await impl->tick_timer.async_wait(token);
    if (ec && impl->closed) break;
  }
  impl->loop_running = false;
}
}  // namespace

void Databases::Impl::start_loop() {
  if (loop_running || closed || shards.empty()) return;
  loop_running = true;
  asio::co_spawn(ex, maintenance_loop(shared_from_this()), asio::detached);
}

Databases::Databases(core::Executor ex, unsigned workers, unsigned worker_index, std::string local_region)
    : impl_(std::make_shared<Impl>(ex, workers, worker_index, std::move(local_region))) {}

Databases::~Databases() { close(); }

void Databases::configure(const config::Databases& cfg) {
  Impl& d = *impl_;
  d.cfg = cfg;
  for (auto& [key, ep] : d.endpoints) ep->in_config = false;
  d.shards.assign(cfg.shards.size(), {});
  for (std::size_t i = 0; i < cfg.shards.size(); ++i) {
    const config::ShardConfig& s = cfg.shards[i];
    d.shards[i].primary = d.endpoint(s.primary, Role::primary, i, s.id, s.region);
    for (const config::ReplicaConfig& r : s.replicas)
      d.shards[i].replicas.push_back(d.endpoint(r.dsn, Role::replica, i, s.id, r.region));
  }
  // Endpoints that left the map: close their connections (requests in flight on them fail). The Endpoint
  // itself stays (a request or the maintenance loop may still hold it across a suspension; outcomes name its
  // label) and is reused if its connection string returns; the set is bounded by the strings ever configured.
  for (auto& [key, ep] : d.endpoints) {
    if (ep->in_config) continue;
    auto conns = ep->conns;
    for (auto& c : conns) {
      c->endpoint = nullptr;
      c->close(QueryErrc::unavailable, "endpoint removed from the shard map");
    }
    ep->conns.clear();
    ep->wake_all();
  }
  d.start_loop();
}

namespace {
std::uint64_t unix_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}
}  // namespace

Awaitable<QueryOutcome> Databases::query(std::size_t shard, bool read, std::string sql, std::vector<std::string> params,
                                         std::size_t max_rows, std::string comment) {
  auto impl = impl_;  // this coroutine keeps the state alive
  const std::uint64_t started = unix_ns();
  QueryOutcome out;
  out.start_unix_ns = started;
  if (impl->closed || shard >= impl->shards.size()) {
    out.error = QueryErrc::unavailable;
    out.message = "no such shard";
    co_return out;
  }
  if (read) {
    if (Endpoint* r = impl->pick_replica(shard)) {
      co_await impl->run(*r, sql, params, max_rows, out, true, comment);
      // A replica that failed before answering (down, connection lost, pool exhausted, or silent past
      // statement_timeout — hung, not merely slow: a slow statement is cancelled by the server, 57014): the read
      // is idempotent, so the primary answers it instead of the client seeing the failure.
      const bool hung = out.error == QueryErrc::timeout && out.sqlstate.empty();
      const bool replica_failed = out.error == QueryErrc::unavailable || out.error == QueryErrc::connection_lost ||
                                  out.error == QueryErrc::pool_timeout || out.error == QueryErrc::overloaded || hung ||
                                  (out.error == QueryErrc::sql_error && out.sqlstate.starts_with("57"));
      if (!replica_failed) {
        out.start_unix_ns = started;
        out.end_unix_ns = unix_ns();
        co_return out;
      }
      // Not read from again until the lag probe hears from it.
      if (out.error == QueryErrc::unavailable || out.error == QueryErrc::connection_lost || hung) r->lag = -1;
      out = QueryOutcome{};
      out.retried_on_primary = true;
    }
  }
  co_await impl->run(*impl->shards[shard].primary, std::move(sql), std::move(params), max_rows, out, read,
                     std::move(comment));
  out.start_unix_ns = started;
  out.end_unix_ns = unix_ns();
  co_return out;
}

namespace {
struct FanState {
  explicit FanState(core::Executor ex, std::size_t n) : outs(n), pending(n), done(ex) {}
  std::vector<QueryOutcome> outs;
  std::size_t pending;
  Timer done;
};

Awaitable<void> fan_one(std::shared_ptr<FanState> st, std::shared_ptr<Databases::Impl> keep, Databases* db,
                        std::size_t shard, bool read, std::string sql, std::vector<std::string> params, std::size_t max_rows,
                        std::string comment) {
  st->outs[shard] = co_await db->query(shard, read, std::move(sql), std::move(params), max_rows, std::move(comment));
  if (--st->pending == 0) st->done.cancel();
}
}  // namespace

std::size_t Databases::shard_count() const noexcept { return impl_->shards.size(); }

Awaitable<std::vector<QueryOutcome>> Databases::query_all(bool read, std::string sql, std::vector<std::string> params,
                                                          std::size_t max_rows, std::vector<std::string> comments) {
  auto impl = impl_;
  const std::size_t n = impl->shards.size();
  auto st = std::make_shared<FanState>(impl->ex, n);
  for (std::size_t i = 0; i < n; ++i) {
    std::string comment;
    if (i < comments.size()) comment = comments[i];
    asio::co_spawn(impl->ex, fan_one(st, impl, this, i, read, sql, params, max_rows, std::move(comment)), asio::detached);
  }
  // Each shard's query ends within acquire_timeout + statement_timeout (+ slack, and a primary retry for reads);
  // this bound only guards against a bug.
  const auto bound = 2 * (impl->cfg.pool.acquire_timeout + impl->cfg.pool.statement_timeout + impl->cfg.pool.connect_timeout) +
                     std::chrono::seconds(2);
  st->done.expires_after(bound);
  while (st->pending > 0) {
    auto [ec] = co_await st->done.async_wait(token);
    if (!ec) break;
  }
  for (QueryOutcome& o : st->outs) {
    if (st->pending > 0 && o.error == QueryErrc::none && o.rows.columns.empty()) {
      o.error = QueryErrc::timeout;
      o.message = "no answer";
    }
  }
  if (st->pending > 0) co_return st->outs;  // (a copy: the stragglers still write into theirs)
  co_return std::move(st->outs);
}

void Databases::close() {
  Impl& d = *impl_;
  if (d.closed) return;
  d.closed = true;
  d.tick_timer.cancel();
  for (auto& [key, ep] : d.endpoints) {
    auto conns = ep->conns;
    for (auto& c : conns) {
      c->close(QueryErrc::unavailable, "shutting down");
      c->endpoint = nullptr;
    }
    ep->wake_all();
  }
}

void Databases::set_observer(QueryObserver o) { impl_->observer = std::move(o); }

std::vector<EndpointStats> Databases::stats() const {
  std::vector<EndpointStats> out;
  for (const auto& [key, ep] : impl_->endpoints) {
    if (!ep->in_config) continue;
    EndpointStats s = ep->stats;
    s.shard = ep->shard;
    s.shard_id = ep->shard_id;
    s.role = ep->role;
    s.label = ep->label;
    s.open = 0;
    s.in_use = 0;
    for (const auto& c : ep->conns) {
      if (!c->ready) continue;
      ++s.open;
      if (c->in_flight) ++s.in_use;
    }
    s.lag_seconds = ep->role == Role::replica ? ep->lag : 0;
    s.healthy = !ep->backing_off(std::chrono::steady_clock::now());
    out.push_back(std::move(s));
  }
  return out;
}

std::int64_t Databases::version() const noexcept { return impl_->cfg.version; }

}  // namespace virex::shard
