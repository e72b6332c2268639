// Snapshot compilation: config → route table + codec limits.
#include <virex/pipeline/snapshot.hpp>

namespace virex::pipeline {

std::shared_ptr<const Snapshot> build_snapshot(config::Config cfg, std::uint64_t generation,
                                               const FileReader& read_file, std::vector<BuildError>& errors) {
  auto s = std::make_shared<Snapshot>();
  const std::size_t before = errors.size();
  s->routes = RouteTable::build(cfg.routes, read_file, errors);
  if (errors.size() != before) return nullptr;
  s->h1_limits.max_header_bytes = cfg.limits.max_header_bytes;
  s->h1_limits.max_uri_bytes = cfg.limits.max_uri_bytes;
  s->h1_limits.max_body_bytes = cfg.limits.max_body_bytes;
  s->config = std::move(cfg);
  s->generation = generation;
  return s;
}

}  // namespace virex::pipeline
