// Admin endpoints. Responses are small and rare: built per request, no caching.
#include <virex/admin/admin.hpp>

#include "dashboard_html.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <initializer_list>
#include <map>

namespace virex::admin {

Endpoint classify(std::string_view path) noexcept {
  if (path == "/metrics") return Endpoint::metrics;
  if (path == "/healthz") return Endpoint::healthz;
  if (path == "/readyz") return Endpoint::readyz;
  if (path == "/stats.json") return Endpoint::stats;
  if (path == "/dashboard" || path == "/") return Endpoint::dashboard;
  if (path == "/cache/purge") return Endpoint::purge;
  return Endpoint::none;
}

namespace {

std::string_view label(const observe::Labels& labels, std::string_view key) {
  for (const auto& [k, v] : labels)
    if (k == key) return v;
  return {};
}

void json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  out += '"';
}

void json_number(std::string& out, double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// A 200 admin page: never cached by anyone in between.
void append_body_response(std::string& out, std::string_view content_type, std::string_view body,
                          std::string_view date_line, http::ConnectionHeader conn, bool head_only) {
  http::append_body_response(out, 200, content_type, body, date_line, conn, head_only, "Cache-Control: no-store\r\n");
}

// One upstream cluster's totals for /stats.json, summed from the virex_upstream_* series.
struct UpstreamEndpointStats {
  double requests = 0, healthy = 0, ejected = 0, active = 0, idle = 0;
};
struct UpstreamStats {
  double requests = 0, responses = 0, responses_5xx = 0, errors = 0, reused = 0, opened = 0, retries = 0,
         budget_exhausted = 0, rejected = 0;
  std::vector<double> bounds, cumulative;  // response_duration_seconds
  std::map<std::string, UpstreamEndpointStats, std::less<>> endpoints;
};

void add_upstream_sample(std::map<std::string, UpstreamStats, std::less<>>& clusters, const observe::SeriesSample& s) {
  const observe::Labels& l = *s.labels;
  const std::string_view f = s.family.substr(std::string_view("virex_upstream_").size());
  const std::string_view name = label(l, "cluster");
  auto it = clusters.find(name);
  if (it == clusters.end()) it = clusters.emplace(std::string(name), UpstreamStats{}).first;
  UpstreamStats& c = it->second;
  const auto endpoint = [&]() -> UpstreamEndpointStats& {
    const std::string_view e = label(l, "endpoint");
    auto ei = c.endpoints.find(e);
    if (ei == c.endpoints.end()) ei = c.endpoints.emplace(std::string(e), UpstreamEndpointStats{}).first;
    return ei->second;
  };
  if (f == "requests_total") {
    c.requests += s.value;
    endpoint().requests += s.value;
  } else if (f == "responses_total") {
    c.responses += s.value;
    if (label(l, "status_class") == "5xx") c.responses_5xx += s.value;
  } else if (f == "errors_total") {
    if (label(l, "error") != "http_request_error") c.errors += s.value;  // the client's fault, not the upstream's
  } else if (f == "response_duration_seconds" && s.histogram) {
    if (c.bounds.empty()) {
      c.bounds.assign(s.bounds.begin(), s.bounds.end());
      c.cumulative.assign(s.cumulative.size(), 0);
    }
    if (s.cumulative.size() == c.cumulative.size())
      for (std::size_t i = 0; i < c.cumulative.size(); ++i) c.cumulative[i] += static_cast<double>(s.cumulative[i]);
  } else if (f == "connections_reused_total") {
    c.reused += s.value;
  } else if (f == "connections_total") {
    c.opened += s.value;
  } else if (f == "retries_total") {
    c.retries += s.value;
  } else if (f == "retry_budget_exhausted_total") {
    c.budget_exhausted += s.value;
  } else if (f == "rejected_total") {
    c.rejected += s.value;
  } else if (f == "connections_active") {
    endpoint().active += s.value;
  } else if (f == "connections_idle") {
    endpoint().idle += s.value;
  } else if (f == "endpoint_healthy") {
    endpoint().healthy += s.value;
  } else if (f == "endpoint_ejected") {
    endpoint().ejected += s.value;
  }
}

void json_field(std::string& out, std::string_view key, double v) {
  out += '"';
  out += key;
  out += "\":";
  json_number(out, v);
}

// `,"key":value` for each field (inside an object that already has a member); negative values are left out
// when `known_only` (figures this node does not know).
void json_fields(std::string& out, std::initializer_list<std::pair<std::string_view, double>> fields,
                 bool known_only = false) {
  for (const auto& [k, v] : fields) {
    if (known_only && v < 0) continue;
    out += ',';
    json_field(out, k, v);
  }
}

void json_numbers(std::string& out, const std::vector<double>& v) {
  out += '[';
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    json_number(out, v[i]);
  }
  out += ']';
}

void append_upstreams(std::string& out, const std::map<std::string, UpstreamStats, std::less<>>& clusters) {
  out += "\"upstreams\":[";
  bool first = true;
  for (const auto& [name, c] : clusters) {
    if (!first) out += ',';
    first = false;
    out += "{\"cluster\":";
    json_string(out, name);
    json_fields(out, {
        {"requests", c.requests}, {"responses", c.responses},   {"responses_5xx", c.responses_5xx},
        {"errors", c.errors},     {"reused", c.reused},         {"connections_opened", c.opened},
        {"retries", c.retries},   {"retry_budget_exhausted", c.budget_exhausted}, {"rejected", c.rejected}});
    out += ",\"latency\":{\"bounds\":";
    json_numbers(out, c.bounds);
    out += ",\"cumulative\":";
    json_numbers(out, c.cumulative);
    out += "},\"endpoints\":[";
    bool first_endpoint = true;
    for (const auto& [ename, e] : c.endpoints) {
      if (!first_endpoint) out += ',';
      first_endpoint = false;
      out += "{\"endpoint\":";
      json_string(out, ename);
      json_fields(out, {{"requests", e.requests}, {"healthy", e.healthy}, {"ejected", e.ejected},
                        {"active", e.active}, {"idle", e.idle}});
      out += '}';
    }
    out += "]}";
  }
  out += ']';
}

// One cache tier's totals for /stats.json: requests it could answer, those it answered, what it holds.
struct TierStats {
  double lookups = 0, hits = 0, bytes = 0, objects = 0;
};

// The edge tier from virex_cache_*: a hit is a fresh hit or a stale-while-revalidate answer; lookups leave out
// bypassed requests, and `collapsed` (already a miss) and `revalidated` (already stale) are not counted twice.
bool add_cache_sample(std::map<std::string, TierStats, std::less<>>& tiers, const observe::SeriesSample& s) {
  const std::string_view f = s.family;
  if (f == "virex_cache_requests_total") {
    const std::string_view r = label(*s.labels, "result");
    TierStats& t = tiers["edge"];
    if (r == "hit" || r == "stale_while_revalidate") t.hits += s.value;
    if (r == "hit" || r == "stale_while_revalidate" || r == "miss" || r == "stale") t.lookups += s.value;
    return true;
  }
  if (f == "virex_cache_bytes") tiers["edge"].bytes += s.value;
  else if (f == "virex_cache_objects") tiers["edge"].objects += s.value;
  else return false;
  return true;
}

// The regional tier from virex_regional_lookups_total: every lookup after an edge miss (skipped ones too: the
// breaker answered for Redis) and its hits. Its size lives in Redis: not reported here.
bool add_regional_sample(std::map<std::string, TierStats, std::less<>>& tiers, const observe::SeriesSample& s) {
  if (s.family != "virex_regional_lookups_total") return false;
  TierStats& t = tiers["regional"];
  t.lookups += s.value;
  if (label(*s.labels, "result") == "hit") t.hits += s.value;
  t.bytes = t.objects = -1;
  return true;
}

// One shard endpoint for /stats.json, from the virex_shard_* series.
struct ShardEndpoint {
  std::string role;
  double in_use = 0, idle = 0, waiting = 0, lag_ms = -2;  // -2: not a replica (no lag series)
};
struct ShardStats {
  double queries = 0, errors = 0;
  std::map<std::string, ShardEndpoint, std::less<>> endpoints;
};

bool add_shard_sample(std::map<std::string, ShardStats, std::less<>>& shards, const observe::SeriesSample& s) {
  const observe::Labels& l = *s.labels;
  const std::string_view f = s.family;
  ShardStats& sh = shards[std::string(label(l, "shard"))];
  if (f == "virex_shard_queries_total") {
    sh.queries += s.value;
    if (label(l, "outcome") != "ok") sh.errors += s.value;
    return true;
  }
  const std::string_view ep = label(l, "endpoint");
  if (ep.empty()) return false;
  ShardEndpoint& e = sh.endpoints[std::string(ep)];
  e.role = label(l, "role");
  if (f == "virex_shard_pool_connections") (label(l, "state") == "in_use" ? e.in_use : e.idle) += s.value;
  else if (f == "virex_shard_pool_waiting") e.waiting += s.value;
  else if (f == "virex_shard_replica_lag_milliseconds") e.lag_ms = s.value;
  else return false;
  return true;
}

void append_shards(std::string& out, const std::map<std::string, ShardStats, std::less<>>& shards) {
  out += "\"shards\":[";
  bool first = true;
  for (const auto& [id, sh] : shards) {
    if (id.empty()) continue;
    if (!first) out += ',';
    first = false;
    out += "{\"shard\":";
    json_string(out, id);
    json_fields(out, {{"queries", sh.queries}, {"errors", sh.errors}});
    out += ",\"endpoints\":[";
    bool first_endpoint = true;
    for (const auto& [name, e] : sh.endpoints) {
      if (!first_endpoint) out += ',';
      first_endpoint = false;
      out += "{\"endpoint\":";
      json_string(out, name);
      out += ",\"role\":";
      json_string(out, e.role);
      json_fields(out, {
          {"in_use", e.in_use}, {"idle", e.idle}, {"waiting", e.waiting}, {"lag_ms", e.lag_ms}});
      out += '}';
    }
    out += "]}";
  }
  out += ']';
}

void append_cache_tiers(std::string& out, const std::map<std::string, TierStats, std::less<>>& tiers) {
  out += "\"cache\":[";
  bool first = true;
  for (const auto& [name, t] : tiers) {
    if (!first) out += ',';
    first = false;
    out += "{\"tier\":";
    json_string(out, name);
    json_fields(out, {
        {"lookups", t.lookups}, {"hits", t.hits}, {"bytes", t.bytes}, {"objects", t.objects}}, true);
    out += '}';
  }
  out += ']';
}

}  // namespace

std::string stats_json(const observe::Registry& registry, const std::vector<std::string>& admin_listeners) {
  const auto is_admin = [&](std::string_view listener) {
    return std::find(admin_listeners.begin(), admin_listeners.end(), listener) != admin_listeners.end();
  };
  double requests = 0, open = 0, received = 0, sent = 0, parse_errors = 0, timeouts = 0, dropped = 0;
  double reloads_ok = 0, reloads_failed = 0;
  std::map<std::string, double> by_class;
  std::map<std::string, std::pair<double, double>> routes;  // route → (requests, 5xx)
  std::vector<double> bounds;
  std::vector<double> cumulative;
  std::map<std::string, UpstreamStats, std::less<>> upstreams;
  std::map<std::string, TierStats, std::less<>> tiers;
  std::map<std::string, ShardStats, std::less<>> shards;
  std::string version, node, region;
  registry.visit([&](const observe::SeriesSample& s) {
    const observe::Labels& l = *s.labels;
    const std::string_view f = s.family;
    if (f.starts_with("virex_upstream_")) {
      add_upstream_sample(upstreams, s);
      return;
    }
    if (f.starts_with("virex_cache_") && add_cache_sample(tiers, s)) return;
    if (f.starts_with("virex_regional_") && add_regional_sample(tiers, s)) return;
    if (f.starts_with("virex_shard_") && add_shard_sample(shards, s)) return;
    if (f == "virex_build_info") {
      version = label(l, "version");
      node = label(l, "node");
      region = label(l, "region");
      return;
    }
    if (f == "virex_config_reloads_total") {
      (label(l, "result") == "ok" ? reloads_ok : reloads_failed) += s.value;
      return;
    }
    if (f == "virex_http_parse_errors_total") parse_errors += s.value;
    if (f == "virex_http_timeouts_total") timeouts += s.value;
    if (f == "virex_access_log_dropped_lines_total") dropped += s.value;
    if (is_admin(label(l, "listener"))) return;
    if (f == "virex_http_requests_total") {
      requests += s.value;
      const std::string cls(label(l, "status_class"));
      by_class[cls] += s.value;
      auto& r = routes[std::string(label(l, "route"))];
      r.first += s.value;
      if (cls == "5xx") r.second += s.value;
    } else if (f == "virex_http_connections_open") {
      open += s.value;
    } else if (f == "virex_http_received_bytes_total") {
      received += s.value;
    } else if (f == "virex_http_sent_bytes_total") {
      sent += s.value;
    } else if (f == "virex_http_request_duration_seconds" && s.histogram) {
      if (bounds.empty()) {
        bounds.assign(s.bounds.begin(), s.bounds.end());
        cumulative.assign(s.cumulative.size(), 0);
      }
      if (s.cumulative.size() == cumulative.size())
        for (std::size_t i = 0; i < cumulative.size(); ++i) cumulative[i] += static_cast<double>(s.cumulative[i]);
    }
  });
  std::string out;
  out.reserve(1024 + routes.size() * 64);
  out += "{\"time_ms\":";
  json_number(out, static_cast<double>(std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count()));
  out += ",\"version\":";
  json_string(out, version);
  out += ",\"node\":";
  json_string(out, node);
  out += ",\"region\":";
  json_string(out, region);
  json_fields(out, {
      {"requests", requests},         {"connections_open", open}, {"received_bytes", received},
      {"sent_bytes", sent},           {"parse_errors", parse_errors}, {"timeouts", timeouts},
      {"access_log_dropped", dropped}, {"reloads_ok", reloads_ok}, {"reloads_failed", reloads_failed}});
  out += ",\"status\":{";
  bool first = true;
  for (const auto& [cls, v] : by_class) {
    if (!first) out += ',';
    first = false;
    json_string(out, cls);
    out += ':';
    json_number(out, v);
  }
  out += "},\"latency\":{\"bounds\":[";
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (i) out += ',';
    json_number(out, bounds[i]);
  }
  out += "],\"cumulative\":[";
  for (std::size_t i = 0; i < cumulative.size(); ++i) {
    if (i) out += ',';
    json_number(out, cumulative[i]);
  }
  out += "]},\"routes\":[";
  first = true;
  for (const auto& [name, v] : routes) {
    if (!first) out += ',';
    first = false;
    out += "{\"route\":";
    json_string(out, name);
    out += ",\"requests\":";
    json_number(out, v.first);
    out += ",\"errors\":";
    json_number(out, v.second);
    out += '}';
  }
  out += "],";
  append_upstreams(out, upstreams);
  out += ',';
  append_cache_tiers(out, tiers);
  out += ',';
  append_shards(out, shards);
  out += '}';
  return out;
}

unsigned respond(Endpoint e, http::Method method, const Context& ctx, std::string& out,
                 std::string_view date_line, http::ConnectionHeader conn) {
  const bool head_only = method == http::Method::head;
  if (e == Endpoint::none) {
    http::append_simple_response(out, 404, date_line, "not found\n", conn, head_only);
    return 404;
  }
  if (method != http::Method::get && method != http::Method::head) {
    http::append_simple_response(out, 405, date_line, "method not allowed\n", conn, head_only,
                                 "Allow: GET, HEAD\r\n");
    return 405;
  }
  switch (e) {
    case Endpoint::metrics:
      append_body_response(out, "text/plain; version=0.0.4; charset=utf-8", ctx.registry->expose(), date_line,
                           conn, head_only);
      return 200;
    case Endpoint::stats:
      append_body_response(out, "application/json", stats_json(*ctx.registry, ctx.admin_listeners), date_line,
                           conn, head_only);
      return 200;
    case Endpoint::dashboard:
      append_body_response(out, "text/html; charset=utf-8", kDashboardHtml, date_line, conn, head_only);
      return 200;
    case Endpoint::healthz:
      http::append_simple_response(out, 200, date_line, "ok\n", conn, head_only);
      return 200;
    case Endpoint::readyz: {
      const bool ready = ctx.ready && ctx.ready->load(std::memory_order_relaxed);
      http::append_simple_response(out, ready ? 200 : 503, date_line, ready ? "ready\n" : "not ready\n", conn,
                                   head_only);
      return ready ? 200 : 503;
    }
    case Endpoint::none:
    case Endpoint::purge: break;
  }
  return 500;
}

}  // namespace virex::admin
