// The admin endpoints served on listeners marked `admin: true` (never on public ones):
// GET /metrics (Prometheus text), /healthz (liveness), /readyz (503 while draining or not ready).
// handle() is called on a worker thread; it reads the registry (lock-free) and an atomic flag.
#pragma once

#include <virex/http/request.hpp>
#include <virex/http/response.hpp>
#include <virex/observe/metrics.hpp>

#include <atomic>
#include <string>
#include <string_view>

namespace virex::admin {

enum class Endpoint : std::uint8_t { none, metrics, healthz, readyz };

// Which endpoint a path names, or none (→ 404 on an admin listener).
Endpoint classify(std::string_view path) noexcept;

struct Context {
  const observe::Registry* registry = nullptr;
  const std::atomic<bool>* ready = nullptr;   // false before READY and while draining
};

// Appends the complete response for `e` to `out`; returns its status.
unsigned respond(Endpoint e, http::Method method, const Context& ctx, std::string& out,
                 std::string_view date_line, http::ConnectionHeader conn);

}  // namespace virex::admin
