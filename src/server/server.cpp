// The control plane: load + validate config, build snapshots, bind listener sockets (one SO_REUSEPORT
// socket per worker per listener), start workers, and handle signals — SIGHUP reload (validated first,
// applied to every worker before READY=1), SIGTERM/SIGINT bounded drain, SIGUSR1 log reopen.
// Runs on the main thread's own io_context; never touches a worker's state except by posting.
#include <virex/server/server.hpp>

#include "systemd.hpp"
#include "coalescer.hpp"
#include "regional_tier.hpp"
#include "transport.hpp"
#include "worker.hpp"

#include <virex/config/loader.hpp>
#include <virex/observe/access_log.hpp>
#include <virex/observe/metrics.hpp>
#include <virex/pipeline/snapshot.hpp>
#include <virex/upstream/monitor.hpp>
#include <virex/observe/tracing.hpp>
#include <virex/cache/store.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <spdlog/spdlog.h>

#include <cctype>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

#include <csignal>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

namespace virex::server {
namespace {

std::optional<std::string> read_file(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Relative `respond.file` paths are relative to the config file's directory.
pipeline::FileReader file_reader_for(const std::string& config_path) {
  std::string dir = ".";
  if (const auto slash = config_path.rfind('/'); slash != std::string::npos) dir = config_path.substr(0, slash);
  if (dir.empty()) dir = "/";
  return [dir](const std::string& p, std::string& error) {
    return read_file(!p.empty() && p[0] == '/' ? p : dir + "/" + p, error);
  };
}

constexpr std::size_t kMaxConfigBytes = 64 * 1024 * 1024;

struct Loaded {
  std::shared_ptr<const pipeline::Snapshot> snapshot;
  std::shared_ptr<const Transports> transports;  // the listeners' TLS contexts (certificates read now)
  std::vector<std::string> errors;
};

Loaded load_snapshot(const std::string& path, std::uint64_t generation, std::shared_ptr<TicketKeys> keys,
                     const pipeline::Snapshot* previous = nullptr) {
  Loaded out;
  std::string why;
  const auto text = read_file(path, why);
  if (!text) {
    out.errors.push_back(path + ": " + why);
    return out;
  }
  if (text->size() > kMaxConfigBytes) {
    out.errors.push_back(path + ": larger than 64 MiB; refusing to parse it");
    return out;
  }
  auto res = config::load(*text, path);
  for (const auto& e : res.errors) out.errors.push_back(e.to_string());
  if (!res.config) return out;
  std::vector<pipeline::BuildError> build_errors;
  out.snapshot =
      pipeline::build_snapshot(std::move(*res.config), generation, file_reader_for(path), build_errors, previous);
  if (out.snapshot)
    out.transports = build_transports(out.snapshot->config.listeners, file_reader_for(path), std::move(keys), build_errors);
  for (const auto& e : build_errors)
    out.errors.push_back(config::Error{e.location, e.key, e.reason}.to_string());
  if (!out.errors.empty()) out.snapshot.reset();
  return out;
}

std::string listener_key(const config::Listener& l) {
  return l.name + "|" + l.host + "|" + std::to_string(l.port) + "|" + (l.admin ? "admin" : "public");
}

class Server {
 public:
  explicit Server(Options opts) : opts_(std::move(opts)), signals_(ioc_), drain_timer_(ioc_) {}

  int run();

 private:
  // Binds one listening socket per worker for `l`; on failure closes what it opened and says why.
  bool bind_all(const config::Listener& l, std::vector<std::vector<ListenerSocket>>& per_worker, std::string& error);
  void wait_signal();
  void reload();
  void drain();
  void finish();
  void watchdog();
  std::shared_ptr<observe::AccessLog> access_log_for(const config::AccessLog& cfg, std::string& error);
  // Replaces the cluster monitors (DNS, health checks) with ones for current_'s clusters.
  void start_monitors();

  Options opts_;
  asio::io_context ioc_{1};
  asio::signal_set signals_;
  asio::steady_timer drain_timer_;
  std::unique_ptr<observe::Registry> registry_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> stopping_{false};
  // Declared before the workers so that they outlive them: destroying a worker destroys its suspended
  // coroutines (connections, background refreshes), whose destructors still end coalescing flights and hand
  // over spans.
  std::unique_ptr<observe::SpanExporter> exporter_;   // trace export; endpoint fixed at start-up
  std::unique_ptr<cache::Store> edge_cache_;          // when some route caches; sized at start-up
  Coalescer coalescer_;
  std::unique_ptr<RegionalNode> regional_;            // cache.regional; fixed at start-up; outlives the workers
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
  std::shared_ptr<const pipeline::Snapshot> current_;
  std::vector<std::shared_ptr<upstream::Monitor>> monitors_;
  // TLS session ticket keys of every listener, kept across reloads and rotated hourly (tickets stay valid for
  // two rotations: issued under the current key, accepted under the previous one too).
  std::shared_ptr<TicketKeys> ticket_keys_ = std::make_shared<TicketKeys>();
  asio::steady_timer ticket_timer_{ioc_};
  void rotate_ticket_keys();
  // The store's own counters, copied into the control shard every second (virex_cache_*).
  asio::steady_timer cache_stats_timer_{ioc_};
  struct CacheSeries {
    observe::CounterRef bytes, objects, inserts, evictions, rejects;
    struct { std::uint64_t bytes = 0, objects = 0, inserts = 0, evictions = 0, rejects = 0; } last;
  };
  std::optional<CacheSeries> cache_series_;
  void export_cache_stats();
  std::shared_ptr<observe::AccessLog> access_log_;
  std::vector<std::shared_ptr<observe::AccessLog>> retired_logs_;  // until every worker has switched
  std::vector<systemd::InheritedSocket> inherited_;  // socket activation, until a listener claims one
  asio::steady_timer watchdog_timer_{ioc_};
  std::chrono::microseconds watchdog_interval_{0};
  std::size_t watchdog_acks_ = 0;
  config::AccessLog access_log_cfg_;
  std::uint64_t generation_ = 0;
  bool reloading_ = false, reload_again_ = false, draining_ = false, startup_failed_ = false;
  unsigned drained_ = 0;
  observe::CounterRef reload_ok_, reload_failed_;
  int exit_code_ = 0;
};

bool Server::bind_all(const config::Listener& l, std::vector<std::vector<ListenerSocket>>& per_worker,
                      std::string& error) {
  boost::system::error_code ec;
  const auto addr = asio::ip::make_address(l.host, ec);
  if (ec) {
    error = "listener " + l.name + ": bad address " + l.host;
    return false;
  }
  // Socket activation: a socket systemd already listens on for this address is shared by every worker
  // (connections queued before we started are served, none refused during a restart).
  const std::string address = addr.is_v6() ? "[" + addr.to_string() + "]:" + std::to_string(l.port)
                                           : addr.to_string() + ":" + std::to_string(l.port);
  for (auto it = inherited_.begin(); it != inherited_.end(); ++it) {
    if (it->address != address) continue;
    std::vector<ListenerSocket> dups;
    for (std::size_t w = 0; w < workers_.size(); ++w) {
      const int fd = ::fcntl(it->fd, F_DUPFD_CLOEXEC, 0);
      if (fd < 0) {
        error = "listener " + l.name + ": dup of the systemd socket: " + std::strerror(errno);
        for (const auto& s : dups) ::close(s.fd);
        return false;
      }
      dups.push_back(ListenerSocket{listener_key(l), l.name, l.admin, addr.is_v6(), fd});
    }
    spdlog::info("listener {} ({}): socket from systemd", l.name, address);
    ::close(it->fd);
    inherited_.erase(it);
    for (std::size_t w = 0; w < workers_.size(); ++w) per_worker[w].push_back(std::move(dups[w]));
    return true;
  }
  std::vector<ListenerSocket> opened;  // handed to per_worker only when every bind succeeded
  for (std::size_t w = 0; w < workers_.size(); ++w) {
    tcp::acceptor a(ioc_);
    const tcp::endpoint ep(addr, l.port);
    a.open(ep.protocol(), ec);
    if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) {
      int one = 1;
      if (::setsockopt(a.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
        ec = boost::system::error_code(errno, boost::system::system_category());
    }
    if (!ec && addr.is_v6()) a.set_option(asio::ip::v6_only(true), ec);
    if (!ec) a.bind(ep, ec);
    if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      error = "listener " + l.name + " (" + l.host + ":" + std::to_string(l.port) + "): " + ec.message();
      for (const auto& s : opened) ::close(s.fd);
      return false;
    }
    opened.push_back(ListenerSocket{listener_key(l), l.name, l.admin, addr.is_v6(), a.release(ec)});
  }
  for (std::size_t w = 0; w < workers_.size(); ++w) per_worker[w].push_back(std::move(opened[w]));
  return true;
}

std::shared_ptr<observe::AccessLog> Server::access_log_for(const config::AccessLog& cfg, std::string& error) {
  if (access_log_ && cfg.path == access_log_cfg_.path && cfg.format == access_log_cfg_.format) return access_log_;
  if (cfg.path.empty()) return nullptr;
  std::shared_ptr<observe::AccessLog> log = observe::AccessLog::open(cfg, error);
  return log;
}

int Server::run() {
  auto loaded = load_snapshot(opts_.config_path, ++generation_, ticket_keys_);
  if (!loaded.snapshot) {
    for (const auto& e : loaded.errors) std::cerr << e << "\n";
    return 1;
  }
  const config::Config& cfg = loaded.snapshot->config;
  observe::init_logging(cfg.observability.log_level);

  // OpenSSL writes to client sockets with write(2), not send(MSG_NOSIGNAL): a peer gone mid-write must be an
  // EPIPE for that connection, not a SIGPIPE for the process.
  ::signal(SIGPIPE, SIG_IGN);
  // Every connection is a descriptor: raise the soft limit to the hard one (systemd's LimitNOFILE sets both).
  if (rlimit rl{}; ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) spdlog::warn("cannot raise RLIMIT_NOFILE: {}", std::strerror(errno));
  }
  unsigned n = cfg.node.workers ? cfg.node.workers : std::max(1u, std::thread::hardware_concurrency());
  registry_ = std::make_unique<observe::Registry>(n + 1);
  const auto control = registry_->shard(n);
  std::string node = cfg.node.name;
  if (node.empty()) {
    char host[256] = {};
    node = ::gethostname(host, sizeof host - 1) == 0 ? host : "unknown";
    for (char& ch : node)  // a label value: keep it to what config allows for node.name
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '.' && ch != '_') ch = '_';
  }
  control.gauge(registry_->gauge("virex_build_info", "Build and node information (always 1).",
                                 {{"version", opts_.version}, {"node", node}, {"region", cfg.node.region}}))
      .add(1);
  reload_ok_ = control.counter(registry_->counter("virex_config_reloads_total", "Configuration reloads.", {{"result", "ok"}}));
  reload_failed_ =
      control.counter(registry_->counter("virex_config_reloads_total", "Configuration reloads.", {{"result", "failed"}}));

  if (!cfg.observability.tracing.otlp_endpoint.empty()) {
    exporter_ = std::make_unique<observe::SpanExporter>(
        observe::exporter_options(cfg.observability.tracing, node, cfg.node.region), *registry_);
    spdlog::info("tracing: exporting sampled spans to {} (ratio {}, slow {} ms)", cfg.observability.tracing.otlp_endpoint,
                 cfg.observability.tracing.sample_ratio,
                 std::chrono::duration_cast<std::chrono::milliseconds>(cfg.observability.tracing.slow_threshold).count());
  }
  if (std::any_of(cfg.routes.begin(), cfg.routes.end(), [](const config::Route& r) { return r.cache.has_value(); })) {
    cache::StoreOptions o;
    o.max_bytes = cfg.cache.edge.max_bytes;
    o.max_object_bytes = cfg.cache.edge.max_object_bytes;
    o.shards = cfg.cache.edge.shards;
    edge_cache_ = std::make_unique<cache::Store>(o);
  }
  if (edge_cache_) {
    auto& s = cache_series_.emplace();
    s.bytes = control.gauge(registry_->gauge("virex_cache_bytes", "Bytes held by the edge cache (entries' full charge)."));
    s.objects = control.gauge(registry_->gauge("virex_cache_objects", "Entries in the edge cache (variants each)."));
    s.inserts = control.counter(registry_->counter("virex_cache_stores_total", "Responses stored in the edge cache."));
    s.evictions = control.counter(registry_->counter("virex_cache_evictions_total",
                                                     "Entries evicted from the edge cache to make room."));
    s.rejects = control.counter(registry_->counter(
        "virex_cache_admission_rejected_total", "Responses the edge cache's admission policy (or size limit) refused."));
    export_cache_stats();
  }
  if (cfg.cache.regional.enabled) {
    regional_ = std::make_unique<RegionalNode>();
    regional_->cfg = cfg.cache.regional;
    std::random_device rd;
    regional_->instance = fmt::format("{}/{:08x}{:08x}", node, rd(), rd());
    regional_->channel = cfg.cache.regional.prefix + "invalidations";
    spdlog::info("regional tier: redis {} (prefix \"{}\", instance {})", cfg.cache.regional.address,
                 cfg.cache.regional.prefix, regional_->instance);
  }
  for (unsigned i = 0; i < n; ++i) {
    Shared shared{registry_.get(), &ready_, &stopping_, exporter_.get(), edge_cache_.get(), &coalescer_};
    shared.regional = regional_.get();
    shared.workers = n;
    workers_.push_back(std::make_unique<Worker>(i, shared));
  }

  std::vector<std::vector<ListenerSocket>> sockets(n);
  inherited_ = systemd::listen_fds();
  for (const auto& l : cfg.listeners) {
    std::string error;
    if (!bind_all(l, sockets, error)) {
      spdlog::critical("{}", error);
      observe::shutdown_logging();
      return 1;
    }
  }
  for (const auto& s : inherited_) {
    spdlog::warn("socket from systemd ({}) matches no listener; closing it", s.address.empty() ? "not TCP" : s.address);
    ::close(s.fd);
  }
  inherited_.clear();
  std::string log_error;
  access_log_ = access_log_for(cfg.observability.access_log, log_error);
  if (!log_error.empty()) {
    spdlog::critical("access log: {}", log_error);
    observe::shutdown_logging();
    return 1;
  }
  access_log_cfg_ = cfg.observability.access_log;
  current_ = loaded.snapshot;
  start_monitors();

  rotate_ticket_keys();
  for (unsigned i = 0; i < n; ++i) {
    workers_[i]->post_transports(loaded.transports);
    workers_[i]->post_install(current_, access_log_, std::move(sockets[i]), {}, [this](bool ok) {
      if (!ok) asio::post(ioc_, [this] { startup_failed_ = true; });
    });
    threads_.emplace_back([w = workers_[i].get()] { w->run(); });
  }
  signals_.add(SIGHUP);
  signals_.add(SIGTERM);
  signals_.add(SIGINT);
  signals_.add(SIGUSR1);
  wait_signal();
  // Workers have their sockets queued; READY once each has installed them.
  auto remaining = std::make_shared<unsigned>(n);
  for (auto& w : workers_) {
    asio::post(w->io(), [this, remaining] {
      asio::post(ioc_, [this, remaining] {
        if (--*remaining == 0) {
          if (startup_failed_) {
            spdlog::critical("a worker could not take its listener sockets; stopping");
            exit_code_ = 1;
            drain();
            return;
          }
          ready_ = true;
          spdlog::info("virex-edge {} ready: {} workers, {} listeners, {} routes", opts_.version, workers_.size(),
                       current_->config.listeners.size(), current_->config.routes.size());
          systemd::notify("READY=1\nSTATUS=serving");
          if (const auto usec = systemd::watchdog_usec()) {
            watchdog_interval_ = std::chrono::microseconds(usec / 2);
            watchdog();
          }
        }
      });
    });
  }
  ioc_.run();
  for (auto& t : threads_) t.join();
  if (access_log_) access_log_->flush();
  if (exporter_) exporter_->shutdown(std::chrono::seconds(2));  // workers are gone: flush what they sent
  spdlog::info("virex-edge stopped");
  observe::shutdown_logging();
  return exit_code_;
}

void Server::wait_signal() {
  signals_.async_wait([this](boost::system::error_code ec, int sig) {
    if (ec) return;
    switch (sig) {
      case SIGHUP:
        if (reloading_) reload_again_ = true;
        else reload();
        break;
      case SIGUSR1:
        spdlog::info("SIGUSR1: reopening log files");
        if (access_log_) access_log_->reopen();
        break;
      default:
        if (draining_) {
          // A second SIGTERM/SIGINT during the drain: stop now rather than wait for drain_timeout.
          spdlog::warn("second stop signal: closing remaining connections now");
          finish();
          return;
        }
        drain();
        break;
    }
    wait_signal();
  });
}

void Server::reload() {
  if (draining_) return;
  systemd::notify_reloading();
  auto loaded = load_snapshot(opts_.config_path, generation_ + 1, ticket_keys_, current_.get());
  auto fail = [this](const std::vector<std::string>& why) {
    for (const auto& e : why) spdlog::error("reload rejected: {}", e);
    reload_failed_.inc();
    systemd::notify("READY=1\nSTATUS=serving (last reload failed)");
  };
  if (!loaded.snapshot) return fail(loaded.errors);
  const config::Config& next = loaded.snapshot->config;
  if (next.node.workers && next.node.workers != workers_.size())
    spdlog::warn("reload: node.workers changed to {}; takes effect on restart", next.node.workers);
  if (const auto& rc = next.cache.regional;
      rc.enabled != (regional_ != nullptr) ||
      (regional_ && (rc.address != regional_->cfg.address || rc.prefix != regional_->cfg.prefix ||
                     rc.pool != regional_->cfg.pool || rc.timeout != regional_->cfg.timeout ||
                     rc.max_value_bytes != regional_->cfg.max_value_bytes || rc.tag_ttl != regional_->cfg.tag_ttl)))
    spdlog::warn("reload: cache.regional changed; takes effect on restart");

  // Listener diff by identity (name, address, admin): new ones are bound here, before anything changes.
  std::map<std::string, const config::Listener*> old_set, new_set;
  for (const auto& l : current_->config.listeners) old_set[listener_key(l)] = &l;
  for (const auto& l : next.listeners) new_set[listener_key(l)] = &l;
  std::vector<std::vector<ListenerSocket>> add(workers_.size());
  std::vector<std::string> remove;
  for (const auto& [key, l] : old_set)
    if (!new_set.count(key)) remove.push_back(key);
  // New sockets bind beside old ones (SO_REUSEPORT): a listener renamed on the same address shares its
  // traffic with the old socket until the workers close that one; connections queued on it are reset.
  for (const auto& [key, l] : new_set) {
    if (old_set.count(key)) continue;
    std::string error;
    if (!bind_all(*l, add, error)) {
      for (auto& per : add)
        for (auto& s : per) ::close(s.fd);
      return fail({error});
    }
  }
  std::string log_error;
  auto log = access_log_for(next.observability.access_log, log_error);
  if (!log_error.empty()) {
    for (auto& per : add)
      for (auto& s : per) ::close(s.fd);
    return fail({"access log: " + log_error});
  }

  ++generation_;
  current_ = loaded.snapshot;
  start_monitors();
  // The old log is released here, on the control thread, once every worker has dropped it: its destructor
  // flushes and joins its writer thread, which must not stall a worker.
  if (access_log_ && access_log_ != log) retired_logs_.push_back(access_log_);
  access_log_ = log;
  access_log_cfg_ = next.observability.access_log;
  observe::set_log_level(next.observability.log_level);
  reloading_ = true;
  auto remaining = std::make_shared<std::size_t>(workers_.size());
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    // New TLS contexts (certificates re-read) for new connections; open connections keep theirs.
    workers_[i]->post_transports(loaded.transports);
    workers_[i]->post_install(current_, access_log_, std::move(add[i]), remove, [this, remaining](bool ok) {
      if (!ok) spdlog::error("reload: worker could not take a new listener socket; it serves on fewer workers");
      asio::post(ioc_, [this, remaining] {
        if (--*remaining) return;
        retired_logs_.clear();
        reloading_ = false;
        reload_ok_.inc();
        spdlog::info("reload: generation {} serving ({} routes)", generation_, current_->config.routes.size());
        systemd::notify("READY=1\nSTATUS=serving");
        if (reload_again_) {
          reload_again_ = false;
          reload();
        }
      });
    });
  }
}

// WATCHDOG=1 only when every worker answered the previous round's ping: a worker stuck in a handler stops
// the pings, and systemd restarts the service after WatchdogSec.
void Server::watchdog() {
  if (watchdog_acks_ == workers_.size()) systemd::notify("WATCHDOG=1");
  watchdog_acks_ = 0;
  for (auto& w : workers_)
    asio::post(w->io(), [this] { asio::post(ioc_, [this] { ++watchdog_acks_; }); });
  watchdog_timer_.expires_after(watchdog_interval_);
  watchdog_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) watchdog();
  });
}

void Server::drain() {
  if (draining_) return;
  draining_ = true;
  ready_ = false;
  stopping_ = true;  // before STOPPING=1: any response written after it says Connection: close
  systemd::notify("STOPPING=1");
  const auto deadline = current_->config.limits.drain_timeout;
  spdlog::info("draining: up to {} ms", deadline.count());
  for (auto& w : workers_) {
    w->post_drain([this] {
      asio::post(ioc_, [this] {
        if (++drained_ == workers_.size()) finish();
      });
    });
  }
  drain_timer_.expires_after(deadline);
  drain_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    spdlog::warn("drain deadline reached; closing remaining connections");
    finish();
  });
}

void Server::export_cache_stats() {
  if (!edge_cache_ || !cache_series_ || draining_) return;
  auto& s = *cache_series_;
  const cache::StoreStats now = edge_cache_->stats();
  s.bytes.add(static_cast<std::int64_t>(now.bytes) - static_cast<std::int64_t>(s.last.bytes));
  s.objects.add(static_cast<std::int64_t>(now.objects) - static_cast<std::int64_t>(s.last.objects));
  s.inserts.inc(now.inserts - s.last.inserts);
  s.evictions.inc(now.evictions - s.last.evictions);
  s.rejects.inc(now.admission_rejects - s.last.rejects);
  s.last.bytes = now.bytes;
  s.last.objects = now.objects;
  s.last.inserts = now.inserts;
  s.last.evictions = now.evictions;
  s.last.rejects = now.admission_rejects;
  cache_stats_timer_.expires_after(std::chrono::seconds(1));
  cache_stats_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) export_cache_stats();
  });
}

void Server::start_monitors() {
  for (auto& m : monitors_) m->stop();
  monitors_.clear();
  const auto control = registry_->shard(registry_->shard_count() - 1);
  for (const pipeline::Cluster& c : current_->clusters) {
    auto m = std::make_shared<upstream::Monitor>(ioc_, c.state, *c.config, *registry_, control);
    m->start();
    monitors_.push_back(std::move(m));
  }
}

void Server::rotate_ticket_keys() {
  ticket_timer_.expires_after(std::chrono::hours(1));
  ticket_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    ticket_keys_->rotate();
    rotate_ticket_keys();
  });
}

void Server::finish() {
  // Every worker has drained its connections (or the deadline passed): what may still keep a worker's loop
  // busy is background work — a stale-while-revalidate refresh waiting on its origin, a Redis or database
  // reconnect — which must not hold the exit up to its own deadline. Stopping the loops ends it; the suspended
  // coroutines are destroyed with the workers (before the store, coalescer and exporter they use).
  for (auto& w : workers_) w->io().stop();
  ticket_timer_.cancel();
  for (auto& m : monitors_) m->stop();
  cache_stats_timer_.cancel();
  drain_timer_.cancel();
  watchdog_timer_.cancel();
  boost::system::error_code ec;
  signals_.cancel(ec);
  ioc_.stop();
}

}  // namespace

int run(const Options& opts) {
  Server s(opts);
  return s.run();
}

int check_config(const std::string& path, std::ostream& out, std::ostream& err) {
  auto loaded = load_snapshot(path, 1, std::make_shared<TicketKeys>());
  if (!loaded.snapshot) {
    for (const auto& e : loaded.errors) err << e << "\n";
    return 1;
  }
  out << path << ": ok\n";
  return 0;
}

}  // namespace virex::server
