// An immutable snapshot of everything a request needs: the config it came from and the compiled routes.
// Built on the control thread at start-up and on every reload; workers hold shared_ptr<const Snapshot>,
// so in-flight requests keep the snapshot they started on alive.
#pragma once

#include <virex/config/config.hpp>
#include <virex/http/h1_parser.hpp>
#include <virex/pipeline/route_table.hpp>

#include <cstdint>
#include <memory>
#include <vector>

namespace virex::pipeline {

struct Snapshot {
  config::Config config;
  RouteTable routes;
  http::H1Limits h1_limits;
  std::uint64_t generation = 0;
};

// Compiles `cfg` into a snapshot; on failure returns nullptr and fills `errors`.
std::shared_ptr<const Snapshot> build_snapshot(config::Config cfg, std::uint64_t generation,
                                               const FileReader& read_file, std::vector<BuildError>& errors);

}  // namespace virex::pipeline
