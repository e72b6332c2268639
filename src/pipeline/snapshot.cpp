// Snapshot compilation: config → route table, upstream clusters and codec limits.
#include <virex/pipeline/snapshot.hpp>

#include <virex/config/loader.hpp>

namespace virex::pipeline {

std::shared_ptr<const Snapshot> build_snapshot(config::Config cfg, std::uint64_t generation,
                                               const FileReader& read_file, std::vector<BuildError>& errors,
                                               const Snapshot* previous) {
  auto s = std::make_shared<Snapshot>();
  s->config = std::move(cfg);
  const config::Config& c = s->config;
  const std::size_t before = errors.size();
  s->routes = RouteTable::build(c.routes, read_file, errors);
  if (errors.size() != before) return nullptr;
  for (const config::Upstream& u : c.upstreams) {
    Cluster& cl = s->clusters.emplace_back();
    cl.config = &u;
    if (previous) {
      for (const Cluster& old : previous->clusters)
        if (old.state->same_endpoints(u)) cl.state = old.state;
    }
    if (!cl.state) cl.state = std::make_shared<upstream::ClusterState>(u);
    std::vector<std::string> names;
    for (std::size_t i = 0; i < cl.state->size(); ++i) names.push_back(cl.state->endpoint(i).name);
    cl.balancer = std::make_shared<const upstream::Balancer>(u.balance, names);
  }
  s->routes.bind_clusters([&](const std::string& name) {
    for (std::uint32_t i = 0; i < c.upstreams.size(); ++i)
      if (c.upstreams[i].name == name) return i;
    return std::uint32_t{0};  // the loader refuses unknown cluster names
  });
  s->admin_token = c.admin.token;
  if (c.admin.token_file) {
    std::string why;
    if (auto text = read_file(*c.admin.token_file, why)) {
      std::string_view t = *text;
      while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.remove_suffix(1);
      const std::string err = config::admin_token_error(t);
      if (err.empty()) s->admin_token = t;
      else errors.push_back({c.admin.token_file_location, "admin.token_file", *c.admin.token_file + ": " + err});
    } else {
      errors.push_back({c.admin.token_file_location, "admin.token_file", why});
    }
    if (errors.size() != before) return nullptr;
  }
  s->h1_limits.max_header_bytes = c.limits.max_header_bytes;
  s->h1_limits.max_uri_bytes = c.limits.max_uri_bytes;
  s->h1_limits.max_body_bytes = c.limits.max_body_bytes;
  s->generation = generation;
  return s;
}

}  // namespace virex::pipeline
