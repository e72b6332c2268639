// `databases:` (pool, lag settings, shard map) and a route's `query:` / `invalidate:` (see databases.hpp).
// Connection strings are checked with libpq's own parser (PQconninfoParse), so a typo is a config error with
// its position rather than a connect failure at run time.
#include "databases.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <memory>

namespace virex::config::detail {
namespace {

constexpr std::array<std::string_view, 5> kTypes = {"int64", "text", "bool", "timestamp", "numeric"};
constexpr std::array<std::string_view, 3> kMerges = {"concat", "sorted", "aggregate"};
constexpr std::array<std::string_view, 4> kSimpleAggregates = {"count", "sum", "min", "max"};
constexpr std::size_t kMaxParams = 64;

// Why `dsn` is not a usable libpq keyword/value string ("" when it is): libpq's parser, plus a host (we
// resolve it ourselves, off the loop) and no URI form (the key=value form is what the docs show).
std::string dsn_error(const std::string& dsn) {
  if (dsn.find('\0') != std::string::npos) return "must not contain NUL";
  if (dsn.starts_with("postgres://") || dsn.starts_with("postgresql://"))
    return "expected keyword/value form (\"host=… port=… dbname=… user=…\"), not a URI";
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(dsn.c_str(), &err);
  if (!opts) {
    std::string why = err ? err : "cannot be parsed";
    PQfreemem(err);
    while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
    return "bad connection string: " + why;
  }
  bool host = false;
  for (PQconninfoOption* o = opts; o->keyword; ++o) {
    const std::string_view k = o->keyword;
    if ((k == "host" || k == "hostaddr") && o->val && *o->val) host = true;
    if (k == "host" && o->val && std::string_view(o->val).find(',') != std::string_view::npos) {
      PQconninfoFree(opts);
      return "one host per endpoint (list replicas under replicas:)";
    }
  }
  PQconninfoFree(opts);
  if (!host) return "needs host= (a unix socket directory, an IP address or a DNS name)";
  return "";
}

void read_pool(Walker& w, const Field& field, DatabasePool& pool) {
  std::optional<Field> min_field;
  w.map(field, {
      {"max_per_endpoint",
       [&](const Field& f) {
         if (auto n = w.integer(f, 1, 1000)) pool.max_per_endpoint = static_cast<unsigned>(*n);
       }},
      {"acquire_timeout", w.into(pool.acquire_timeout)},
      {"statement_timeout", w.into(pool.statement_timeout)},
      {"connect_timeout", w.into(pool.connect_timeout)},
      {"max_pipeline",
       [&](const Field& f) {
         if (auto n = w.integer(f, 1, 1024)) pool.max_pipeline = static_cast<unsigned>(*n);
       }},
      {"max_waiting",
       [&](const Field& f) {
         if (auto n = w.integer(f, 1, 100000)) pool.max_waiting = static_cast<unsigned>(*n);
       }},
      {"min_per_endpoint",
       [&](const Field& f) {
         if (auto n = w.integer(f, 0, 1000)) pool.min_per_endpoint = static_cast<unsigned>(*n), min_field = f;
       }},
      {"idle_timeout", w.into(pool.idle_timeout)},
      {"max_lifetime", w.into(pool.max_lifetime)},
      {"health_interval", w.into(pool.health_interval)},
  });
  if (min_field && pool.min_per_endpoint > pool.max_per_endpoint)
    w.fail(*min_field, "must not be greater than max_per_endpoint (" + std::to_string(pool.max_per_endpoint) + ")");
}

std::optional<std::string> read_dsn(Walker& w, const Field& f) {
  auto text = w.string(f);
  if (!text) return std::nullopt;
  if (std::string why = dsn_error(*text); !why.empty()) {
    w.fail(f, std::move(why));
    return std::nullopt;
  }
  return text;
}

void read_shard(Walker& w, const Field& item, ShardConfig& shard, bool& ok) {
  bool has_id = false, has_customers = false, has_primary = false;
  const std::size_t errors = w.error_count();
  const bool is_map = w.map(item, {
      {"id",
       [&](const Field& f) {
         has_id = true;
         if (auto n = w.integer(f, 0, 1000000)) shard.id = *n;
       }},
      {"customers",
       [&](const Field& f) {
         has_customers = true;
         if (!f.node.IsSequence() || f.node.size() != 2) return w.fail(f, "expected [lo, hi] (two customer ids)");
         std::optional<std::int64_t> lo, hi;
         std::size_t i = 0;
         w.items(f, [&](const Field& v) {
           (i++ == 0 ? lo : hi) = w.integer(v, 0, std::numeric_limits<std::int64_t>::max());
         });
         if (lo && hi && *lo > *hi) return w.fail(f, "lo must not be greater than hi");
         if (lo && hi) shard.lo = *lo, shard.hi = *hi;
       }},
      {"primary",
       [&](const Field& f) {
         has_primary = true;
         if (auto d = read_dsn(w, f)) shard.primary = *d;
       }},
      {"replicas",
       [&](const Field& f) {
         w.items(f, [&](const Field& r) {
           ReplicaConfig rep;
           if (r.node.IsMap()) {
             bool has_dsn = false;
             w.map(r, {
                 {"dsn",
                  [&](const Field& v) {
                    has_dsn = true;
                    if (auto d = read_dsn(w, v)) rep.dsn = *d;
                  }},
                 {"region", [&](const Field& v) { if (auto l = w.label(v)) rep.region = *l; }},
             });
             if (!has_dsn) w.fail(r.at, join(r.path, "dsn"), "is required");
           } else if (auto d = read_dsn(w, r)) {
             rep.dsn = *d;
           }
           if (!rep.dsn.empty()) shard.replicas.push_back(std::move(rep));
         });
       }},
      {"region", [&](const Field& f) { if (auto l = w.label(f)) shard.region = *l; }},
  });
  if (!is_map) {
    ok = false;
    return;
  }
  if (!has_id) w.fail(item.at, join(item.path, "id"), "is required");
  if (!has_customers) w.fail(item.at, join(item.path, "customers"), "is required");
  if (!has_primary) w.fail(item.at, join(item.path, "primary"), "is required");
  ok = w.error_count() == errors;
}

// "total_cents desc, id" → keys.
bool parse_order_by(std::string_view text, std::vector<SortKey>& keys, std::string& why) {
  while (!text.empty()) {
    const std::size_t comma = text.find(',');
    std::string_view part = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    const std::size_t space = part.find(' ');
    SortKey k;
    k.column = std::string(part.substr(0, space));
    std::string dir = space == std::string_view::npos ? "" : lower(part.substr(space + 1));
    while (!dir.empty() && dir.front() == ' ') dir.erase(0, 1);
    if (!is_param_name(k.column)) {
      why = "expected \"column [asc|desc], …\" (columns are [a-z_][a-z0-9_]*)";
      return false;
    }
    if (dir == "desc") k.descending = true;
    else if (!dir.empty() && dir != "asc") {
      why = "unknown direction " + quoted(dir) + " (expected asc or desc)";
      return false;
    }
    keys.push_back(std::move(k));
  }
  if (keys.empty()) why = "must name at least one column";
  return !keys.empty();
}

void read_fan_out(Walker& w, const Field& field, FanOut& fo, std::size_t max_rows_limit) {
  std::optional<Field> order_by, limit, offset, aggregates, group_by;
  std::optional<std::size_t> merge;
  w.map(field, {
      {"merge", [&](const Field& f) { merge = w.choice(f, kMerges); }},
      {"order_by", [&](const Field& f) { order_by = f; }},
      {"limit", [&](const Field& f) { limit = f; }},
      {"offset", [&](const Field& f) { offset = f; }},
      {"aggregates", [&](const Field& f) { aggregates = f; }},
      {"group_by", [&](const Field& f) { group_by = f; }},
      {"partial", w.into(fo.partial)},
  });
  if (merge) fo.merge = static_cast<Merge>(*merge);
  const auto only = [&](const std::optional<Field>& f, Merge m, const char* name) {
    if (f && fo.merge != m) w.fail(*f, std::string("only with merge: ") + name);
    return f && fo.merge == m;
  };
  if (only(order_by, Merge::sorted, "sorted")) {
    if (auto text = w.string(*order_by)) {
      std::string why;
      if (!parse_order_by(*text, fo.order_by, why)) w.fail(*order_by, why);
    }
  } else if (fo.merge == Merge::sorted) {
    w.fail(field, "merge: sorted needs order_by");
  }
  if (only(limit, Merge::sorted, "sorted")) {
    if (auto n = w.integer(*limit, 1, static_cast<std::int64_t>(max_rows_limit))) fo.limit = *n;
  }
  if (only(offset, Merge::sorted, "sorted")) {
    if (auto name = w.string(*offset)) {
      if (!is_param_name(*name)) w.fail(*offset, "expected a query-string parameter name ([a-z_][a-z0-9_]*)");
      else if (!limit) w.fail(*offset, "needs limit");
      else fo.offset = *name;
    }
  }
  if (only(aggregates, Merge::aggregate, "aggregate")) {
    w.entries(*aggregates, [&](const Field& key, const Field& value) {
      Aggregate a;
      a.column = key.node.Scalar();
      if (!is_param_name(a.column)) return w.fail(key, "expected a column name ([a-z_][a-z0-9_]*)");
      if (value.node.IsMap()) {
        w.map(value, {{"avg", [&](const Field& f) {
                         if (!f.node.IsSequence() || f.node.size() != 2)
                           return w.fail(f, "expected [SUM_COLUMN, COUNT_COLUMN]");
                         a.fn = AggregateFn::avg;
                         a.sum_column = f.node[0].IsScalar() ? f.node[0].Scalar() : "";
                         a.count_column = f.node[1].IsScalar() ? f.node[1].Scalar() : "";
                         if (!is_param_name(a.sum_column) || !is_param_name(a.count_column))
                           w.fail(f, "expected two column names");
                       }}});
        if (a.fn != AggregateFn::avg) return w.fail(value, "expected count, sum, min, max or {avg: [SUM, COUNT]}");
      } else if (auto i = w.choice(value, kSimpleAggregates)) {
        a.fn = static_cast<AggregateFn>(*i);
      } else {
        return;
      }
      fo.aggregates.push_back(std::move(a));
    });
    if (fo.aggregates.empty()) w.fail(*aggregates, "expected at least one output column");
  } else if (fo.merge == Merge::aggregate) {
    w.fail(field, "merge: aggregate needs aggregates");
  }
  if (only(group_by, Merge::aggregate, "aggregate")) {
    w.items(*group_by, [&](const Field& f) {
      if (auto c = w.string(f)) {
        if (!is_param_name(*c)) return w.fail(f, "expected a column name ([a-z_][a-z0-9_]*)");
        fo.group_by.push_back(*c);
      }
    });
  }
}

// The path captures of a template (`{name}` / `{name:type}` segments).
std::vector<std::string> capture_names(const RouteMatch& match) {
  std::vector<std::string> names;
  if (match.kind != PathKind::template_) return names;
  std::size_t i = 0;
  while ((i = match.path.find('{', i)) != std::string::npos) {
    const std::size_t close = match.path.find('}', i);
    std::string inner = match.path.substr(i + 1, close - i - 1);
    names.push_back(inner.substr(0, inner.find(':')));
    i = close;
  }
  return names;
}

// The highest $N in `sql` outside quotes, comments and dollar-quoted strings; `why` set for a second statement.
std::size_t max_placeholder(std::string_view sql, std::string& why) {
  std::size_t max = 0;
  for (std::size_t i = 0; i < sql.size(); ++i) {
    const char c = sql[i];
    if (c == '\'' || c == '"') {
      const std::size_t end = sql.find(c, i + 1);
      if (end == std::string_view::npos) break;
      i = end;
    } else if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      i = std::min(sql.find('\n', i), sql.size());
    } else if (c == '$' && i + 1 < sql.size() && is_digit(sql[i + 1])) {
      std::size_t n = 0, j = i + 1;
      while (j < sql.size() && is_digit(sql[j]) && n < 100000) n = n * 10 + static_cast<std::size_t>(sql[j++] - '0');
      max = std::max(max, n);
      i = j - 1;
    } else if (c == ';') {
      if (sql.find_first_not_of(" \t\r\n;", i) != std::string_view::npos)
        why = "one statement only (pipeline mode runs no multi-statement strings)";
    }
  }
  return max;
}

}  // namespace

void read_databases(Walker& w, const Field& field, Databases& db) {
  db.present = true;
  std::optional<Field> shards_field;
  w.map(field, {
      {"pool", [&](const Field& f) { read_pool(w, f, db.pool); }},
      {"shards", [&](const Field& f) { shards_field = f; }},
      {"max_lag", w.into(db.max_lag)},
      {"lag_interval", w.into(db.lag_interval)},
      {"version", [&](const Field& f) { if (auto n = w.integer(f, 0, std::numeric_limits<std::int64_t>::max())) db.version = *n; }},
  });
  if (!shards_field) return w.fail(field, "shards: at least one shard is required");
  struct Read {
    ShardConfig shard;
    Field field;
    bool ok;
  };
  std::vector<Read> read;
  Unique ids("shard id");
  w.items(*shards_field, [&](const Field& item) {
    Read r{ShardConfig{}, item, false};
    r.shard.location = item.at;
    read_shard(w, item, r.shard, r.ok);
    if (r.ok) ids.check(w, Field{item.node["id"], join(item.path, "id"), item.at}, std::to_string(r.shard.id));
    read.push_back(std::move(r));
  });
  if (read.empty()) return w.fail(*shards_field, "at least one shard is required");
  if (std::any_of(read.begin(), read.end(), [](const Read& r) { return !r.ok; })) return;
  std::stable_sort(read.begin(), read.end(), [](const Read& a, const Read& b) { return a.shard.lo < b.shard.lo; });
  for (std::size_t i = 1; i < read.size(); ++i) {
    const ShardConfig& a = read[i - 1].shard;
    const ShardConfig& b = read[i].shard;
    const std::string names = "shard " + std::to_string(b.id) + " (line " + std::to_string(b.location.line) +
                              ") and shard " + std::to_string(a.id) + " (line " + std::to_string(a.location.line) + ")";
    if (b.lo <= a.hi) {
      w.fail(read[i].field.at, join(read[i].field.path, "customers"),
             "customer ranges overlap: " + names + " both hold " + std::to_string(b.lo) + ".." +
                 std::to_string(std::min(a.hi, b.hi)));
    } else if (b.lo != a.hi + 1) {
      w.fail(read[i].field.at, join(read[i].field.path, "customers"),
             "gap in the customer ranges between " + names + ": " + std::to_string(a.hi + 1) + ".." +
                 std::to_string(b.lo - 1) + " belong to no shard");
    }
  }
  for (Read& r : read) db.shards.push_back(std::move(r.shard));
}

void read_route_query(Walker& w, const std::optional<Field>& query, const std::optional<Field>& invalidate,
                      bool match_ok, Route& route) {
  if (invalidate && !query) w.fail(*invalidate, "only allowed with query");
  if (!query) return;
  RouteQuery& q = route.query.emplace();
  q.location = query->at;
  const std::vector<std::string> captures = capture_names(route.match);
  std::optional<Field> sql, params, shard_by, fan_out;
  bool has_sql = false;
  w.map(*query, {
      {"sql",
       [&](const Field& f) {
         has_sql = true;
         sql = f;
       }},
      {"params", [&](const Field& f) { params = f; }},
      {"shard_by", [&](const Field& f) { shard_by = f; }},
      {"fan_out", [&](const Field& f) { fan_out = f; }},
      {"read_only", [&](const Field& f) { if (auto b = w.boolean(f)) q.read_only = *b; }},
      {"max_rows", [&](const Field& f) { if (auto n = w.integer(f, 1, 1000000)) q.max_rows = static_cast<std::size_t>(*n); }},
  });
  if (!has_sql) w.fail(query->at, join(query->path, "sql"), "is required");
  const std::size_t errors_before_params = w.error_count();
  if (params) {
    w.items(*params, [&](const Field& f) {
      const auto text = w.string(f);
      if (!text) return;
      if (q.params.size() >= kMaxParams) return w.fail(f, "too many parameters (at most 64)");
      QueryParam p;
      p.spec = *text;
      const std::size_t colon = text->rfind(':');
      if (colon == std::string::npos) return w.fail(f, "expected \"NAME:TYPE\" (types: int64, text, bool, timestamp, numeric)");
      std::string name = text->substr(0, colon);
      const std::string type = text->substr(colon + 1);
      const auto t = std::find(kTypes.begin(), kTypes.end(), type);
      if (t == kTypes.end()) return w.fail(f, "unknown type " + quoted(type) + " (expected int64, text, bool, timestamp or numeric)");
      p.type = static_cast<QueryParamType>(t - kTypes.begin());
      if (name.starts_with("body.")) {
        p.source = QueryParamSource::body;
        name.erase(0, 5);
        std::string_view rest = name;
        bool good = !rest.empty();
        while (good && !rest.empty()) {
          const std::size_t dot = rest.find('.');
          good = is_param_name(rest.substr(0, dot)) || all_of(rest.substr(0, dot), [](char c) {
                   return is_alpha(c) || is_digit(c) || c == '_' || c == '-';
                 });
          rest = dot == std::string_view::npos ? std::string_view() : rest.substr(dot + 1);
        }
        if (!good) return w.fail(f, "expected body.NAME[.NAME…] (letters, digits, _ and -)");
      } else if (name.starts_with("query.")) {
        p.source = QueryParamSource::query;
        name.erase(0, 6);
        if (!is_param_name(name)) return w.fail(f, "expected query.NAME ([a-z_][a-z0-9_]*)");
      } else if (name == "fan_out.fetch") {
        p.source = QueryParamSource::fetch;
        if (p.type != QueryParamType::int64) return w.fail(f, "fan_out.fetch is an int64");
      } else {
        if (!is_param_name(name)) return w.fail(f, "bad parameter name " + quoted(name) + " (expected [a-z_][a-z0-9_]*, body.NAME or query.NAME)");
        p.source = std::find(captures.begin(), captures.end(), name) != captures.end() ? QueryParamSource::path
                                                                                        : QueryParamSource::query;
      }
      p.name = std::move(name);
      q.params.push_back(std::move(p));
    });
  }
  const bool params_ok = w.error_count() == errors_before_params;  // else the checks below would only echo it
  if (sql) {
    if (auto text = w.string(*sql)) {
      std::string why;
      const std::size_t max = max_placeholder(*text, why);
      if (text->find_first_not_of(" \t\r\n") == std::string::npos) w.fail(*sql, "must not be empty");
      else if (!why.empty()) w.fail(*sql, why);
      else if (text->find('\0') != std::string::npos) w.fail(*sql, "must not contain NUL");
      else if (!params_ok) {}
      else if (params && max != q.params.size())
        w.fail(*sql, "uses $1..$" + std::to_string(max) + " but params lists " + std::to_string(q.params.size()));
      else if (!params && max > 0) w.fail(*sql, "uses $" + std::to_string(max) + " but no params are listed");
      q.sql = *text;
    }
  }
  if (shard_by && params_ok) {
    if (auto name = w.string(*shard_by)) {
      const auto it = std::find_if(q.params.begin(), q.params.end(), [&](const QueryParam& p) {
        return p.name == *name && p.source != QueryParamSource::body;
      });
      const auto body_it = std::find_if(q.params.begin(), q.params.end(), [&](const QueryParam& p) { return p.name == *name; });
      const auto found = it != q.params.end() ? it : body_it;
      if (found == q.params.end()) w.fail(*shard_by, "names no parameter of params");
      else if (found->type != QueryParamType::int64) w.fail(*shard_by, "the shard key must be an int64 parameter");
      else q.shard_by = static_cast<std::size_t>(found - q.params.begin());
    }
  }
  // Reads: GET/HEAD-only routes unless read_only says otherwise.
  const auto& m = route.match.methods;
  const bool get_only = !m.empty() && std::all_of(m.begin(), m.end(), [](const std::string& s) { return s == "GET" || s == "HEAD"; });
  if (!q.read_only) q.read_only = get_only;
  if (fan_out && shard_by) w.fail(*fan_out, "fan_out and shard_by are mutually exclusive");
  if (fan_out) read_fan_out(w, *fan_out, q.fan_out, q.max_rows);
  // A write goes to one primary: a route without shard_by that may write would write to every shard.
  if (!shard_by && !q.reads()) {
    w.fail(*query, "a write (a route not read_only, or not GET/HEAD-only) needs shard_by: it must go to one shard");
  }
  for (const QueryParam& p : q.params) {
    if (p.source == QueryParamSource::fetch && (q.shard_by || q.fan_out.merge != Merge::sorted || !q.fan_out.limit))
      w.fail(*params, "fan_out.fetch needs fan_out: {merge: sorted, limit: N}");
    if (p.source == QueryParamSource::path && !match_ok) break;
  }
  if (invalidate) {
    if (q.reads()) w.fail(*invalidate, "only on routes that write (read_only: false)");
    w.items(*invalidate, [&](const Field& f) {
      const auto text = w.string(f);
      if (!text) return;
      const bool known = text->starts_with("tag:") || text->starts_with("path:") || text->starts_with("prefix:");
      if (!known) return w.fail(f, "expected \"tag:T\", \"path:/p\" or \"prefix:/p\"");
      const std::string value = text->substr(text->find(':') + 1);
      if (value.empty() || has_control_char(value) || value.find(' ') != std::string::npos)
        return w.fail(f, "must name a tag or path without spaces or control characters");
      if (!text->starts_with("tag:") && value.front() != '/') return w.fail(f, "a path must start with \"/\"");
      for (std::size_t i = value.find('{'); i != std::string::npos; i = value.find('{', i + 1)) {
        const std::size_t close = value.find('}', i);
        if (close == std::string::npos) return w.fail(f, "unbalanced braces");
        const std::string name = value.substr(i + 1, close - i - 1);
        if (match_ok && std::find(captures.begin(), captures.end(), name) == captures.end())
          return w.fail(f, "{" + name + "} is no capture of match.path");
      }
      route.invalidate.push_back(*text);
    });
  }
}

void check_query_routes(Walker& w, const Config& config, const std::vector<Field>& query_fields) {
  if (config.databases.present) return;
  for (const Field& f : query_fields) w.fail(f, "a query route needs a databases: section");
}

}  // namespace virex::config::detail
