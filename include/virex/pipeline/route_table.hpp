// The compiled route table: host → path (exact, prefix, template) → method, first match in config order.
// Built on the control thread from config::Route; immutable afterwards and shared by all workers.
// match() allocates nothing and takes no lock.
#pragma once

#include <virex/config/config.hpp>
#include <virex/http/request.hpp>
#include <virex/http/response.hpp>
#include <virex/cache/freshness.hpp>
#include <virex/cache/key.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace virex::pipeline {

enum class ParamType : std::uint8_t { str, int64, uint64 };

struct Capture {
  std::string_view name;
  std::string_view value;   // view into the request path
  std::int64_t int_value = 0;  // for int64 / uint64 (as bits) captures
};

struct CompiledRoute {
  std::string name;
  std::uint32_t index = 0;              // position in config order: lower wins
  std::uint32_t method_mask = 0;        // bit per http::Method; 0 with no extra_methods = any method
  std::vector<std::string> extra_methods;  // methods outside http::Method
  http::PreparedResponse response;             // the `respond` action
  const config::RouteUpstream* upstream = nullptr;  // the `upstream` action (into the snapshot's config)
  const config::RouteQuery* query = nullptr;        // the `query` action (shard router), into the snapshot's config
  const config::Route* config = nullptr;            // the route as configured (invalidate list, match)
  const config::RouteCache* cache = nullptr;        // edge caching of that action, when configured
  cache::RoutePolicy cache_policy;                  // compiled from `cache`
  cache::KeySpec cache_key;
  std::uint32_t cluster = 0;                    // with `upstream`: index into Snapshot::clusters

  bool allows(http::Method m, std::string_view text) const noexcept;
};

inline constexpr std::size_t kMaxCaptures = 8;

struct Match {
  const CompiledRoute* route = nullptr;  // nullptr: 404 or 405
  std::array<Capture, kMaxCaptures> captures{};
  std::size_t ncaptures = 0;
  bool method_not_allowed = false;       // some route matched host+path but none the method
  std::string allow;                     // "GET, HEAD" when method_not_allowed (built only then)
};

// Reads a `respond.file` at build time; returns the contents or an error message.
using FileReader = std::function<std::optional<std::string>(const std::string& path, std::string& error)>;

struct BuildError {
  config::Location location;
  std::string key;
  std::string reason;
};

class RouteTable {
 public:
  RouteTable();
  ~RouteTable();
  RouteTable(RouteTable&&) noexcept;
  RouteTable& operator=(RouteTable&&) noexcept;

  // Compiles `routes` (which must outlive the table: upstream routes point into them); errors (unreadable
  // files) are collected, not thrown.
  static RouteTable build(const std::vector<config::Route>& routes, const FileReader& read_file,
                          std::vector<BuildError>& errors);

  Match match(std::string_view host, std::string_view path, http::Method method,
              std::string_view method_text) const;

  const std::vector<CompiledRoute>& routes() const noexcept;
  // Sets each upstream route's cluster index (at snapshot build, before the table is shared).
  void bind_clusters(const std::function<std::uint32_t(const std::string&)>& index_of);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace virex::pipeline
