// A query route's request (see connection.hpp): parameters from path captures, the query string or the JSON
// body, each checked against its declared type (400 naming it) and sent as a bound parameter; one shard by
// `shard_by` (404 outside the shard map) or every shard in parallel with the route's merge; the rows as JSON
// (201 for a write). A cacheable GET miss joins the key's coalesced flight (one statement for concurrent misses),
// asks the regional tier first when the route has regional_ttl, and stores its answer in the edge cache and the
// region; a write's `invalidate:` list is purged after commit here, in Redis and on every other node.
// Runs on the connection's worker thread, inside its coroutine.
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
std::string sql_comment(const char (&trace_id)[32], const std::array<std::uint8_t, 8>& span, std::uint8_t flags) {
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

Awaitable<void> Connection::query() {
  query_pending_ = false;
  Pending& p = pending_;
  const pipeline::CompiledRoute& route = *p.route;
  const config::RouteQuery& q = *route.query;
  const auto snapshot = snapshot_;  // the route and its config stay alive while this runs
  shard::Databases* db = worker_.databases();
  const auto done = [&] {
    parser_.next();
    set_deadline(Phase::idle);
  };
  // A cacheable miss that leads its key's flight ends it with this request, whatever the answer (a 4xx or 5xx
  // stores nothing: the waiters then run the statement themselves).
  FlightGuard flight(*this);
  if (q_body_too_large_) {
    queue_query_response(413, error_body("body_too_large", "a query route's body is at most 256 KiB"), {}, "body_too_large");
    co_return done();
  }
  // ---- parameters ----
  std::vector<std::string> values(q.params.size());
  std::optional<boost::urls::params_encoded_view> query_params;
  if (auto r = boost::urls::parse_query(q_query_)) query_params = *r;
  boost::json::value body;
  bool body_parsed = false;
  const auto query_param = [&](std::string_view name) -> std::optional<std::string> {
    if (!query_params) return std::nullopt;
    for (const auto& qp : *query_params) {
      if (qp.key.decode() == name && qp.has_value) return qp.value.decode();
    }
    return std::nullopt;
  };
  std::int64_t offset = 0;
  if (!q.fan_out.offset.empty() && !q.shard_by) {
    if (auto text = query_param(q.fan_out.offset)) {
      std::string why;
      const auto v = shard::normalize_param(config::QueryParamType::int64, *text, why);
      offset = v ? std::stoll(*v) : -1;
      if (!v || offset < 0 || static_cast<std::size_t>(offset) > q.max_rows) {
        queue_query_response(400, error_body("bad_parameter", "expected an integer from 0 to max_rows", q.fan_out.offset),
                             {}, "bad_parameter");
        co_return done();
      }
    }
  }
  for (std::size_t i = 0; i < q.params.size(); ++i) {
    const config::QueryParam& param = q.params[i];
    std::optional<std::string> raw;
    bool wrong_type = false;
    switch (param.source) {
      case config::QueryParamSource::path:
        for (const auto& [n, v] : q_captures_) {
          if (n == param.name) {
            // Captures are percent-encoded path segments.
            auto decoded = boost::urls::make_pct_string_view(v);
            raw = decoded ? decoded->decode() : v;
          }
        }
        break;
      case config::QueryParamSource::query: raw = query_param(param.name); break;
      case config::QueryParamSource::fetch: raw = std::to_string(*q.fan_out.limit + offset); break;
      case config::QueryParamSource::body: {
        if (!body_parsed) {
          boost::system::error_code ec;
          body = boost::json::parse(q_body_, ec);
          if (ec || !body.is_object()) {
            queue_query_response(400, error_body("bad_body", "expected a JSON object"), {}, "bad_body");
            co_return done();
          }
          body_parsed = true;
        }
        raw = json_member(body, param.name, wrong_type);
        break;
      }
    }
    const std::string shown = param.source == config::QueryParamSource::body ? "body." + param.name : param.name;
    if (!raw) {
      queue_query_response(400, error_body("bad_parameter", wrong_type ? "expected a scalar value" : "missing", shown),
                           {}, "bad_parameter");
      co_return done();
    }
    std::string why;
    auto v = shard::normalize_param(param.type, *raw, why);
    if (!v) {
      queue_query_response(400, error_body("bad_parameter", why, shown), {}, "bad_parameter");
      co_return done();
    }
    values[i] = std::move(*v);
  }
  if (!db) {  // cannot happen: the loader requires databases: for query routes
    queue_query_response(503, error_body("unavailable", "no databases configured"), {}, "no_databases");
    co_return done();
  }
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
  const auto& pool = snapshot->config.databases.pool;
  deadline_ = worker_.coarse_now() + 2 * (pool.acquire_timeout + pool.statement_timeout + pool.connect_timeout) +
              std::chrono::seconds(5);
  const bool read = q.reads();
  // Tracing: one client span per shard statement; a sampled trace's statements carry its traceparent.
  const bool sampled = p.has_trace && (p.head_sampled || (p.trace.flags & 1));
  const std::size_t nshards = q.shard_by ? 1 : db->shard_count();
  std::vector<std::string> comments;
  if (p.has_trace && (worker_.tracing() || sampled)) {
    p.db_spans.resize(nshards);
    for (auto& span : p.db_spans) {
      span.span_id = worker_.new_trace().parent_id;
      if (sampled) comments.push_back(sql_comment(p.trace_id, span.span_id, static_cast<std::uint8_t>(p.trace.flags | 1)));
    }
  }
  p.shards.clear();
  const auto record_span = [&](std::size_t i, std::int64_t shard_id, const shard::QueryOutcome& o) {
    if (!p.shards.empty()) p.shards.push_back(',');
    p.shards.append(std::to_string(shard_id)).append(o.role == shard::Role::replica ? ":replica" : ":primary");
    if (i >= p.db_spans.size()) return;
    auto& span = p.db_spans[i];
    span.start_ns = o.start_unix_ns;
    span.end_ns = o.end_unix_ns;
    span.shard = shard_id;
    span.replica = o.role == shard::Role::replica;
    span.endpoint = o.endpoint;
    span.error = o.error == shard::QueryErrc::none ? std::string_view() : shard::to_string(o.error);
  };
  shard::ResultSet rows;
  std::string missing;  // partial fan-out: the shards that did not answer
  if (q.shard_by) {
    const std::int64_t key = std::stoll(values[*q.shard_by]);
    const auto shard = shard::shard_of(snapshot->config.databases, key);
    if (!shard) {
      queue_query_response(404, error_body("not_found", "customer " + std::to_string(key) + " is in no shard"), {},
                           "no_shard");
      co_return done();
    }
    // (A local, not a conditional temporary in the co_await: GCC 12 destroys such a temporary twice.)
    std::string comment = comments.empty() ? std::string() : std::move(comments.front());
    shard::QueryOutcome out = co_await db->query(*shard, read, q.sql, std::move(values), q.max_rows, std::move(comment));
    record_span(0, snapshot->config.databases.shards[*shard].id, out);
    if (out.error != shard::QueryErrc::none) {
      const unsigned status = status_of(out.error, out.sqlstate);
      std::string extra = "Proxy-Status: virex-edge; error=";
      extra.append(status == 503 ? "destination_unavailable" : status == 504 ? "connection_timeout" : "proxy_internal_error");
      extra.append("\r\n");
      spdlog::debug("route {}: shard {}: {}: {}", route.name, snapshot->config.databases.shards[*shard].id,
                    shard::to_string(out.error), out.message);
      queue_query_response(status, error_body(shard::to_string(out.error), out.message), status >= 500 ? extra : "",
                           shard::to_string(out.error));
      co_return done();
    }
    rows = std::move(out.rows);
  } else {
    std::vector<shard::QueryOutcome> outs = co_await db->query_all(read, q.sql, std::move(values), q.max_rows,
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
    worker_.shard_metrics().on_fan_out(route.name, outs.size(), first_error && q.fan_out.partial);
    if (first_error && !q.fan_out.partial) {
      const unsigned status = status_of(first_error->error, first_error->sqlstate);
      std::string extra = "Virex-Missing-Shards: " + missing + "\r\n";
      queue_query_response(status >= 500 ? status : 502,
                           error_body(shard::to_string(first_error->error), first_error->message), extra,
                           "shard_failed");
      co_return done();
    }
    std::string why;
    if (!shard::merge(parts, q.fan_out, offset, q.max_rows, rows, why)) {
      queue_query_response(500, error_body("merge_failed", why), {}, "merge_failed");
      co_return done();
    }
  }
  // ---- answer ----
  if (!read) {
    // After commit (the statement's implicit transaction ended with its Sync): purge what the route names, in
    // this node's edge cache and, like the admin purge API, in Redis and (published) on every other node. The
    // answer waits for Redis (at most its command timeout): a read after it finds no stale regional copy.
    cache::Store* store = worker_.edge_cache();
    for (const std::string& item : route.config->invalidate) {
      const std::size_t colon = item.find(':');
      std::string kind = item.substr(0, colon);
      std::string value = expand(std::string_view(item).substr(colon + 1), q_captures_);
      if (store) {
        if (kind == "tag") store->purge_tag(value, false);
        else if (kind == "path") store->purge_path({}, value, false);
        else store->purge_prefix({}, value, false);
      }
      if (!worker_.regional()) continue;
      const bool confirmed = co_await regional_purge_confirmed(std::move(kind), std::move(value));
      if (!confirmed) spdlog::debug("route {}: invalidate {}: not confirmed by the regional tier", route.name, item);
    }
  }
  // Accept: application/x-protobuf → virex.query.v1.Result (proto/virex/query/v1/result.proto); else JSON.
  const bool protobuf = q_accept_.find("application/x-protobuf") != std::string::npos;
  const std::string_view content_type = protobuf ? kProtobuf : kJson;
  std::string body_text;
  if (protobuf) {
    shard::append_protobuf(body_text, rows);
  } else {
    shard::append_json(body_text, rows);
    body_text.push_back('\n');
  }
  const unsigned status = read ? 200 : 201;
  if (p.invalidate) invalidate_target(status);  // RFC 9111 §4.4: an unsafe request through a caching route
  std::string extra;
  if (!missing.empty()) extra.append("Virex-Missing-Shards: ").append(missing).append("\r\n");
  // A complete answer to a cacheable GET is stored: at the edge for edge_ttl (never a private route's), and in
  // the region when the lookup there missed (a private route's under the user's key, its only tier).
  const bool storable = p.cacheable && route.cache && missing.empty();
  const bool edge_store = storable && !p.regional_private && route.cache_policy.edge_ttl && worker_.edge_cache() &&
                          body_text.size() <= worker_.edge_cache_max_object();
  const bool region_store = storable && p.regional != Pending::Regional::none && p.regional != Pending::Regional::hit;
  if (route.cache) {
    extra.append("Vary: Accept\r\n");  // JSON and protobuf answers are separate variants
    cache::CacheStatus cs;
    cs.fwd = p.fwd;
    cs.stored = edge_store;
    if (edge_store) cs.ttl = route.cache_policy.edge_ttl->count();
    append_cache_status(extra, cs);  // the regional member first, when the route has one
  }
  if (edge_store || region_store) {
    auto e = std::make_shared<cache::Entry>();
    e->key = cache_key_;
    e->host = q_host_;
    e->path = q_path_;
    e->status = 200;
    e->stored_at = std::chrono::steady_clock::now();
    // The edge lifetime (of a regional copy too: a node filling its edge from it caps this by what it has left);
    // only a private route may have none (the loader requires edge_ttl otherwise), and it never reaches the edge.
    e->ttl = static_cast<std::uint32_t>(route.cache_policy.edge_ttl ? route.cache_policy.edge_ttl->count() : 0);
    e->head = "HTTP/1.1 200 OK\r\nContent-Type: " + std::string(content_type) + "\r\nVary: Accept\r\nContent-Length: " +
              std::to_string(body_text.size()) + "\r\n";
    e->vary = {"accept"};
    // The variant key from the Accept this request sent, as the lookup computes it (the head is intact: above).
    const std::array<http::Header, 1> vary = {http::Header{"Vary", "accept"}};
    cache::vary_key(e->variant_key, parser_.head(), vary);
    e->body = body_text;
    for (const std::string& tag : route.cache->tags) e->tags.push_back(expand(tag, q_captures_));
    if (region_store) regional_store(e);  // posted: written after this answer
    if (edge_store) worker_.edge_cache()->insert(std::move(e), cache_hash_);
  }
  queue_query_response(status, body_text, extra, {}, content_type);
  done();
}

}  // namespace virex::server
