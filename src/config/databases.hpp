// Section readers for the shard router: `databases:` (pool settings and the shard map) and a route's `query:`
// action with its `invalidate:` list. Called by loader.cpp; private to src/config; main thread only.
#pragma once

#include "walker.hpp"

#include <virex/config/config.hpp>

#include <optional>
#include <vector>

namespace virex::config::detail {

// `databases:` — pool settings, lag settings and the shard map. The shards are sorted by range; overlapping
// ranges and gaps between them are errors naming both shards.
void read_databases(Walker& w, const Field& field, Databases& databases);

// A route's `query:` (into route.query) and `invalidate:` (into route.invalidate). `match_ok`: route.match was
// read without error, so parameter names can be checked against its path captures.
void read_route_query(Walker& w, const std::optional<Field>& query, const std::optional<Field>& invalidate,
                      bool match_ok, Route& route);

// Checks that need the whole file: query routes need `databases:`.
void check_query_routes(Walker& w, const Config& config, const std::vector<Field>& query_fields);

}  // namespace virex::config::detail
