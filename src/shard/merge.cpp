// Fan-out merges (merge.hpp).
#include <virex/shard/merge.hpp>

#include <algorithm>
#include <map>
#include <queue>

namespace virex::shard {
namespace {

bool concat(std::vector<ResultSet>& parts, std::size_t max_rows, ResultSet& out, std::string& why) {
  for (ResultSet& p : parts) {
    if (out.columns.empty()) out.columns = p.columns;
    if (out.rows.size() + p.rows.size() > max_rows) {
      why = "more than max_rows (" + std::to_string(max_rows) + ") rows";
      return false;
    }
    for (Row& r : p.rows) out.rows.push_back(std::move(r));
  }
  return true;
}

// Every shard's rows are sorted by the keys already (its SQL says ORDER BY); a heap of the shards' heads yields
// the merged order; the offset is skipped after the merge, then at most `limit` rows are taken.
bool sorted(std::vector<ResultSet>& parts, const config::FanOut& spec, std::int64_t offset, std::size_t max_rows,
            ResultSet& out, std::string& why) {
  if (parts.empty()) return true;
  out.columns = parts.front().columns;
  std::vector<std::pair<int, bool>> keys;  // column index, descending
  for (const config::SortKey& k : spec.order_by) {
    const int c = out.column(k.column);
    if (c < 0) {
      why = "order_by column \"" + k.column + "\" is not in the result";
      return false;
    }
    keys.emplace_back(c, k.descending);
  }
  for (const ResultSet& p : parts) {
    if (p.columns != out.columns && !p.rows.empty()) {
      why = "the shards returned different columns";
      return false;
    }
  }
  const auto less = [&](const Row& a, const Row& b) {  // a before b
    for (const auto& [c, desc] : keys) {
      const int r = compare(a[static_cast<std::size_t>(c)], b[static_cast<std::size_t>(c)]);
      if (r != 0) return desc ? r > 0 : r < 0;
    }
    return false;
  };
  using Head = std::pair<std::size_t, std::size_t>;  // part, row
  // Ties keep shard order (lower part first), so the merge is deterministic.
  const auto after = [&](const Head& a, const Head& b) {
    const Row& ra = parts[a.first].rows[a.second];
    const Row& rb = parts[b.first].rows[b.second];
    if (less(rb, ra)) return true;
    if (less(ra, rb)) return false;
    return a.first > b.first;
  };
  std::priority_queue<Head, std::vector<Head>, decltype(after)> heap(after);
  for (std::size_t i = 0; i < parts.size(); ++i)
    if (!parts[i].rows.empty()) heap.emplace(i, 0);
  const std::size_t limit = spec.limit ? static_cast<std::size_t>(*spec.limit) : max_rows + 1;
  std::int64_t skip = offset;
  while (!heap.empty() && out.rows.size() < limit) {
    const Head h = heap.top();
    heap.pop();
    if (skip > 0) {
      --skip;
    } else {
      if (out.rows.size() >= max_rows) {
        why = "more than max_rows (" + std::to_string(max_rows) + ") rows";
        return false;
      }
      out.rows.push_back(std::move(parts[h.first].rows[h.second]));
    }
    if (h.second + 1 < parts[h.first].rows.size()) heap.emplace(h.first, h.second + 1);
  }
  return true;
}

void add(Value& acc, const Value& v) {
  using K = Value::Kind;
  if (v.kind == K::null) return;
  if (acc.kind == K::null) {
    acc = v;
    return;
  }
  if (acc.kind == K::integer && v.kind == K::integer) {
    std::int64_t r;
    if (!__builtin_add_overflow(acc.i, v.i, &r)) {
      acc.i = r;
      return;
    }
    acc = Value::numeric(std::to_string(acc.i));
  }
  const auto text = [](const Value& x) { return x.kind == K::integer ? std::to_string(x.i) : x.s; };
  if ((acc.kind == K::numeric || acc.kind == K::integer) && (v.kind == K::numeric || v.kind == K::integer)) {
    std::string sum;
    if (add_decimal(text(acc), text(v), sum)) {
      acc = Value::numeric(std::move(sum));
      return;
    }
  }
  const auto num = [](const Value& x) { return x.kind == K::integer ? static_cast<double>(x.i) : x.d; };
  acc = Value::real(num(acc) + num(v));
}

double as_double(const Value& v) {
  return v.kind == Value::Kind::integer ? static_cast<double>(v.i) : v.d;
}

struct Group {
  Row key;
  std::vector<Value> acc;                    // per aggregate: the running value
  std::vector<Value> avg_sum, avg_count;     // per aggregate (avg only)
};

bool aggregate(std::vector<ResultSet>& parts, const config::FanOut& spec, std::size_t max_rows, ResultSet& out,
               std::string& why) {
  for (const std::string& g : spec.group_by) out.columns.push_back(g);
  for (const config::Aggregate& a : spec.aggregates) out.columns.push_back(a.column);
  // Groups in key order (compare() order), like GROUP BY … ORDER BY the keys.
  const auto key_less = [](const Row& a, const Row& b) {
    for (std::size_t i = 0; i < a.size(); ++i)
      if (const int c = compare(a[i], b[i]); c != 0) return c < 0;
    return false;
  };
  std::map<Row, Group, decltype(key_less)> groups(key_less);
  const std::size_t na = spec.aggregates.size();
  for (const ResultSet& p : parts) {
    if (p.rows.empty()) continue;
    std::vector<int> gcols, acols, scols, ccols;
    for (const std::string& g : spec.group_by) gcols.push_back(p.column(g));
    for (const config::Aggregate& a : spec.aggregates) {
      acols.push_back(a.fn == config::AggregateFn::avg ? -2 : p.column(a.column));
      scols.push_back(a.fn == config::AggregateFn::avg ? p.column(a.sum_column) : -2);
      ccols.push_back(a.fn == config::AggregateFn::avg ? p.column(a.count_column) : -2);
    }
    for (const auto* v : {&gcols, &acols, &scols, &ccols}) {
      if (std::find(v->begin(), v->end(), -1) != v->end()) {
        why = "a group_by or aggregate column is not in the shard's result";
        return false;
      }
    }
    for (const Row& r : p.rows) {
      Row key;
      for (int c : gcols) key.push_back(r[static_cast<std::size_t>(c)]);
      auto [it, inserted] = groups.try_emplace(key);
      Group& g = it->second;
      if (inserted) {
        if (groups.size() > max_rows) {
          why = "more than max_rows (" + std::to_string(max_rows) + ") groups";
          return false;
        }
        g.key = key;
        g.acc.resize(na);
        g.avg_sum.resize(na);
        g.avg_count.resize(na);
      }
      for (std::size_t i = 0; i < na; ++i) {
        const config::Aggregate& a = spec.aggregates[i];
        switch (a.fn) {
          case config::AggregateFn::count:
          case config::AggregateFn::sum: add(g.acc[i], r[static_cast<std::size_t>(acols[i])]); break;
          case config::AggregateFn::min:
          case config::AggregateFn::max: {
            const Value& v = r[static_cast<std::size_t>(acols[i])];
            if (v.kind == Value::Kind::null) break;
            const bool take = g.acc[i].kind == Value::Kind::null ||
                              (a.fn == config::AggregateFn::min ? compare(v, g.acc[i]) < 0 : compare(v, g.acc[i]) > 0);
            if (take) g.acc[i] = v;
            break;
          }
          case config::AggregateFn::avg:
            add(g.avg_sum[i], r[static_cast<std::size_t>(scols[i])]);
            add(g.avg_count[i], r[static_cast<std::size_t>(ccols[i])]);
            break;
        }
      }
    }
  }
  // Without group_by, SQL answers one row even over no rows: count 0, the others NULL.
  if (groups.empty() && spec.group_by.empty()) {
    Group g;
    g.acc.resize(na);
    g.avg_sum.resize(na);
    g.avg_count.resize(na);
    groups.emplace(Row{}, std::move(g));
  }
  for (auto& [key, g] : groups) {
    Row row = key;
    for (std::size_t i = 0; i < na; ++i) {
      const config::Aggregate& a = spec.aggregates[i];
      if (a.fn == config::AggregateFn::count && g.acc[i].kind == Value::Kind::null) {
        row.push_back(Value::integer(0));
      } else if (a.fn == config::AggregateFn::avg) {
        const double n = g.avg_count[i].kind == Value::Kind::null ? 0 : as_double(g.avg_count[i]);
        row.push_back(n > 0 && g.avg_sum[i].kind != Value::Kind::null ? Value::real(as_double(g.avg_sum[i]) / n)
                            : Value::null());
      } else {
        row.push_back(std::move(g.acc[i]));
      }
    }
    out.rows.push_back(std::move(row));
  }
  return true;
}

}  // namespace

bool merge(std::vector<ResultSet>& parts, const config::FanOut& spec, std::int64_t offset, std::size_t max_rows,
           ResultSet& out, std::string& why) {
  switch (spec.merge) {
    case config::Merge::concat: return concat(parts, max_rows, out, why);
    case config::Merge::sorted: return sorted(parts, spec, offset, max_rows, out, why);
    case config::Merge::aggregate: return aggregate(parts, spec, max_rows, out, why);
  }
  return false;
}

}  // namespace virex::shard
