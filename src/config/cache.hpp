// Section readers for the edge cache part of the config: `cache:` (the shared store's bounds), `admin:` (the
// purge API's token) and a route's `cache:` block. Called by loader.cpp; private to src/config; main thread only.
// Errors go to the Walker like every other section's.
#pragma once

#include "walker.hpp"

#include <virex/config/config.hpp>

#include <optional>

namespace virex::config::detail {

// `cache: {edge: {max_bytes, max_object_bytes, shards}, regional: {redis: {...}, breaker: {...}, tag_ttl}}`.
void read_cache(Walker& w, const Field& field, Cache& cache);

// After the whole file: routes with `regional_ttl` need `cache.regional`.
void check_regional_routes(Walker& w, const Config& config);

// `admin: {token | token_file}`.
void read_admin(Walker& w, const Field& field, Admin& admin);

// A route's `cache:` (when `field` is set) into route.cache. Only allowed with `upstream:` (`has_upstream`);
// `match_ok`: route.match was read without error, so tag templates can be checked against its path captures.
void read_route_cache(Walker& w, const std::optional<Field>& field, bool has_upstream, bool match_ok, Route& route);

}  // namespace virex::config::detail
