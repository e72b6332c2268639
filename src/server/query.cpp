// A query route's request (see connection.hpp): parameters from path captures, the query string or the JSON
// body, each checked against its declared type (400 naming it) and sent as a bound parameter; one shard by
// `shard_by` (404 outside the shard map) or every shard in parallel with the route's merge; the rows as JSON
// (201 for a write). A cacheable GET miss joins the key's coalesced flight (one statement for concurrent misses),
// asks the regional tier first when the route has regional_ttl, and stores its answer in the edge cache and the
// region; a write's `invalidate:` list is purged after commit here, in Redis and on every other node.
// The protocol-neutral steps (query.hpp) serve HTTP/2 too; Connection::query() is the HTTP/1.1 exchange. Runs on the
// worker thread.
#include "query.hpp"

#include "connection.hpp"
#include "shard_metrics.hpp"

#include <virex/http/text.hpp>
#include <virex/shard/client.hpp>
#include <virex/shard/merge.hpp>
#include <virex/shard/params.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <boost/url/parse_query.hpp>

#include <spdlog/spdlog.h>

#include <charconv>

namespace virex::server {
namespace {

constexpr std::string_view kJson = "application/json";
constexpr std::string_view kProtobuf = "application/x-protobuf";

// `{name}` in `tpl` replaced by the capture of that name.
std::string expand(std::string_view tpl, const std::vector<std::pair<std::string, std::string>>& captures) {
  std::string out;
  http::expand_template(out, tpl, [&](std::string_view name) {
    for (const auto& [n, v] : captures)
      if (n == name) out.append(v);
  });
  return out;
}

std::string error_body(std::string_view error, std::string_view detail, std::string_view parameter = {}) {
  std::string b = "{\"error\":";
  shard::append_json_string(b, error);
  if (!parameter.empty()) {
    b.append(",\"parameter\":");
    shard::append_json_string(b, parameter);
  }
  if (!detail.empty()) {
    b.append(",\"detail\":");
    shard::append_json_string(b, detail);
  }
  b.append("}\n");
  return b;
}

// A JSON body member as parameter text (numbers and booleans as written; strings as they are). Null or
// missing: nullopt. Nested: "a.b" walks objects.
std::optional<std::string> json_member(const boost::json::value& root, std::string_view path, bool& wrong_type) {
  const boost::json::value* v = &root;
  while (!path.empty()) {
    const auto dot = path.find('.');
    const std::string_view key = path.substr(0, dot);
    const auto* obj = v->if_object();
    if (!obj) return std::nullopt;
    const auto it = obj->find(key);
    if (it == obj->end()) return std::nullopt;
    v = &it->value();
    path = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
  }
  switch (v->kind()) {
    case boost::json::kind::null: return std::nullopt;
    case boost::json::kind::bool_: return std::string(v->get_bool() ? "true" : "false");
    case boost::json::kind::int64: return std::to_string(v->get_int64());
    case boost::json::kind::uint64: return std::to_string(v->get_uint64());
    case boost::json::kind::double_: {
      char buf[32];
      const auto r = std::to_chars(buf, buf + sizeof buf, v->get_double());
      return std::string(buf, r.ptr);
    }
    case boost::json::kind::string: return std::string(v->get_string());
    default: wrong_type = true; return std::nullopt;
  }
}

unsigned status_of(shard::QueryErrc e, std::string_view sqlstate) {
  using E = shard::QueryErrc;
  switch (e) {
    case E::none: return 200;
    case E::unavailable:
    case E::pool_timeout:
    case E::overloaded:
    case E::connection_lost: return 503;
    case E::timeout: return 504;
    case E::too_many_rows: return 500;
    case E::sql_error:
      if (sqlstate.starts_with("23")) return 409;  // integrity constraint violation
      if (sqlstate.starts_with("22")) return 400;  // data exception (a value the column refuses)
      if (sqlstate == "40001" || sqlstate == "40P01" || sqlstate.starts_with("57") || sqlstate.starts_with("08"))
        return 503;
      return 500;
  }
  return 500;
}

// sqlcommenter (google.github.io/sqlcommenter): /*traceparent='00-<trace id>-<span id>-<flags>'*/.
std::string sql_comment(const char* trace_id, const std::array<std::uint8_t, 8>& span, std::uint8_t flags) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string c = "/*traceparent='00-";
  c.append(trace_id, 32).push_back('-');
  for (std::uint8_t b : span) c.push_back(kHex[b >> 4]), c.push_back(kHex[b & 15]);
  c.push_back('-');
  c.push_back(kHex[flags >> 4]);
  c.push_back(kHex[flags & 15]);
  c.append("'*/");
  return c;
}

}  // namespace

void Connection::capture_query_args(const http::RequestHead& h, const pipeline::Match& m) {
  q_captures_.clear();
  for (std::size_t i = 0; i < m.ncaptures; ++i) q_captures_.emplace_back(m.captures[i].name, m.captures[i].value);
  q_query_.assign(h.query);
  q_host_.assign(h.host);
  for (char& c : q_host_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  q_path_.assign(h.path);
  q_accept_.assign(h.header("Accept").substr(0, 256));
  q_body_.clear();
  q_body_too_large_ = false;
}

void Connection::queue_query_response(unsigned status, std::string_view body, std::string_view extra,
                                      std::string_view error, std::string_view content_type) {
  const bool head_only = pending_.method == http::Method::head;
  std::string headers(extra);
  headers.append(trace_line_);
  const std::size_t from = scratch_.size();
  http::append_body_response(scratch_, status, content_type.empty() ? kJson : content_type, body,
                             worker_.date_line(), connection_header(), head_only, headers);
  add_scratch(from);
  finish_request(status, scratch_.size() - from, head_only ? 0 : body.size(), error);
}

std::chrono::steady_clock::duration query_bound(const config::DatabasePool& pool) {
  return 2 * (pool.acquire_timeout + pool.statement_timeout + pool.connect_timeout) + std::chrono::seconds(5);
}

bool plan_query(const QueryRequest& in, QueryPlan& plan, QueryResponse& out) {
  const config::RouteQuery& q = *in.route->query;
  const auto refuse = [&](unsigned status, std::string body, std::string_view error) {
    out.status = status;
    out.body = std::move(body);
    out.error = error;
    out.content_type = kJson;
    return false;
  };
  if (in.body_too_large)
    return refuse(413, error_body("body_too_large", "a query route's body is at most 256 KiB"), "body_too_large");
  plan.values.assign(q.params.size(), {});
  std::optional<boost::urls::params_encoded_view> query_params;
  if (auto r = boost::urls::parse_query(in.query)) query_params = *r;
  boost::json::value body;
  bool body_parsed = false;
  const auto query_param = [&](std::string_view name) -> std::optional<std::string> {
    if (!query_params) return std::nullopt;
    for (const auto& qp : *query_params) {
      if (qp.key.decode() == name && qp.has_value) return qp.value.decode();
    }
    return std::nullopt;
  };
  if (!q.fan_out.offset.empty() && !q.shard_by) {
    if (auto text = query_param(q.fan_out.offset)) {
      std::string why;
      const auto v = shard::normalize_param(config::QueryParamType::int64, *text, why);
      plan.offset = v ? std::stoll(*v) : -1;
      if (!v || plan.offset < 0 || static_cast<std::size_t>(plan.offset) > q.max_rows)
        return refuse(400, error_body("bad_parameter", "expected an integer from 0 to max_rows", q.fan_out.offset),
                      "bad_parameter");
    }
  }
  for (std::size_t i = 0; i < q.params.size(); ++i) {
    const config::QueryParam& param = q.params[i];
    std::optional<std::string> raw;
    bool wrong_type = false;
    switch (param.source) {
      case config::QueryParamSource::path:
        for (const auto& [n, v] : in.captures) {
          if (n == param.name) {
            // Captures are percent-encoded path segments.
            auto decoded = boost::urls::make_pct_string_view(v);
            raw = decoded ? decoded->decode() : v;
          }
        }
        break;
      case config::QueryParamSource::query: raw = query_param(param.name); break;
      case config::QueryParamSource::fetch: raw = std::to_string(*q.fan_out.limit + plan.offset); break;
      case config::QueryParamSource::body: {
        if (!body_parsed) {
          boost::system::error_code ec;
          body = boost::json::parse(in.body, ec);
          if (ec || !body.is_object()) return refuse(400, error_body("bad_body", "expected a JSON object"), "bad_body");
          body_parsed = true;
        }
        raw = json_member(body, param.name, wrong_type);
        break;
      }
    }
    const std::string shown = param.source == config::QueryParamSource::body ? "body." + param.name : param.name;
    if (!raw)
      return refuse(400, error_body("bad_parameter", wrong_type ? "expected a scalar value" : "missing", shown),
                    "bad_parameter");
    std::string why;
    auto v = shard::normalize_param(param.type, *raw, why);
    if (!v) return refuse(400, error_body("bad_parameter", why, shown), "bad_parameter");
    plan.values[i] = std::move(*v);
  }
  return true;
}

Awaitable<bool> run_query(Worker& worker, const QueryRequest& in, QueryPlan plan, shard::ResultSet& rows,
                          std::string& missing, QueryResponse& out) {
  const pipeline::CompiledRoute& route = *in.route;
  const config::RouteQuery& q = *route.query;
  const auto snapshot = in.snapshot;  // the route and its config stay alive while this runs
  shard::Databases* db = worker.databases();
  const auto fail = [&](unsigned status, std::string body, std::string_view error, std::string extra = {}) {
    out.status = status;
    out.body = std::move(body);
    out.error = error;
    out.extra = std::move(extra);
    out.content_type = kJson;
    return false;
  };
  out.shards.clear();
  if (!db) co_return fail(503, error_body("unavailable", "no databases configured"), "no_databases");  // (the loader
                                                                                                       // requires it)
  const bool read = q.reads();
  // Tracing: one client span per shard statement; a sampled trace's statements carry its traceparent.
  const std::size_t nshards = q.shard_by ? 1 : db->shard_count();
  std::vector<std::string> comments;
  if (in.spans) {
    in.spans->resize(nshards);
    for (auto& span : *in.spans) {
      span.span_id = worker.new_trace().parent_id;
      if (in.sampled) comments.push_back(sql_comment(in.trace_id, span.span_id, in.trace_flags));
    }
  }
  const auto record_span = [&](std::size_t i, std::int64_t shard_id, const shard::QueryOutcome& o) {
    if (!out.shards.empty()) out.shards.push_back(',');
    out.shards.append(std::to_string(shard_id)).append(o.role == shard::Role::replica ? ":replica" : ":primary");
    if (!in.spans || i >= in.spans->size()) return;
    auto& span = (*in.spans)[i];
    span.start_ns = o.start_unix_ns;
    span.end_ns = o.end_unix_ns;
    span.shard = shard_id;
    span.replica = o.role == shard::Role::replica;
    span.endpoint = o.endpoint;
    span.error = o.error == shard::QueryErrc::none ? std::string_view() : shard::to_string(o.error);
  };
  if (q.shard_by) {
    const std::int64_t key = std::stoll(plan.values[*q.shard_by]);
    const auto shard = shard::shard_of(snapshot->config.databases, key);
    if (!shard)
      co_return fail(404, error_body("not_found", "customer " + std::to_string(key) + " is in no shard"), "no_shard");
    // (A local, not a conditional temporary in the co_await: GCC 12 destroys such a temporary twice.)
    std::string comment = comments.empty() ? std::string() : std::move(comments.front());
    shard::QueryOutcome o = co_await db->query(*shard, read, q.sql, std::move(plan.values), q.max_rows, std::move(comment));
    record_span(0, snapshot->config.databases.shards[*shard].id, o);
    if (o.error != shard::QueryErrc::none) {
      const unsigned status = status_of(o.error, o.sqlstate);
      std::string extra = "Proxy-Status: virex-edge; error=";
      extra.append(status == 503 ? "destination_unavailable" : status == 504 ? "connection_timeout" : "proxy_internal_error");
      extra.append("\r\n");
      spdlog::debug("route {}: shard {}: {}: {}", route.name, snapshot->config.databases.shards[*shard].id,
                    shard::to_string(o.error), o.message);
      co_return fail(status, error_body(shard::to_string(o.error), o.message), shard::to_string(o.error),
                     status >= 500 ? std::move(extra) : std::string());
    }
    rows = std::move(o.rows);
    co_return true;
  }
  std::vector<shard::QueryOutcome> outs = co_await db->query_all(read, q.sql, std::move(plan.values), q.max_rows,
                                                                 std::move(comments));
  for (std::size_t i = 0; i < outs.size(); ++i) record_span(i, snapshot->config.databases.shards[i].id, outs[i]);
  std::vector<shard::ResultSet> parts;
  const shard::QueryOutcome* first_error = nullptr;
  for (std::size_t i = 0; i < outs.size(); ++i) {
    if (outs[i].error == shard::QueryErrc::none) {
      parts.push_back(std::move(outs[i].rows));
      continue;
    }
    if (!first_error) first_error = &outs[i];
    if (!missing.empty()) missing.append(",");
    missing.append(std::to_string(snapshot->config.databases.shards[i].id));
  }
  worker.shard_metrics().on_fan_out(route.name, outs.size(), first_error && q.fan_out.partial);
  if (first_error && !q.fan_out.partial) {
    const unsigned status = status_of(first_error->error, first_error->sqlstate);
    co_return fail(status >= 500 ? status : 502, error_body(shard::to_string(first_error->error), first_error->message),
                   "shard_failed", "Virex-Missing-Shards: " + missing + "\r\n");
  }
  std::string why;
  if (!shard::merge(parts, q.fan_out, plan.offset, q.max_rows, rows, why))
    co_return fail(500, error_body("merge_failed", why), "merge_failed");
  co_return true;
}

std::vector<std::pair<std::string, std::string>> query_invalidations(const QueryRequest& in) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const std::string& item : in.route->config->invalidate) {
    const std::size_t colon = item.find(':');
    out.emplace_back(item.substr(0, colon), expand(std::string_view(item).substr(colon + 1), in.captures));
  }
  return out;
}

void purge_edge(cache::Store& store, std::string_view kind, const std::string& value) {
  if (kind == "tag") store.purge_tag(value, false);
  else if (kind == "path") store.purge_path({}, value, false);
  else store.purge_prefix({}, value, false);
}

void encode_rows(const QueryRequest& in, const shard::ResultSet& rows, bool read, const std::string& missing,
                 QueryResponse& out) {
  // Accept: application/x-protobuf → virex.query.v1.Result (proto/virex/query/v1/result.proto); else JSON.
  const bool protobuf = in.accept.find("application/x-protobuf") != std::string::npos;
  out.content_type = protobuf ? kProtobuf : kJson;
  out.body.clear();
  if (protobuf) {
    shard::append_protobuf(out.body, rows);
  } else {
    shard::append_json(out.body, rows);
    out.body.push_back('\n');
  }
  out.status = read ? 200 : 201;
  out.error = {};
  if (!missing.empty()) out.extra.append("Virex-Missing-Shards: ").append(missing).append("\r\n");
  if (in.route->cache) out.extra.append("Vary: Accept\r\n");  // JSON and protobuf answers are separate variants
}

std::shared_ptr<cache::Entry> query_entry(const QueryRequest& in, const QueryResponse& out, std::string cache_key,
                                          std::string variant_key) {
  const pipeline::CompiledRoute& route = *in.route;
  auto e = std::make_shared<cache::Entry>();
  e->key = std::move(cache_key);
  e->host = in.host;
  e->path = in.path;
  e->status = 200;
  e->stored_at = std::chrono::steady_clock::now();
  // The edge lifetime (of a regional copy too: a node filling its edge from it caps this by what it has left);
  // only a private route may have none (the loader requires edge_ttl otherwise), and it never reaches the edge.
  e->ttl = static_cast<std::uint32_t>(route.cache_policy.edge_ttl ? route.cache_policy.edge_ttl->count() : 0);
  e->head = "HTTP/1.1 200 OK\r\nContent-Type: " + std::string(out.content_type) + "\r\nVary: Accept\r\nContent-Length: " +
            std::to_string(out.body.size()) + "\r\n";
  e->vary = {"accept"};
  e->variant_key = std::move(variant_key);
  e->body = out.body;
  for (const std::string& tag : route.cache->tags) e->tags.push_back(expand(tag, in.captures));
  return e;
}

Awaitable<void> Connection::query() {
  query_pending_ = false;
  Pending& p = pending_;
  const pipeline::CompiledRoute& route = *p.route;
  // A cacheable miss that leads its key's flight ends it with this request, whatever the answer (a 4xx or 5xx
  // stores nothing: the waiters then run the statement themselves).
  FlightGuard flight(*this);
  QueryRequest in;
  in.snapshot = snapshot_;
  in.route = p.route;
  in.captures = std::move(q_captures_);
  in.query = std::move(q_query_);
  in.host = std::move(q_host_);
  in.path = std::move(q_path_);
  in.accept = std::move(q_accept_);
  in.body = std::move(q_body_);
  in.body_too_large = q_body_too_large_;
  in.sampled = p.has_trace && (p.head_sampled || (p.trace.flags & 1));
  if (p.has_trace && (worker_.tracing() || in.sampled)) {
    in.spans = &p.db_spans;
    in.trace_id = p.trace_id;
    in.trace_flags = static_cast<std::uint8_t>(p.trace.flags | 1);
  }
  QueryResponse out;
  const auto answer = [&] {
    p.shards = std::move(out.shards);
    queue_query_response(out.status, out.body, out.extra, out.error, out.content_type);
    parser_.next();
    set_deadline(Phase::idle);
  };
  QueryPlan plan;
  if (!plan_query(in, plan, out)) co_return answer();
  // ---- coalescing and the regional tier (as for an origin fetch: proxy.cpp) ----
  // The request head is intact here: a cacheable request has no body, and process() kept the buffer in place.
  if (p.follower) {
    if (co_await follow_flight()) co_return;  // answered from the entry the leader stored
    flight.take();  // nothing was stored: this request runs the statement, leading a new flight if it joined one
  }
  if (p.regional == Pending::Regional::lookup) {
    if (co_await regional_lookup()) co_return;  // the region's copy, now in the edge cache too
  }
  // ---- run ----
  phase_ = Phase::proxy;  // the pools bound the wait; keep the client deadlines out of it
  deadline_ = worker_.coarse_now() + query_bound(snapshot_->config.databases.pool);
  shard::ResultSet rows;
  std::string missing;  // partial fan-out: the shards that did not answer
  if (!co_await run_query(worker_, in, std::move(plan), rows, missing, out)) co_return answer();
  // ---- answer ----
  const bool read = route.query->reads();
  if (!read) {
    // After commit (the statement's implicit transaction ended with its Sync): purge what the route names, in
    // this node's edge cache and, like the admin purge API, in Redis and (published) on every other node. The
    // answer waits for Redis (at most its command timeout): a read after it finds no stale regional copy.
    for (auto& [kind, value] : query_invalidations(in)) {
      if (cache::Store* store = worker_.edge_cache()) purge_edge(*store, kind, value);
      if (!worker_.regional()) continue;
      const std::string shown = kind + ":" + value;
      const bool confirmed = co_await regional_purge_confirmed(std::move(kind), std::move(value));
      if (!confirmed) spdlog::debug("route {}: invalidate {}: not confirmed by the regional tier", route.name, shown);
    }
  }
  encode_rows(in, rows, read, missing, out);
  if (p.invalidate) invalidate_target(out.status);  // RFC 9111 §4.4: an unsafe request through a caching route
  // A complete answer to a cacheable GET is stored: at the edge for edge_ttl (never a private route's), and in
  // the region when the lookup there missed (a private route's under the user's key, its only tier).
  const bool storable = p.cacheable && route.cache && missing.empty();
  const bool edge_store = storable && !p.regional_private && route.cache_policy.edge_ttl && worker_.edge_cache() &&
                          out.body.size() <= worker_.edge_cache_max_object();
  const bool region_store = storable && p.regional != Pending::Regional::none && p.regional != Pending::Regional::hit;
  if (route.cache) {
    cache::CacheStatus cs;
    cs.fwd = p.fwd;
    cs.stored = edge_store;
    if (edge_store) cs.ttl = route.cache_policy.edge_ttl->count();
    append_cache_status(out.extra, cs);  // the regional member first, when the route has one
  }
  if (edge_store || region_store) {
    // The variant key from the Accept this request sent, as the lookup computes it (the head is intact: above).
    const std::array<http::Header, 1> vary = {http::Header{"Vary", "accept"}};
    std::string variant;
    cache::vary_key(variant, parser_.head(), vary);
    auto e = query_entry(in, out, cache_key_, std::move(variant));
    if (region_store) regional_store(e);  // posted: written after this answer
    if (edge_store) worker_.edge_cache()->insert(std::move(e), cache_hash_);
  }
  answer();
}

}  // namespace virex::server
