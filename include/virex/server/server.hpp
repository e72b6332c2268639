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

}  // namespace virex::server
