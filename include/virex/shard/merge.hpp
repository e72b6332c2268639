// Merging the result sets of a fan-out (one per shard that answered) into one, as a route's `fan_out:` says:
// concatenation, a k-way merge of sorted streams with limit/offset applied after it, or re-aggregation of
// per-shard aggregates (counts and sums add, min/max compare, avg = Σsum / Σcount) grouped by columns. Sans-IO.
#pragma once

#include <virex/config/config.hpp>
#include <virex/shard/value.hpp>

#include <string>
#include <vector>

namespace virex::shard {

// Merges `parts` (consumed) into `out`. False with `why` set when the rows do not fit the spec (a column it
// names is missing) or the merged rows exceed `max_rows`.
bool merge(std::vector<ResultSet>& parts, const config::FanOut& spec, std::int64_t offset, std::size_t max_rows,
           ResultSet& out, std::string& why);

}  // namespace virex::shard
