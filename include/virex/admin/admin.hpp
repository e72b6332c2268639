// The admin endpoints served on listeners marked `admin: true` (never on public ones):
// GET /metrics (Prometheus text), /healthz (liveness), /readyz (503 while draining or not ready),
// /stats.json (the figures the dashboard shows) and /dashboard (a self-contained live page).
// handle() is called on a worker thread; it reads the registry (lock-free) and an atomic flag.
#pragma once

#include <virex/http/request.hpp>
#include <virex/http/response.hpp>
#include <virex/observe/metrics.hpp>

#include <atomic>
#include <string>
#include <string_view>
#include <vector>

namespace virex::admin {

// purge (POST /cache/purge) is answered by the server, which owns the cache; the others by respond().
enum class Endpoint : std::uint8_t { none, metrics, healthz, readyz, stats, dashboard, purge };

// Which endpoint a path names, or none (→ 404 on an admin listener).
Endpoint classify(std::string_view path) noexcept;

struct Context {
  const observe::Registry* registry = nullptr;
  const std::atomic<bool>* ready = nullptr;   // false before READY and while draining
  std::vector<std::string> admin_listeners;   // their traffic is left out of /stats.json
};

// The dashboard's figures as JSON: totals since start (the page turns them into rates), request latency
// buckets, per-route counts — for traffic on listeners not in `admin_listeners` — and `upstreams`: per
// cluster its tries, responses (5xx), RFC 9209 errors, retries, breaker rejections, reused and opened
// connections and response-time buckets; per endpoint its tries, health (1/0), ejection (1/0) and
// active/idle connections.
std::string stats_json(const observe::Registry& registry, const std::vector<std::string>& admin_listeners);

// Appends the complete response for `e` to `out`; returns its status.
unsigned respond(Endpoint e, http::Method method, const Context& ctx, std::string& out,
                 std::string_view date_line, http::ConnectionHeader conn);

}  // namespace virex::admin
