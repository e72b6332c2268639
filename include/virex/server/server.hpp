// The daemon's entry points: run the server from a config file, or check a config file.
// Only this component builds threads, opens sockets, reads files and the environment.
#pragma once

#include <iosfwd>
#include <string>

namespace virex::server {

struct Options {
  std::string config_path = "/etc/virex-edge/edge.yaml";
  std::string version = "0.0.0";
};

// Runs until SIGTERM/SIGINT have drained the workers; returns the process exit code.
int run(const Options& opts);

// Loads and fully validates `path` (including files it names); prints "path: ok" to `out` and returns 0,
// or prints every error as `file:line:col: key: reason` to `err` and returns 1.
int check_config(const std::string& path, std::ostream& out, std::ostream& err);

// `virex-edge shards migrate FILE.sql`: applies the file to every shard primary of the config's `databases:`
// (one transaction per shard). 0 when every shard took it, 1 when some failed (each named on `err`), 2 for a
// bad config or file.
int shards_migrate(const std::string& config_path, const std::string& sql_path, std::ostream& out, std::ostream& err);
// `virex-edge shards check`: every endpoint reachable, primaries not in recovery and holding no customer outside
// their range, replicas streaming (lag shown). 0 when all is well, 1 with problems, 2 for a bad config.
int shards_check(const std::string& config_path, std::ostream& out, std::ostream& err);

}  // namespace virex::server
