// An immutable snapshot of everything a request needs: the config it came from and the compiled routes.
// Built on the control thread at start-up and on every reload; workers hold shared_ptr<const Snapshot>,
// so in-flight requests keep the snapshot they started on alive.
#pragma once

#include <virex/config/config.hpp>
#include <virex/http/h1_parser.hpp>
#include <virex/pipeline/route_table.hpp>
#include <virex/upstream/balancer.hpp>
#include <virex/upstream/cluster.hpp>

#include <cstdint>
#include <memory>
#include <vector>

namespace virex::pipeline {

// An upstream cluster as requests see it: its config, its node-wide state (kept across reloads while the
// endpoints are unchanged) and its balancer.
struct Cluster {
  const config::Upstream* config = nullptr;      // into Snapshot::config.upstreams
  std::shared_ptr<upstream::ClusterState> state;
  std::shared_ptr<const upstream::Balancer> balancer;
};

struct Snapshot {
  config::Config config;
  RouteTable routes;
  std::vector<Cluster> clusters;                 // config.upstreams order
  std::string admin_token;                       // admin.token, or the contents of admin.token_file ("" = none)
  http::H1Limits h1_limits;
  std::uint64_t generation = 0;
};

// Compiles `cfg` into a snapshot; on failure returns nullptr and fills `errors`. Cluster state of `previous`
// (the running snapshot, if any) is kept for clusters whose endpoints did not change.
std::shared_ptr<const Snapshot> build_snapshot(config::Config cfg, std::uint64_t generation,
                                               const FileReader& read_file, std::vector<BuildError>& errors,
                                               const Snapshot* previous = nullptr);

}  // namespace virex::pipeline
