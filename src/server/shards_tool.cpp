// `virex-edge shards migrate FILE.sql` and `virex-edge shards check`: synchronous operator tooling on libpqxx
// (blocking is fine here: a command-line process, never a worker). migrate applies one SQL file to every shard
// primary, each in its own transaction (replicas follow by replication); check connects to every endpoint and
// reports its role, replication state and lag, and whether the map's ranges cover one span and each primary
// holds no customer outside its range. Both read the daemon's config file.
#include <virex/config/loader.hpp>
#include <virex/server/server.hpp>

#include <pqxx/pqxx>

#include <fstream>
#include <ostream>
#include <sstream>

namespace virex::server {
namespace {

constexpr const char* kConnectTimeout = " connect_timeout=5";

std::optional<config::Config> load_config(const std::string& path, std::ostream& err) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    err << path << ": cannot be read\n";
    return std::nullopt;
  }
  std::stringstream text;
  text << in.rdbuf();
  auto res = config::load(text.str(), path);
  if (!res.config) {
    for (const auto& e : res.errors)
      err << e.location.file << ":" << e.location.line << ":" << e.location.column << ": " << e.key << ": " << e.reason << "\n";
    return std::nullopt;
  }
  if (res.config->databases.shards.empty()) {
    err << path << ": no databases.shards configured\n";
    return std::nullopt;
  }
  return std::move(res.config);
}

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n') c = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

}  // namespace

int shards_migrate(const std::string& config_path, const std::string& sql_path, std::ostream& out, std::ostream& err) {
  const auto cfg = load_config(config_path, err);
  if (!cfg) return 2;
  std::ifstream in(sql_path, std::ios::binary);
  if (!in) {
    err << sql_path << ": cannot be read\n";
    return 2;
  }
  std::stringstream sql;
  sql << in.rdbuf();
  int failed = 0;
  for (const config::ShardConfig& s : cfg->databases.shards) {
    try {
      pqxx::connection c(s.primary + kConnectTimeout);
      pqxx::work tx(c);
      tx.exec(sql.str());  // simple protocol: the file may hold several statements
      tx.commit();
      out << "shard " << s.id << ": ok\n";
    } catch (const std::exception& e) {
      ++failed;
      err << "shard " << s.id << ": failed: " << one_line(e.what()) << "\n";
    }
  }
  out << (cfg->databases.shards.size() - failed) << "/" << cfg->databases.shards.size() << " shards migrated\n";
  return failed ? 1 : 0;
}

int shards_check(const std::string& config_path, std::ostream& out, std::ostream& err) {
  const auto cfg = load_config(config_path, err);
  if (!cfg) return 2;
  const auto& shards = cfg->databases.shards;
  int problems = 0;
  // The loader already refused gaps and overlaps; say what the map covers.
  out << "map: version " << cfg->databases.version << ", " << shards.size() << " shards, customers " << shards.front().lo
      << ".." << shards.back().hi << "\n";
  for (const config::ShardConfig& s : shards) {
    try {
      pqxx::connection c(s.primary + kConnectTimeout);
      pqxx::nontransaction tx(c);
      const bool recovery = tx.exec1("SELECT pg_is_in_recovery()")[0].as<bool>();
      std::string outside = "-";
      if (tx.exec1("SELECT to_regclass('customers') IS NOT NULL")[0].as<bool>()) {
        const auto n = tx.exec1("SELECT count(*) FROM customers WHERE id < " + tx.quote(s.lo) + " OR id > " +
                                tx.quote(s.hi))[0].as<long long>();
        outside = std::to_string(n);
        if (n > 0) ++problems;
      }
      if (recovery) ++problems;
      out << "shard " << s.id << " primary " << c.hostname() << ":" << c.port() << ": "
          << (recovery ? "NOT A PRIMARY (in recovery)" : "ok") << ", customers outside [" << s.lo << ", " << s.hi
          << "]: " << outside << "\n";
    } catch (const std::exception& e) {
      ++problems;
      out << "shard " << s.id << " primary: UNREACHABLE: " << one_line(e.what()) << "\n";
    }
    for (const config::ReplicaConfig& r : s.replicas) {
      try {
        pqxx::connection c(r.dsn + kConnectTimeout);
        pqxx::nontransaction tx(c);
        const auto row = tx.exec1(
            "SELECT pg_is_in_recovery(), COALESCE((SELECT status FROM pg_stat_wal_receiver), 'none'), "
            "CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 "
            "ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END::float8");
        const bool recovery = row[0].as<bool>();
        const std::string status = row[1].as<std::string>();
        const double lag = row[2].as<double>();
        const bool ok = recovery && status == "streaming";
        if (!ok) ++problems;
        out << "shard " << s.id << " replica " << c.hostname() << ":" << c.port() << " (" << r.region << "): "
            << (ok ? "ok" : recovery ? "NOT REPLAYING" : "NOT A REPLICA") << ", receiver " << status << ", lag "
            << lag << "s\n";
      } catch (const std::exception& e) {
        ++problems;
        out << "shard " << s.id << " replica: UNREACHABLE: " << one_line(e.what()) << "\n";
      }
    }
  }
  out << (problems ? std::to_string(problems) + " problem(s)\n" : "all endpoints ok\n");
  return problems ? 1 : 0;
}

}  // namespace virex::server
