// Section readers for the reverse-proxy part of the config: `upstreams:` (clusters), `proxy:` (trusted proxies,
// Via) and a route's `upstream:` action with its `rewrite:` and `timeouts:`. Called by loader.cpp; private to
// src/config; main thread only. Errors go to the Walker like every other section's.
#pragma once

#include "walker.hpp"

#include <virex/config/config.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace virex::config::detail {

// `upstreams:` — a mapping of cluster name → cluster, kept in file order in `upstreams`. A cluster with errors
// is still appended (with its name), so routes naming it are not also reported as naming an unknown cluster.
void read_upstreams(Walker& w, const Field& field, std::vector<Upstream>& upstreams);

// The keys of one route item that belong to its upstream action, as met while reading the item.
struct RouteUpstreamKeys {
  std::optional<Field> upstream;   // `upstream: NAME`
  std::optional<Field> rewrite;    // `rewrite: {strip_prefix, add_prefix}`
  std::optional<Field> timeouts;   // `timeouts: {first_byte, idle, request}`
};

// Reads a route's `upstream:`, `rewrite:` and `timeouts:` into route.upstream (set when `upstream:` is present);
// `rewrite` and `timeouts` without `upstream` are errors. `match_ok`: route.match was read without error, so
// strip_prefix can be checked against its path. A cluster name read is appended to `references` (a Field whose
// node is the name) for resolve_route_upstreams(), which runs once the whole file has been read.
void read_route_upstream(Walker& w, const RouteUpstreamKeys& keys, bool match_ok, Route& route,
                         std::vector<Field>& references);

// Reports every reference that names no cluster of `upstreams` (clusters may be defined after the routes).
void resolve_route_upstreams(Walker& w, const std::vector<Field>& references, const std::vector<Upstream>& upstreams);

// `proxy:` — trusted_proxies (addresses or CIDR ranges) and via.
void read_proxy(Walker& w, const Field& field, Proxy& proxy);

// "host:port" written as an upstream endpoint is (an IPv4 address, "[IPv6]" or a DNS name; the port required),
// for other keys that name a remote service (observability.tracing.otlp_endpoint). Returns why `text` is
// malformed, or "" with `canonical` set: the host lower-cased, IPv6 in inet_ntop form and bracketed.
std::string parse_endpoint(std::string_view text, std::string& canonical);

}  // namespace virex::config::detail
