// config::load(): defaults, a full round trip, the shipped config files, and one table row per error path
// (exact key path, line and column). No files are read except config/*.yaml from the source tree.
#include <virex/config/loader.hpp>

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <fstream>
#include <sstream>

namespace virex::config {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Line 1 of most error cases: the one listener every config needs.
constexpr std::string_view kListener = "listeners: [{name: a, address: \"127.0.0.1:80\"}]\n";

std::string errors_of(const LoadResult& result) {
  std::string out;
  for (const Error& e : result.errors) out += "  " + e.to_string() + "\n";
  return out;
}

Config load_ok(std::string_view yaml) {
  LoadResult result = load(yaml, "test.yaml");
  EXPECT_TRUE(result.errors.empty()) << errors_of(result);
  EXPECT_TRUE(result.config.has_value());
  return result.config.value_or(Config{});
}

TEST(Load, DefaultsWhenKeysAreAbsent) {
  const Config config = load_ok(kListener);
  EXPECT_EQ(config.source, "test.yaml");
  EXPECT_EQ(config.node.name, "");
  EXPECT_EQ(config.node.region, "default");
  EXPECT_EQ(config.node.workers, 0u);
  EXPECT_EQ(config.limits.max_header_bytes, 16u * 1024);
  EXPECT_EQ(config.limits.max_uri_bytes, 8u * 1024);
  EXPECT_EQ(config.limits.max_body_bytes, 1024u * 1024);
  EXPECT_EQ(config.limits.header_timeout, seconds(10));
  EXPECT_EQ(config.limits.idle_timeout, seconds(60));
  EXPECT_EQ(config.limits.drain_timeout, seconds(30));
  ASSERT_EQ(config.listeners.size(), 1u);
  EXPECT_EQ(config.listeners[0].name, "a");
  EXPECT_EQ(config.listeners[0].host, "127.0.0.1");
  EXPECT_EQ(config.listeners[0].port, 80);
  EXPECT_FALSE(config.listeners[0].admin);
  EXPECT_TRUE(config.routes.empty());
  EXPECT_EQ(config.observability.access_log.path, "");
  EXPECT_EQ(config.observability.access_log.format, AccessLogFormat::combined);
  EXPECT_EQ(config.observability.log_level, "info");
  EXPECT_EQ(config.observability.tracing.otlp_endpoint, "");
  EXPECT_EQ(config.observability.tracing.sample_ratio, 0.01);
  EXPECT_EQ(config.observability.tracing.slow_threshold, milliseconds(500));
  EXPECT_EQ(config.observability.tracing.service_name, "virex-edge");
  EXPECT_EQ(config.observability.tracing.response_header, "");
}

TEST(Load, RouteDefaults) {
  const Config config = load_ok(std::string(kListener) + "routes: [{respond: {}}, {respond: {body: x}}]\n");
  ASSERT_EQ(config.routes.size(), 2u);
  const Route& route = config.routes[1];
  EXPECT_EQ(config.routes[0].name, "route0");
  EXPECT_EQ(route.name, "route1");
  EXPECT_EQ(route.match.host, "*");
  EXPECT_EQ(route.match.kind, PathKind::prefix);
  EXPECT_EQ(route.match.path, "/");
  EXPECT_TRUE(route.match.methods.empty());
  EXPECT_EQ(route.respond.status, 200u);
  EXPECT_TRUE(route.respond.headers.empty());
  EXPECT_EQ(route.respond.body, "x");
  EXPECT_FALSE(route.respond.file.has_value());
}

TEST(Load, NullSectionsAreEmpty) {
  const Config config = load_ok(std::string(kListener) + "node:\nlimits:\nroutes:\nobservability:\n");
  EXPECT_EQ(config.node.region, "default");
  EXPECT_TRUE(config.routes.empty());
}

constexpr std::string_view kFull = R"(node:
  name: edge-1
  region: eu-west
  workers: 4
limits:
  max_header_bytes: 32KiB
  max_uri_bytes: 4096
  max_body_bytes: 10MB
  header_timeout: 250ms
  idle_timeout: 2m
  drain_timeout: 1h
listeners:
  - name: public
    address: "0.0.0.0:8080"
  - name: public6
    address: "[::1]:8443"
    admin: false
  - name: admin
    address: 127.0.0.1:9901
    admin: true
routes:
  - name: hello
    match:
      host: Example.COM
      path: /hello
      method: get
    respond:
      status: 201
      headers:
        Content-Type: text/plain
        X-Two: "a, b"
        X-Two-Again: 2
      body: "hi\n"
  - match:
      host: "*.example.org"
      path: /v1/customers/{customer_id:int64}/orders/{order:uint64}/{tag}
      method: [GET, HEAD]
    respond:
      file: /srv/page.html
  - name: v2.static
    match:
      prefix: /static/
    respond:
      status: 404
observability:
  access_log:
    path: /var/log/virex/access.log
    format: json
  log_level: debug
  tracing:
    otlp_endpoint: "127.0.0.1:4317"
    sample_ratio: 0.25
    slow_threshold: 2s
    service_name: edge eu
    response_header: X-Trace-Id
)";

TEST(Load, FullConfigRoundTrip) {
  const Config config = load_ok(kFull);
  EXPECT_EQ(config.node.name, "edge-1");
  EXPECT_EQ(config.node.region, "eu-west");
  EXPECT_EQ(config.node.workers, 4u);
  EXPECT_EQ(config.limits.max_header_bytes, 32u * 1024);
  EXPECT_EQ(config.limits.max_uri_bytes, 4096u);
  EXPECT_EQ(config.limits.max_body_bytes, 10'000'000u);
  EXPECT_EQ(config.limits.header_timeout, milliseconds(250));
  EXPECT_EQ(config.limits.idle_timeout, std::chrono::minutes(2));
  EXPECT_EQ(config.limits.drain_timeout, std::chrono::hours(1));

  ASSERT_EQ(config.listeners.size(), 3u);
  EXPECT_EQ(config.listeners[0].host, "0.0.0.0");
  EXPECT_EQ(config.listeners[0].port, 8080);
  EXPECT_EQ(config.listeners[1].name, "public6");
  EXPECT_EQ(config.listeners[1].host, "::1");
  EXPECT_EQ(config.listeners[1].port, 8443);
  EXPECT_FALSE(config.listeners[1].admin);
  EXPECT_EQ(config.listeners[2].host, "127.0.0.1");
  EXPECT_EQ(config.listeners[2].port, 9901);
  EXPECT_TRUE(config.listeners[2].admin);
  EXPECT_EQ(config.listeners[2].location.file, "test.yaml");
  EXPECT_EQ(config.listeners[2].location.line, 18);
  EXPECT_EQ(config.listeners[2].location.column, 5);

  ASSERT_EQ(config.routes.size(), 3u);
  const Route& hello = config.routes[0];
  EXPECT_EQ(hello.name, "hello");
  EXPECT_EQ(hello.location.line, 22);
  EXPECT_EQ(hello.match.host, "example.com");
  EXPECT_EQ(hello.match.kind, PathKind::exact);
  EXPECT_EQ(hello.match.path, "/hello");
  EXPECT_EQ(hello.match.methods, std::vector<std::string>{"GET"});
  EXPECT_EQ(hello.respond.status, 201u);
  using Headers = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(hello.respond.headers,
            (Headers{{"Content-Type", "text/plain"}, {"X-Two", "a, b"}, {"X-Two-Again", "2"}}));
  EXPECT_EQ(hello.respond.body, "hi\n");

  const Route& customers = config.routes[1];
  EXPECT_EQ(customers.name, "route1");
  EXPECT_EQ(customers.match.host, "*.example.org");
  EXPECT_EQ(customers.match.kind, PathKind::template_);
  EXPECT_EQ(customers.match.path, "/v1/customers/{customer_id:int64}/orders/{order:uint64}/{tag}");
  EXPECT_EQ(customers.match.methods, (std::vector<std::string>{"GET", "HEAD"}));
  EXPECT_EQ(customers.respond.file, "/srv/page.html");
  EXPECT_EQ(customers.respond.file_location.file, "test.yaml");
  EXPECT_EQ(customers.respond.file_location.line, 39);
  EXPECT_EQ(customers.respond.file_location.column, 13);

  const Route& statics = config.routes[2];
  EXPECT_EQ(statics.name, "v2.static");
  EXPECT_EQ(statics.match.kind, PathKind::prefix);
  EXPECT_EQ(statics.match.path, "/static/");
  EXPECT_EQ(statics.respond.status, 404u);

  EXPECT_EQ(config.observability.access_log.path, "/var/log/virex/access.log");
  EXPECT_EQ(config.observability.access_log.format, AccessLogFormat::json);
  EXPECT_EQ(config.observability.log_level, "debug");
  EXPECT_EQ(config.observability.tracing.otlp_endpoint, "127.0.0.1:4317");
  EXPECT_EQ(config.observability.tracing.sample_ratio, 0.25);
  EXPECT_EQ(config.observability.tracing.slow_threshold, seconds(2));
  EXPECT_EQ(config.observability.tracing.service_name, "edge eu");
  EXPECT_EQ(config.observability.tracing.response_header, "X-Trace-Id");
}

// otlp_endpoint is stored in one spelling (host lower-cased, IPv6 canonical and bracketed); "" turns export off.
TEST(Load, TracingEndpointsAndRatios) {
  const auto tracing = [](std::string_view body) {
    return load_ok(std::string(kListener) + "observability: {tracing: " + std::string(body) + "}\n")
        .observability.tracing;
  };
  EXPECT_EQ(tracing("{otlp_endpoint: \"[0:0::1]:4317\"}").otlp_endpoint, "[::1]:4317");
  EXPECT_EQ(tracing("{otlp_endpoint: Collector.Internal:4317}").otlp_endpoint, "collector.internal:4317");
  EXPECT_EQ(tracing("{otlp_endpoint: \"\"}").otlp_endpoint, "");
  EXPECT_EQ(tracing("{sample_ratio: 0}").sample_ratio, 0.0);
  EXPECT_EQ(tracing("{sample_ratio: 1}").sample_ratio, 1.0);
  EXPECT_EQ(tracing("{sample_ratio: 5e-3}").sample_ratio, 0.005);
  EXPECT_EQ(tracing("{sample_ratio: .5}").sample_ratio, 0.5);
  EXPECT_EQ(tracing("{slow_threshold: 1d}").slow_threshold, std::chrono::hours(24));
}

TEST(Load, WorkersAuto) {
  EXPECT_EQ(load_ok(std::string(kListener) + "node: {workers: auto}\n").node.workers, 0u);
  EXPECT_EQ(load_ok(std::string(kListener) + "node: {workers: 1024}\n").node.workers, 1024u);
}

std::string read_source_file(const std::string& relative) {
  std::ifstream in(std::string(VIREX_SOURCE_DIR) + "/" + relative);
  EXPECT_TRUE(in.good()) << relative;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(Load, ShippedReferenceConfigIsValid) {
  const LoadResult result = load(read_source_file("config/edge.yaml"), "config/edge.yaml");
  ASSERT_TRUE(result.errors.empty()) << errors_of(result);
  const Config& config = *result.config;
  // The reference spells out every default: it must load to the same values as an empty section.
  const Config defaults = load_ok(kListener);
  EXPECT_EQ(config.node.workers, defaults.node.workers);
  EXPECT_EQ(config.node.region, defaults.node.region);
  EXPECT_EQ(config.limits.max_header_bytes, defaults.limits.max_header_bytes);
  EXPECT_EQ(config.limits.max_uri_bytes, defaults.limits.max_uri_bytes);
  EXPECT_EQ(config.limits.max_body_bytes, defaults.limits.max_body_bytes);
  EXPECT_EQ(config.limits.header_timeout, defaults.limits.header_timeout);
  EXPECT_EQ(config.limits.idle_timeout, defaults.limits.idle_timeout);
  EXPECT_EQ(config.limits.drain_timeout, defaults.limits.drain_timeout);
  EXPECT_EQ(config.observability.access_log.path, defaults.observability.access_log.path);
  EXPECT_EQ(config.observability.log_level, defaults.observability.log_level);
  EXPECT_EQ(config.observability.tracing.otlp_endpoint, defaults.observability.tracing.otlp_endpoint);
  EXPECT_EQ(config.observability.tracing.sample_ratio, defaults.observability.tracing.sample_ratio);
  EXPECT_EQ(config.observability.tracing.slow_threshold, defaults.observability.tracing.slow_threshold);
  EXPECT_EQ(config.observability.tracing.service_name, defaults.observability.tracing.service_name);
  EXPECT_EQ(config.observability.tracing.response_header, defaults.observability.tracing.response_header);
  EXPECT_FALSE(config.routes.empty());
  // databases: the reference spells out the pool's and the lag settings' defaults.
  const Databases db_defaults;
  EXPECT_EQ(config.databases.pool.max_per_endpoint, db_defaults.pool.max_per_endpoint);
  EXPECT_EQ(config.databases.pool.acquire_timeout, db_defaults.pool.acquire_timeout);
  EXPECT_EQ(config.databases.pool.statement_timeout, db_defaults.pool.statement_timeout);
  EXPECT_EQ(config.databases.pool.connect_timeout, db_defaults.pool.connect_timeout);
  EXPECT_EQ(config.databases.pool.max_pipeline, db_defaults.pool.max_pipeline);
  EXPECT_EQ(config.databases.pool.max_waiting, db_defaults.pool.max_waiting);
  EXPECT_EQ(config.databases.pool.min_per_endpoint, db_defaults.pool.min_per_endpoint);
  EXPECT_EQ(config.databases.pool.idle_timeout, db_defaults.pool.idle_timeout);
  EXPECT_EQ(config.databases.pool.max_lifetime, db_defaults.pool.max_lifetime);
  EXPECT_EQ(config.databases.pool.health_interval, db_defaults.pool.health_interval);
  EXPECT_EQ(config.databases.max_lag, db_defaults.max_lag);
  EXPECT_EQ(config.databases.lag_interval, db_defaults.lag_interval);
  EXPECT_EQ(config.databases.version, db_defaults.version);
  EXPECT_EQ(config.databases.shards.size(), 2u);
  // Its cluster spells every setting out at its default (health_check is present, which turns it on).
  ASSERT_EQ(config.upstreams.size(), 1u);
  const Upstream& web = config.upstreams[0];
  const Upstream d;
  EXPECT_EQ(web.endpoints.size(), 3u);
  EXPECT_EQ(web.balance, d.balance);
  EXPECT_EQ(web.hash_on, d.hash_on);
  EXPECT_EQ(web.host_header, d.host_header);
  EXPECT_EQ(web.resolve_interval, d.resolve_interval);
  EXPECT_TRUE(web.health_check.enabled);
  EXPECT_EQ(web.health_check.path, d.health_check.path);
  EXPECT_EQ(web.health_check.host, d.health_check.host);
  EXPECT_EQ(web.health_check.interval, d.health_check.interval);
  EXPECT_EQ(web.health_check.timeout, d.health_check.timeout);
  EXPECT_EQ(web.health_check.healthy, d.health_check.healthy);
  EXPECT_EQ(web.health_check.unhealthy, d.health_check.unhealthy);
  EXPECT_EQ(web.timeouts.connect, d.timeouts.connect);
  EXPECT_EQ(web.timeouts.first_byte, d.timeouts.first_byte);
  EXPECT_EQ(web.timeouts.idle, d.timeouts.idle);
  EXPECT_EQ(web.timeouts.request, d.timeouts.request);
  EXPECT_EQ(web.retries.attempts, d.retries.attempts);
  EXPECT_EQ(web.retries.budget_percent, d.retries.budget_percent);
  EXPECT_EQ(web.retries.min_concurrent, d.retries.min_concurrent);
  EXPECT_EQ(web.retries.backoff, d.retries.backoff);
  EXPECT_EQ(web.retries.max_backoff, d.retries.max_backoff);
  EXPECT_EQ(web.limits.max_connections, d.limits.max_connections);
  EXPECT_EQ(web.limits.max_pending, d.limits.max_pending);
  EXPECT_EQ(web.limits.max_requests, d.limits.max_requests);
  EXPECT_EQ(web.pool.max_idle, d.pool.max_idle);
  EXPECT_EQ(web.pool.idle_timeout, d.pool.idle_timeout);
  EXPECT_EQ(web.pool.max_requests_per_connection, d.pool.max_requests_per_connection);
  EXPECT_EQ(web.outlier.consecutive_5xx, d.outlier.consecutive_5xx);
  EXPECT_EQ(web.outlier.consecutive_failures, d.outlier.consecutive_failures);
  EXPECT_EQ(web.outlier.base_ejection, d.outlier.base_ejection);
  EXPECT_EQ(web.outlier.max_ejection, d.outlier.max_ejection);
  EXPECT_EQ(web.outlier.max_ejected_percent, d.outlier.max_ejected_percent);
  EXPECT_EQ(config.proxy.trusted_proxies.size(), defaults.proxy.trusted_proxies.size());
  EXPECT_EQ(config.proxy.via, defaults.proxy.via);
  ASSERT_TRUE(config.routes[0].upstream.has_value());
  EXPECT_EQ(config.routes[0].upstream->cluster, "web");
  EXPECT_EQ(config.routes[0].upstream->add_prefix, "");
  EXPECT_FALSE(config.routes[0].upstream->first_byte.has_value());
  // The cache sections spell out their defaults too.
  EXPECT_EQ(config.cache.edge.max_bytes, defaults.cache.edge.max_bytes);
  EXPECT_EQ(config.cache.edge.max_object_bytes, defaults.cache.edge.max_object_bytes);
  EXPECT_EQ(config.cache.edge.shards, defaults.cache.edge.shards);
  EXPECT_EQ(config.admin.token, defaults.admin.token);
  EXPECT_EQ(config.admin.token_file, defaults.admin.token_file);
  ASSERT_TRUE(config.routes[0].cache.has_value());
  const RouteCache& cache = *config.routes[0].cache;
  const RouteCache c;
  EXPECT_EQ(cache.edge_ttl, c.edge_ttl);
  EXPECT_EQ(cache.key.headers, c.key.headers);
  EXPECT_EQ(cache.key.query, c.key.query);
  EXPECT_EQ(cache.key.ignore_query, c.key.ignore_query);
  EXPECT_EQ(cache.key.cookies, c.key.cookies);
  EXPECT_EQ(cache.tags, c.tags);
  EXPECT_EQ(cache.scope, c.scope);
  EXPECT_EQ(cache.store_set_cookie, c.store_set_cookie);
  EXPECT_EQ(cache.negative_ttl, c.negative_ttl);
  EXPECT_EQ(cache.stale_while_revalidate, c.stale_while_revalidate);
  EXPECT_EQ(cache.stale_if_error, c.stale_if_error);
}

TEST(Load, ShippedLocalConfigIsValid) {
  const LoadResult result = load(read_source_file("config/local.yaml"), "config/local.yaml");
  ASSERT_TRUE(result.errors.empty()) << errors_of(result);
  const Config& config = *result.config;
  ASSERT_EQ(config.listeners.size(), 2u);
  EXPECT_EQ(config.listeners[0].port, 8080);
  EXPECT_FALSE(config.listeners[0].admin);
  EXPECT_EQ(config.listeners[1].port, 9901);
  EXPECT_TRUE(config.listeners[1].admin);
  EXPECT_EQ(config.observability.access_log.path, "-");
  ASSERT_GE(config.routes.size(), 3u);
  EXPECT_EQ(config.routes[0].match.path, "/");
  EXPECT_EQ(config.routes[0].respond.body, "Virex Edge is running\n");
  EXPECT_EQ(config.routes[2].match.kind, PathKind::template_);
}

TEST(Load, YamlSyntaxErrorHasItsPosition) {
  const LoadResult result = load("listeners:\n  - name: a\n    address: [1\n", "bad.yaml");
  EXPECT_FALSE(result.config.has_value());
  ASSERT_EQ(result.errors.size(), 1u) << errors_of(result);
  EXPECT_EQ(result.errors[0].key, "");
  EXPECT_EQ(result.errors[0].location.file, "bad.yaml");
  EXPECT_EQ(result.errors[0].location.line, 4);
  EXPECT_EQ(result.errors[0].location.column, 1);
  EXPECT_EQ(result.errors[0].to_string(), "bad.yaml:4:1: end of sequence flow not found");
}

TEST(Load, CollectsEveryError) {
  const LoadResult result = load(R"(node:
  workers: 0
  zone: x
limits:
  header_timeout: soon
listeners:
  - name: a
    address: "localhost:80"
routes:
  - match: {path: nope}
)",
                                 "multi.yaml");
  EXPECT_FALSE(result.config.has_value());
  std::vector<std::string> lines;
  for (const Error& e : result.errors) lines.push_back(e.to_string());
  EXPECT_EQ(lines, (std::vector<std::string>{
                       "multi.yaml:2:12: node.workers: must be between 1 and 1024",
                       "multi.yaml:3:3: node.zone: unknown key",
                       "multi.yaml:5:19: limits.header_timeout: expected a duration such as 250ms, 5s, 10m, 1h or 1d",
                       "multi.yaml:8:14: listeners[0].address: \"localhost\" is not a literal IP address (host names "
                       "are not resolved)",
                       "multi.yaml:10:19: routes[0].match.path: must start with \"/\"",
                       "multi.yaml:10:5: routes[0]: a route needs an action (respond, upstream or query)",
                   }));
}

// One invalid config per row: exactly one error, at this key, line and column, with this reason.
struct ErrorCase {
  std::string name;
  std::string yaml;
  std::string key;
  int line;
  int column;
  std::string reason;
};

void PrintTo(const ErrorCase& c, std::ostream* out) { *out << c.name; }

class LoadError : public testing::TestWithParam<ErrorCase> {};

TEST_P(LoadError, ReportsKeyPositionAndReason) {
  const ErrorCase& c = GetParam();
  const LoadResult result = load(c.yaml, "t.yaml");
  EXPECT_FALSE(result.config.has_value());
  ASSERT_EQ(result.errors.size(), 1u) << errors_of(result);
  const Error& error = result.errors[0];
  EXPECT_EQ(error.key, c.key);
  EXPECT_EQ(error.location.file, "t.yaml");
  EXPECT_EQ(error.location.line, c.line);
  EXPECT_EQ(error.location.column, c.column);
  EXPECT_EQ(error.reason, c.reason);
}

// Prefixes the listener line, so the rows' own YAML starts on line 2.
std::string L(std::string_view rest) { return std::string(kListener) + std::string(rest); }

const std::string kBadDuration = "expected a duration such as 250ms, 5s, 10m, 1h or 1d";
const std::string kBadSize = "expected a size such as 512, 16KiB, 1MiB or 1MB";
const std::string kHeaderRange = "must be between 1024 and 1048576 bytes";
const std::string kNotLiteral = " is not a literal IP address (host names are not resolved)";
const std::string kPort = "the port must be between 1 and 65535";
const std::string kUnbalanced = "unbalanced braces in path template";
const std::string kWholeSegment = "a parameter must be a whole path segment";
const std::string kBadMethod = "expected an HTTP method such as GET or POST";
const std::string kBadHost = "expected \"*\", a host name or \"*.suffix\"";
const std::string kSecondDocument = "expected a single YAML document (another one starts here)";
const std::string kLevels = "expected one of: trace, debug, info, warn, error, critical, off";

INSTANTIATE_TEST_SUITE_P(
    Document, LoadError,
    testing::Values(
        ErrorCase{"Empty", "", "", 1, 1, "the document is empty (at least one listener is required)"},
        ErrorCase{"OnlyComments", "# nothing\n", "", 1, 1,
                  "the document is empty (at least one listener is required)"},
        ErrorCase{"TopLevelSequence", "- a\n", "", 1, 1, "expected a mapping at the top level"},
        ErrorCase{"TopLevelScalar", "\n\nhello\n", "", 3, 1, "expected a mapping at the top level"},
        ErrorCase{"TwoDocuments", L("---\nlisteners: []\n"), "", 2, 1, kSecondDocument},
        // yaml-cpp 0.7's LoadAll loops forever (allocating) on this; load() must return.
        ErrorCase{"StrayComma", ",\n", "", 1, 1, kSecondDocument},
        ErrorCase{"StrayCommaAfterMapping", L(",\n"), "", 2, 1, "end of map not found"},
        ErrorCase{"SyntaxError", "listeners: {a: b\n", "", 2, 1, "end of map flow not found"},
        ErrorCase{"MissingListeners", "\nnode: {}\n", "listeners", 2, 1, "at least one listener is required"},
        ErrorCase{"UnknownTopKey", L("nodes: {}\n"), "nodes", 2, 1, "unknown key"},
        ErrorCase{"DuplicateTopKey", L("listeners: []\n"), "listeners", 2, 1, "duplicate key"},
        ErrorCase{"NonStringKey", L("[a]: 1\n"), "", 2, 1, "expected a string key"},
        // An alias would be copied into Config once per use: a small file could expand without bound.
        ErrorCase{"Alias", L("node: {name: &n edge1, region: *n}\n"), "", 2, 32,
                  "YAML aliases (*name) are not supported: write the value out"}),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Node, LoadError,
    testing::Values(ErrorCase{"NotAMapping", L("node: [1]\n"), "node", 2, 7, "expected a mapping"},
                    ErrorCase{"WorkersZero", L("node:\n  workers: 0\n"), "node.workers", 3, 12,
                              "must be between 1 and 1024"},
                    ErrorCase{"WorkersTooMany", L("node: {workers: 1025}\n"), "node.workers", 2, 17,
                              "must be between 1 and 1024"},
                    ErrorCase{"WorkersWord", L("node: {workers: many}\n"), "node.workers", 2, 17,
                              "expected an integer"},
                    ErrorCase{"NameNotString", L("node: {name: [a]}\n"), "node.name", 2, 14, "expected a string"},
                    ErrorCase{"RegionNull", L("node:\n  region:\n"), "node.region", 3, 3, "expected a string"},
                    ErrorCase{"UnknownKey", L("node:\n  zone: x\n"), "node.zone", 3, 3, "unknown key"},
                    // node.name and node.region become metric label values.
                    ErrorCase{"RegionNotALabel", L("node: {region: \"Z\xfcrich\"}\n"), "node.region", 2, 16,
                              "must match [A-Za-z0-9_.-]+"}),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Limits, LoadError,
    testing::Values(
        ErrorCase{"NotAMapping", L("limits: 5\n"), "limits", 2, 9, "expected a mapping"},
        ErrorCase{"TimeoutOverADay", L("limits: {idle_timeout: 300000d}\n"), "limits.idle_timeout", 2, 24,
                  "must be at most 1d"},
        ErrorCase{"HeaderTooSmall", L("limits:\n  max_header_bytes: 512\n"), "limits.max_header_bytes", 3, 21,
                  kHeaderRange},
        ErrorCase{"HeaderTooLarge", L("limits: {max_header_bytes: 2MiB}\n"), "limits.max_header_bytes", 2, 28,
                  kHeaderRange},
        ErrorCase{"HeaderSpaceInSize", L("limits: {max_header_bytes: 16 KiB}\n"), "limits.max_header_bytes", 2, 28,
                  kBadSize},
        ErrorCase{"HeaderNotScalar", L("limits: {max_header_bytes: [1]}\n"), "limits.max_header_bytes", 2, 28,
                  kBadSize},
        ErrorCase{"UriTooSmall", L("limits: {max_uri_bytes: 32}\n"), "limits.max_uri_bytes", 2, 25,
                  "must be between 64 and 1048576 bytes"},
        ErrorCase{"UriAboveHeader", L("limits: {max_uri_bytes: 32KiB}\n"), "limits.max_uri_bytes", 2, 25,
                  "must not exceed max_header_bytes (16384)"},
        ErrorCase{"HeaderBelowDefaultUri", L("limits: {max_header_bytes: 4KiB}\n"), "limits.max_header_bytes", 2,
                  28, "must be at least max_uri_bytes (8192)"},
        ErrorCase{"BodyZero", L("limits: {max_body_bytes: 0}\n"), "limits.max_body_bytes", 2, 26,
                  "must be greater than 0"},
        ErrorCase{"BodyOverflow", L("limits: {max_body_bytes: 99999999999GiB}\n"), "limits.max_body_bytes", 2, 26,
                  kBadSize},
        ErrorCase{"HeaderTimeoutZero", L("limits: {header_timeout: 0}\n"), "limits.header_timeout", 2, 26,
                  "must be greater than 0"},
        ErrorCase{"HeaderTimeoutNoUnit", L("limits: {header_timeout: 5}\n"), "limits.header_timeout", 2, 26,
                  kBadDuration},
        ErrorCase{"IdleTimeoutNegative", L("limits: {idle_timeout: -1s}\n"), "limits.idle_timeout", 2, 24,
                  kBadDuration},
        ErrorCase{"DrainTimeoutMapping", L("limits: {drain_timeout: {}}\n"), "limits.drain_timeout", 2, 25,
                  kBadDuration},
        ErrorCase{"UnknownKey", L("limits:\n  max_headers: 1\n"), "limits.max_headers", 3, 3, "unknown key"}),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Listeners, LoadError,
    testing::Values(
        ErrorCase{"Empty", "listeners: []\n", "listeners", 1, 12, "at least one listener is required"},
        ErrorCase{"Null", "listeners:\n", "listeners", 1, 1, "at least one listener is required"},
        ErrorCase{"NotASequence", "listeners: {a: 1}\n", "listeners", 1, 12, "expected a sequence"},
        ErrorCase{"ItemNotAMapping", "listeners: [x]\n", "listeners[0]", 1, 13, "expected a mapping"},
        ErrorCase{"NameMissing", "listeners:\n  - address: 127.0.0.1:80\n", "listeners[0].name", 2, 5,
                  "is required"},
        ErrorCase{"AddressMissing", "listeners:\n  - name: a\n", "listeners[0].address", 2, 5, "is required"},
        ErrorCase{"NameBadChars", "listeners: [{name: a b, address: \"1.2.3.4:80\"}]\n", "listeners[0].name", 1,
                  20, "must match [A-Za-z0-9_.-]+"},
        ErrorCase{"DuplicateName",
                  "listeners:\n  - {name: a, address: \"1.2.3.4:80\"}\n  - {name: a, address: \"1.2.3.4:81\"}\n",
                  "listeners[1].name", 3, 12, "duplicate listener name \"a\" (first at line 2)"},
        ErrorCase{"HostName", "listeners:\n  - name: a\n    address: localhost:80\n", "listeners[0].address", 3,
                  14, "\"localhost\"" + kNotLiteral},
        ErrorCase{"BadIPv4", "listeners: [{name: a, address: \"1.2.3.256:80\"}]\n", "listeners[0].address", 1,
                  32, "\"1.2.3.256\"" + kNotLiteral},
        ErrorCase{"BadIPv6", "listeners: [{name: a, address: \"[::g]:80\"}]\n", "listeners[0].address", 1, 32,
                  "\"::g\"" + kNotLiteral},
        ErrorCase{"NulInAddress", "listeners: [{name: a, address: \"127.0.0.1\\0x:80\"}]\n", "listeners[0].address",
                  1, 32, "must not contain control characters"},
        ErrorCase{"IPv6WithoutBrackets", "listeners: [{name: a, address: \"::1:80\"}]\n", "listeners[0].address",
                  1, 32, "an IPv6 address needs brackets, e.g. \"[::1]:8080\""},
        ErrorCase{"IPv6Unclosed", "listeners: [{name: a, address: \"[::1:80\"}]\n", "listeners[0].address", 1,
                  32, "missing \"]\" after the IPv6 address"},
        ErrorCase{"NoPort", "listeners: [{name: a, address: \"1.2.3.4\"}]\n", "listeners[0].address", 1, 32,
                  "expected \"ip:port\" (e.g. \"127.0.0.1:8080\")"},
        ErrorCase{"PortZero", "listeners: [{name: a, address: \"1.2.3.4:0\"}]\n", "listeners[0].address", 1, 32,
                  kPort},
        ErrorCase{"PortTooLarge", "listeners: [{name: a, address: \"1.2.3.4:65536\"}]\n", "listeners[0].address",
                  1, 32, kPort},
        ErrorCase{"PortNotNumber", "listeners: [{name: a, address: \"1.2.3.4:http\"}]\n", "listeners[0].address",
                  1, 32, kPort},
        ErrorCase{"DuplicateAddress",
                  "listeners:\n  - {name: a, address: \"[::1]:80\"}\n  - {name: b, address: \"[0::1]:80\"}\n",
                  "listeners[1].address", 3, 24, "duplicate address \"[::1]:80\" (first at line 2)"},
        ErrorCase{"AdminNotBool", "listeners: [{name: a, address: \"1.2.3.4:80\", admin: yes}]\n",
                  "listeners[0].admin", 1, 53, "expected a boolean (true or false)"},
        ErrorCase{"UnknownKey", "listeners: [{name: a, address: \"1.2.3.4:80\", port: 80}]\n",
                  "listeners[0].port", 1, 46, "unknown key"}),
    [](const auto& info) { return info.param.name; });

// Rows whose YAML is one route on line 2: `routes: [<route>]`.
ErrorCase route_case(std::string name, std::string_view route, std::string key, int column, std::string reason) {
  return ErrorCase{std::move(name), L("routes: [" + std::string(route) + "]\n"), std::move(key), 2, column,
                   std::move(reason)};
}

INSTANTIATE_TEST_SUITE_P(
    Routes, LoadError,
    testing::Values(
        ErrorCase{"NotASequence", L("routes: {a: 1}\n"), "routes", 2, 9, "expected a sequence"},
        route_case("ItemNotAMapping", "x", "routes[0]", 10, "expected a mapping"),
        ErrorCase{"RespondMissing", L("routes:\n  - match: {path: /a}\n"), "routes[0]", 3, 5,
                  "a route needs an action (respond, upstream or query)"},
        route_case("UnknownKey", "{respond: {}, proxy: x}", "routes[0].proxy", 24, "unknown key"),
        route_case("NameBadChars", "{name: a/b, respond: {}}", "routes[0].name", 17, "must match [A-Za-z0-9_.-]+"),
        ErrorCase{"DuplicateName", L("routes:\n  - {name: a, respond: {}}\n  - {name: a, respond: {}}\n"),
                  "routes[1].name", 4, 12, "duplicate route name \"a\" (first at line 3)"},
        ErrorCase{"NameClashesWithDefault", L("routes:\n  - {name: route1, respond: {}}\n  - {respond: {}}\n"),
                  "routes[1].name", 4, 5, "duplicate route name \"route1\" (first at line 3)"},
        route_case("MatchNotAMapping", "{match: /a, respond: {}}", "routes[0].match", 18, "expected a mapping"),
        route_case("MatchUnknownKey", "{match: {paths: /a}, respond: {}}", "routes[0].match.paths", 19,
                   "unknown key"),
        route_case("PathAndPrefix", "{match: {path: /a, prefix: /b}, respond: {}}", "routes[0].match.prefix", 37,
                   "path and prefix are mutually exclusive"),
        route_case("PathWithoutSlash", "{match: {path: a}, respond: {}}", "routes[0].match.path", 25,
                   "must start with \"/\""),
        route_case("PrefixWithoutSlash", "{match: {prefix: \"\"}, respond: {}}", "routes[0].match.prefix", 27,
                   "must start with \"/\""),
        route_case("PathWithQuery", "{match: {path: \"/a?b\"}, respond: {}}", "routes[0].match.path", 25,
                   "must not contain spaces, control characters, \"?\" or \"#\""),
        route_case("PathNotString", "{match: {path: [/a]}, respond: {}}", "routes[0].match.path", 25,
                   "expected a string"),
        route_case("PrefixWithParameter", "{match: {prefix: \"/a/{id}\"}, respond: {}}", "routes[0].match.prefix",
                   27, "parameters ({name}) are only allowed in path"),
        route_case("TemplateUnclosed", "{match: {path: \"/a/{id\"}, respond: {}}", "routes[0].match.path", 25,
                   kUnbalanced),
        route_case("TemplateNested", "{match: {path: \"/a/{{id}}\"}, respond: {}}", "routes[0].match.path", 25,
                   kUnbalanced),
        route_case("TemplateStrayClose", "{match: {path: \"/a/}\"}, respond: {}}", "routes[0].match.path", 25,
                   kUnbalanced),
        route_case("TemplatePartOfSegment", "{match: {path: \"/a/x{id}\"}, respond: {}}", "routes[0].match.path",
                   25, kWholeSegment),
        route_case("TemplateTwoInASegment", "{match: {path: \"/a/{x}{y}\"}, respond: {}}", "routes[0].match.path",
                   25, kWholeSegment),
        route_case("TemplateAcrossSegments", "{match: {path: \"/a/{x/y}\"}, respond: {}}", "routes[0].match.path",
                   25, kWholeSegment),
        route_case("TemplateUpperCaseName", "{match: {path: \"/a/{Id}\"}, respond: {}}", "routes[0].match.path",
                   25, "bad parameter name \"Id\" (expected [a-z_][a-z0-9_]*)"),
        route_case("TemplateDigitFirst", "{match: {path: \"/a/{1d}\"}, respond: {}}", "routes[0].match.path", 25,
                   "bad parameter name \"1d\" (expected [a-z_][a-z0-9_]*)"),
        route_case("TemplateEmptyName", "{match: {path: \"/a/{:int64}\"}, respond: {}}", "routes[0].match.path",
                   25, "bad parameter name \"\" (expected [a-z_][a-z0-9_]*)"),
        route_case("TemplateDuplicateName", "{match: {path: \"/a/{id}/{id:int64}\"}, respond: {}}",
                   "routes[0].match.path", 25, "duplicate parameter name \"id\""),
        route_case("TemplateUnknownType", "{match: {path: \"/a/{id:float}\"}, respond: {}}", "routes[0].match.path",
                   25, "unknown parameter type \"float\" (expected str, int64 or uint64)"),
        route_case("MethodNotToken", "{match: {method: \"GE T\"}, respond: {}}", "routes[0].match.method", 27,
                   kBadMethod),
        route_case("MethodWithDigits", "{match: {method: [GET, P0ST]}, respond: {}}", "routes[0].match.method[1]",
                   33, kBadMethod),
        route_case("MethodEmptyList", "{match: {method: []}, respond: {}}", "routes[0].match.method", 27,
                   "expected at least one method (leave method out for any)"),
        route_case("MethodDuplicate", "{match: {method: [GET, get]}, respond: {}}", "routes[0].match.method[1]",
                   33, "duplicate method GET"),
        route_case("MethodMapping", "{match: {method: {GET: 1}}, respond: {}}", "routes[0].match.method", 27,
                   "expected a string"),
        route_case("HostWithPort", "{match: {host: \"example.com:8080\"}, respond: {}}", "routes[0].match.host", 25,
                   "a host is matched without its port"),
        route_case("HostWithSpace", "{match: {host: \"exa mple.com\"}, respond: {}}", "routes[0].match.host", 25,
                   kBadHost),
        route_case("HostEmptyLabel", "{match: {host: \"a..b\"}, respond: {}}", "routes[0].match.host", 25,
                   kBadHost),
        route_case("HostBareWildcardSuffix", "{match: {host: \"*.\"}, respond: {}}", "routes[0].match.host", 25,
                   kBadHost),
        route_case("HostInnerWildcard", "{match: {host: \"a.*.com\"}, respond: {}}", "routes[0].match.host", 25,
                   kBadHost)),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Respond, LoadError,
    testing::Values(
        route_case("NotAMapping", "{respond: ok}", "routes[0].respond", 20, "expected a mapping"),
        route_case("UnknownKey", "{respond: {code: 200}}", "routes[0].respond.code", 21, "unknown key"),
        route_case("Status1xx", "{respond: {status: 101}}", "routes[0].respond.status", 29,
                   "must be between 200 and 599"),
        route_case("Status600", "{respond: {status: 600}}", "routes[0].respond.status", 29,
                   "must be between 200 and 599"),
        route_case("StatusWord", "{respond: {status: ok}}", "routes[0].respond.status", 29, "expected an integer"),
        route_case("HeadersNotAMapping", "{respond: {headers: [a]}}", "routes[0].respond.headers", 30,
                   "expected a mapping"),
        route_case("HeaderNameNotToken", "{respond: {headers: {\"X Bad\": v}}}", "routes[0].respond.headers.X Bad",
                   31, "expected a header name (an RFC 9110 token)"),
        route_case("HeaderContentLength", "{respond: {headers: {Content-Length: 5}}}",
                   "routes[0].respond.headers.Content-Length", 31, "set by the server"),
        route_case("HeaderHopByHop", "{respond: {headers: {Keep-Alive: timeout=5}}}",
                   "routes[0].respond.headers.Keep-Alive", 31, "set by the server"),
        route_case("HeaderDuplicateOtherCase", "{respond: {headers: {X-A: a, x-a: b}}}",
                   "routes[0].respond.headers.x-a", 39, "duplicate header (names are case-insensitive)"),
        route_case("NoContentWithBody", "{respond: {status: 204, body: x}}", "routes[0].respond.body", 40,
                   "a 204 response has no body"),
        route_case("HeaderTransferEncoding", "{respond: {headers: {transfer-encoding: chunked}}}",
                   "routes[0].respond.headers.transfer-encoding", 31, "set by the server"),
        route_case("HeaderConnection", "{respond: {headers: {Connection: close}}}",
                   "routes[0].respond.headers.Connection", 31, "set by the server"),
        route_case("HeaderDate", "{respond: {headers: {DATE: x}}}", "routes[0].respond.headers.DATE", 31,
                   "set by the server"),
        route_case("HeaderServer", "{respond: {headers: {Server: x}}}", "routes[0].respond.headers.Server", 31,
                   "set by the server"),
        route_case("HeaderValueNewline", "{respond: {headers: {X-A: \"a\\r\\nX-B: b\"}}}",
                   "routes[0].respond.headers.X-A", 36, "must not contain CR, LF, NUL or other control characters"),
        route_case("HeaderValueNul", "{respond: {headers: {X-A: \"a\\0b\"}}}", "routes[0].respond.headers.X-A", 36,
                   "must not contain CR, LF, NUL or other control characters"),
        route_case("HeaderValueList", "{respond: {headers: {X-A: [a]}}}", "routes[0].respond.headers.X-A", 36,
                   "expected a string"),
        route_case("HeaderRepeated", "{respond: {headers: {X-A: a, X-A: b}}}", "routes[0].respond.headers.X-A", 39,
                   "duplicate key"),
        route_case("BodyAndFile", "{respond: {body: x, file: /f}}", "routes[0].respond.file", 36,
                   "body and file are mutually exclusive"),
        route_case("BodyNotString", "{respond: {body: {a: b}}}", "routes[0].respond.body", 27, "expected a string"),
        route_case("FileEmpty", "{respond: {file: \"\"}}", "routes[0].respond.file", 27, "must not be empty")),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Observability, LoadError,
    testing::Values(
        ErrorCase{"NotAMapping", L("observability: []\n"), "observability", 2, 16, "expected a mapping"},
        ErrorCase{"UnknownKey", L("observability: {metrics: {}}\n"), "observability.metrics", 2, 17, "unknown key"},
        ErrorCase{"AccessLogNotAMapping", L("observability: {access_log: stdout}\n"), "observability.access_log",
                  2, 29, "expected a mapping"},
        ErrorCase{"AccessLogUnknownKey", L("observability:\n  access_log:\n    file: x\n"),
                  "observability.access_log.file", 4, 5, "unknown key"},
        ErrorCase{"AccessLogPathList", L("observability: {access_log: {path: [a]}}\n"),
                  "observability.access_log.path", 2, 36, "expected a string"},
        ErrorCase{"AccessLogFormat", L("observability: {access_log: {format: xml}}\n"),
                  "observability.access_log.format", 2, 38, "expected one of: combined, json"},
        ErrorCase{"LogLevel", L("observability: {log_level: verbose}\n"), "observability.log_level", 2, 28,
                  kLevels},
        ErrorCase{"LogLevelUpperCase", L("observability: {log_level: INFO}\n"), "observability.log_level", 2, 28,
                  kLevels}),
    [](const auto& info) { return info.param.name; });

// A row whose key sits on line 2 in `observability: {tracing: {KEY: VALUE}}`, the error pointing at VALUE.
ErrorCase tracing_case(std::string name, std::string_view key, std::string_view value, std::string reason) {
  const std::string prefix = "observability: {tracing: {" + std::string(key) + ": ";
  return ErrorCase{std::move(name), L(prefix + std::string(value) + "}}\n"),
                   "observability.tracing." + std::string(key), 2, static_cast<int>(prefix.size()) + 1,
                   std::move(reason)};
}

const std::string kBadRatio = "expected a number between 0 and 1 (e.g. 0.01)";
const std::string kBadCollector = "expected \"host:port\" of an OTLP/gRPC collector (e.g. \"127.0.0.1:4317\")";

INSTANTIATE_TEST_SUITE_P(
    Tracing, LoadError,
    testing::Values(
        ErrorCase{"NotAMapping", L("observability: {tracing: on}\n"), "observability.tracing", 2, 26,
                  "expected a mapping"},
        ErrorCase{"UnknownKey", L("observability: {tracing: {endpoint: x}}\n"), "observability.tracing.endpoint", 2,
                  27, "unknown key"},
        tracing_case("EndpointWithoutPort", "otlp_endpoint", "\"127.0.0.1\"", kBadCollector),
        tracing_case("EndpointPortZero", "otlp_endpoint", "\"127.0.0.1:0\"", kPort),
        tracing_case("EndpointPortTooHigh", "otlp_endpoint", "\"collector:65536\"", kPort),
        tracing_case("EndpointBareIpv6", "otlp_endpoint", "\"::1:4317\"",
                     "an IPv6 address needs brackets, e.g. \"[::1]:9000\""),
        tracing_case("EndpointBadHost", "otlp_endpoint", "\"my collector:4317\"",
                     "\"my collector\" is neither an IP address nor a host name"),
        tracing_case("EndpointBadIpv4", "otlp_endpoint", "\"10.0.0.300:4317\"",
                     "\"10.0.0.300\" is not a valid IPv4 address"),
        tracing_case("EndpointList", "otlp_endpoint", "[a]", "expected a string"),
        tracing_case("RatioAboveOne", "sample_ratio", "1.5", kBadRatio),
        tracing_case("RatioNegative", "sample_ratio", "-0.1", kBadRatio),
        tracing_case("RatioPercent", "sample_ratio", "1%", kBadRatio),
        tracing_case("RatioNan", "sample_ratio", "nan", kBadRatio),
        tracing_case("RatioInfinity", "sample_ratio", "inf", kBadRatio),
        tracing_case("RatioEmpty", "sample_ratio", "\"\"", kBadRatio),
        tracing_case("RatioList", "sample_ratio", "[0.1]", kBadRatio),
        tracing_case("SlowThresholdZero", "slow_threshold", "0", "must be greater than 0"),
        tracing_case("SlowThresholdNoUnit", "slow_threshold", "500", kBadDuration),
        tracing_case("SlowThresholdTooLong", "slow_threshold", "2d", "must be at most 1d"),
        tracing_case("ServiceNameEmpty", "service_name", "\"\"", "must not be empty"),
        tracing_case("ServiceNameControl", "service_name", "\"a\\nb\"", "must not contain control characters"),
        tracing_case("ServiceNameMap", "service_name", "{a: b}", "expected a string"),
        tracing_case("ResponseHeaderNotToken", "response_header", "\"X Trace\"",
                     "expected a header name (an RFC 9110 token)")),
    [](const auto& info) { return info.param.name; });

// ---- upstreams, a route's upstream action, proxy ---------------------------------------------------------

constexpr std::string_view kUpstreams = R"(listeners: [{name: a, address: "127.0.0.1:80"}]
routes:
  - name: api
    match: {prefix: /api/}
    upstream: web
    rewrite: {strip_prefix: /api, add_prefix: /v1}
    timeouts: {first_byte: 2s, idle: 10s, request: 30s}
  - name: users
    match: {path: "/users/{id:int64}"}
    upstream: sticky
    rewrite: {strip_prefix: /elsewhere}
proxy:
  trusted_proxies: ["10.0.0.0/8", "192.168.1.7", "::1", "2001:DB8::/32", "0.0.0.0/0", "::/0"]
  via: false
upstreams:
  web:
    endpoints: ["127.0.0.1:9000", "Origin.Internal:9000", "[::1]:9001"]
    balance: consistent_hash
    hash_on: header:X-User
    host_header: Origin.Internal:8443
    resolve_interval: 15s
    health_check: {path: "/health?deep=1", host: h, interval: 2s, timeout: 500ms, healthy: 4, unhealthy: 6}
    timeouts: {connect: 1s, first_byte: 5s, idle: 20s, request: 60s}
    retries: {attempts: 2, budget: 35%, min_concurrent: 7, backoff: 40ms, max_backoff: 400ms}
    limits: {max_connections: 1000, max_pending: 100, max_requests: 900}
    pool: {max_idle: 16, idle_timeout: 45s, max_requests_per_connection: 1000}
    outlier: {consecutive_5xx: 0, consecutive_failures: 9, base_ejection: 15s, max_ejection: 15s,
              max_ejected_percent: 100}
  sticky:
    endpoints: [origin.internal:80]
    balance: consistent_hash
    hash_on: cookie:session_id
    retries: {attempts: 0, budget: 0}
  least:
    endpoints: ["10.0.0.9:80"]
    balance: least_request
    health_check: {}
)";

// A trusted_proxies entry: `bytes` of the (IPv4-mapped) address and the prefix on 128 bits.
Cidr cidr(std::array<std::uint8_t, 16> bytes, unsigned prefix) {
  Cidr c;
  c.bytes = bytes;
  c.prefix = prefix;
  return c;
}

void expect_cidr(const Cidr& actual, const Cidr& expected) {
  EXPECT_EQ(actual.bytes, expected.bytes);
  EXPECT_EQ(actual.prefix, expected.prefix);
}

TEST(Load, UpstreamsRoundTrip) {
  const Config config = load_ok(kUpstreams);

  ASSERT_EQ(config.routes.size(), 2u);
  const Route& api = config.routes[0];
  ASSERT_TRUE(api.upstream.has_value());
  EXPECT_EQ(api.upstream->cluster, "web");
  EXPECT_EQ(api.upstream->strip_prefix, "/api");
  EXPECT_EQ(api.upstream->add_prefix, "/v1");
  EXPECT_EQ(api.upstream->first_byte, seconds(2));
  EXPECT_EQ(api.upstream->idle, seconds(10));
  EXPECT_EQ(api.upstream->request, seconds(30));
  const Route& users = config.routes[1];
  ASSERT_TRUE(users.upstream.has_value());
  EXPECT_EQ(users.upstream->cluster, "sticky");
  EXPECT_EQ(users.upstream->strip_prefix, "/elsewhere");  // a template's paths vary: not checked
  EXPECT_EQ(users.upstream->add_prefix, "");
  EXPECT_FALSE(users.upstream->first_byte.has_value());
  EXPECT_FALSE(users.upstream->idle.has_value());
  EXPECT_FALSE(users.upstream->request.has_value());

  ASSERT_EQ(config.proxy.trusted_proxies.size(), 6u);
  expect_cidr(config.proxy.trusted_proxies[0], cidr({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 0}, 104));
  expect_cidr(config.proxy.trusted_proxies[1], cidr({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 7}, 128));
  expect_cidr(config.proxy.trusted_proxies[2], cidr({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128));
  expect_cidr(config.proxy.trusted_proxies[3], cidr({0x20, 0x01, 0x0d, 0xb8}, 32));
  expect_cidr(config.proxy.trusted_proxies[4], cidr({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0}, 96));
  expect_cidr(config.proxy.trusted_proxies[5], cidr({}, 0));
  EXPECT_FALSE(config.proxy.via);

  ASSERT_EQ(config.upstreams.size(), 3u);  // in file order
  const Upstream& web = config.upstreams[0];
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.location.file, "test.yaml");
  EXPECT_EQ(web.location.line, 16);
  EXPECT_EQ(web.location.column, 3);
  ASSERT_EQ(web.endpoints.size(), 3u);
  EXPECT_EQ(web.endpoints[0].host, "127.0.0.1");
  EXPECT_EQ(web.endpoints[0].port, 9000);
  EXPECT_EQ(web.endpoints[0].location.line, 17);
  EXPECT_EQ(web.endpoints[0].location.column, 17);
  EXPECT_EQ(web.endpoints[1].host, "origin.internal");  // DNS names are case-insensitive: stored lower-case
  EXPECT_EQ(web.endpoints[1].port, 9000);
  EXPECT_EQ(web.endpoints[1].location.column, 35);
  EXPECT_EQ(web.endpoints[2].host, "::1");
  EXPECT_EQ(web.endpoints[2].port, 9001);
  EXPECT_EQ(web.balance, Balance::consistent_hash);
  EXPECT_EQ(web.hash_on, HashOn::header);
  EXPECT_EQ(web.hash_key, "X-User");
  EXPECT_EQ(web.host_header, "origin.internal:8443");
  EXPECT_EQ(web.resolve_interval, seconds(15));
  EXPECT_TRUE(web.health_check.enabled);
  EXPECT_EQ(web.health_check.path, "/health?deep=1");
  EXPECT_EQ(web.health_check.host, "h");
  EXPECT_EQ(web.health_check.interval, seconds(2));
  EXPECT_EQ(web.health_check.timeout, milliseconds(500));
  EXPECT_EQ(web.health_check.healthy, 4u);
  EXPECT_EQ(web.health_check.unhealthy, 6u);
  EXPECT_EQ(web.timeouts.connect, seconds(1));
  EXPECT_EQ(web.timeouts.first_byte, seconds(5));
  EXPECT_EQ(web.timeouts.idle, seconds(20));
  EXPECT_EQ(web.timeouts.request, seconds(60));
  EXPECT_EQ(web.retries.attempts, 2u);
  EXPECT_EQ(web.retries.budget_percent, 35u);
  EXPECT_EQ(web.retries.min_concurrent, 7u);
  EXPECT_EQ(web.retries.backoff, milliseconds(40));
  EXPECT_EQ(web.retries.max_backoff, milliseconds(400));
  EXPECT_EQ(web.limits.max_connections, 1000u);
  EXPECT_EQ(web.limits.max_pending, 100u);
  EXPECT_EQ(web.limits.max_requests, 900u);
  EXPECT_EQ(web.pool.max_idle, 16u);
  EXPECT_EQ(web.pool.idle_timeout, seconds(45));
  EXPECT_EQ(web.pool.max_requests_per_connection, 1000u);
  EXPECT_EQ(web.outlier.consecutive_5xx, 0u);
  EXPECT_EQ(web.outlier.consecutive_failures, 9u);
  EXPECT_EQ(web.outlier.base_ejection, seconds(15));
  EXPECT_EQ(web.outlier.max_ejection, seconds(15));
  EXPECT_EQ(web.outlier.max_ejected_percent, 100u);

  const Upstream& sticky = config.upstreams[1];
  EXPECT_EQ(sticky.name, "sticky");
  ASSERT_EQ(sticky.endpoints.size(), 1u);
  EXPECT_EQ(sticky.endpoints[0].host, "origin.internal");
  EXPECT_EQ(sticky.endpoints[0].port, 80);
  EXPECT_EQ(sticky.hash_on, HashOn::cookie);
  EXPECT_EQ(sticky.hash_key, "session_id");
  EXPECT_EQ(sticky.retries.attempts, 0u);
  EXPECT_EQ(sticky.retries.budget_percent, 0u);
  EXPECT_FALSE(sticky.health_check.enabled);

  const Upstream& least = config.upstreams[2];
  EXPECT_EQ(least.balance, Balance::least_request);
  EXPECT_EQ(least.hash_on, HashOn::path);
  EXPECT_TRUE(least.health_check.enabled);  // `health_check: {}` turns checks on with the defaults
  EXPECT_EQ(least.health_check.path, "/health");
}

// Routes come before upstreams here: cluster names are resolved once the whole file has been read.
TEST(Load, UpstreamDefaultsAndRoutesBeforeUpstreams) {
  const Config config = load_ok(L("routes: [{upstream: web}, {upstream: other}]\n"
                                  "upstreams:\n  web: {endpoints: [\"10.0.0.1:80\"]}\n  other:\n"
                                  "    endpoints: [\"10.0.0.2:80\"]\n"));
  ASSERT_EQ(config.routes.size(), 2u);
  const Route& route = config.routes[0];
  ASSERT_TRUE(route.upstream.has_value());
  EXPECT_EQ(route.upstream->cluster, "web");
  EXPECT_EQ(route.upstream->strip_prefix, "");
  EXPECT_EQ(route.upstream->add_prefix, "");
  EXPECT_FALSE(route.upstream->first_byte.has_value());
  EXPECT_FALSE(route.upstream->idle.has_value());
  EXPECT_FALSE(route.upstream->request.has_value());
  EXPECT_EQ(config.routes[1].upstream->cluster, "other");

  ASSERT_EQ(config.upstreams.size(), 2u);
  const Upstream& u = config.upstreams[0];
  EXPECT_EQ(u.name, "web");
  ASSERT_EQ(u.endpoints.size(), 1u);
  EXPECT_EQ(u.endpoints[0].host, "10.0.0.1");
  EXPECT_EQ(u.endpoints[0].port, 80);
  EXPECT_EQ(u.balance, Balance::round_robin);
  EXPECT_EQ(u.hash_on, HashOn::path);
  EXPECT_EQ(u.hash_key, "");
  EXPECT_EQ(u.host_header, "");
  EXPECT_EQ(u.resolve_interval, seconds(30));
  EXPECT_FALSE(u.health_check.enabled);
  EXPECT_EQ(u.health_check.path, "/health");
  EXPECT_EQ(u.health_check.host, "");
  EXPECT_EQ(u.health_check.interval, seconds(5));
  EXPECT_EQ(u.health_check.timeout, seconds(1));
  EXPECT_EQ(u.health_check.healthy, 2u);
  EXPECT_EQ(u.health_check.unhealthy, 3u);
  EXPECT_EQ(u.timeouts.connect, seconds(2));
  EXPECT_EQ(u.timeouts.first_byte, seconds(30));
  EXPECT_EQ(u.timeouts.idle, seconds(60));
  EXPECT_FALSE(u.timeouts.request.has_value());
  EXPECT_EQ(u.retries.attempts, 1u);
  EXPECT_EQ(u.retries.budget_percent, 20u);
  EXPECT_EQ(u.retries.min_concurrent, 3u);
  EXPECT_EQ(u.retries.backoff, milliseconds(25));
  EXPECT_EQ(u.retries.max_backoff, milliseconds(250));
  EXPECT_EQ(u.limits.max_connections, 1024u);
  EXPECT_EQ(u.limits.max_pending, 1024u);
  EXPECT_EQ(u.limits.max_requests, 1024u);
  EXPECT_EQ(u.pool.max_idle, 32u);
  EXPECT_EQ(u.pool.idle_timeout, seconds(30));
  EXPECT_EQ(u.pool.max_requests_per_connection, 0u);
  EXPECT_EQ(u.outlier.consecutive_5xx, 5u);
  EXPECT_EQ(u.outlier.consecutive_failures, 3u);
  EXPECT_EQ(u.outlier.base_ejection, seconds(10));
  EXPECT_EQ(u.outlier.max_ejection, seconds(300));
  EXPECT_EQ(u.outlier.max_ejected_percent, 50u);

  EXPECT_TRUE(config.proxy.trusted_proxies.empty());
  EXPECT_TRUE(config.proxy.via);
}

TEST(Load, ProxyAndUpstreamsDefaultWhenAbsent) {
  const Config config = load_ok(L("routes: [{respond: {}}]\nupstreams:\nproxy:\n"));
  EXPECT_TRUE(config.upstreams.empty());
  EXPECT_TRUE(config.proxy.trusted_proxies.empty());
  EXPECT_TRUE(config.proxy.via);
  ASSERT_EQ(config.routes.size(), 1u);
  EXPECT_FALSE(config.routes[0].upstream.has_value());
}

TEST(Load, RewriteEdgeCases) {
  // "" spells the default out; a strip_prefix equal to an exact path is a prefix of it.
  const Config config = load_ok(L("upstreams: {web: {endpoints: [\"[2001:DB8::1]:443\"]}}\nroutes:\n"
                                  "  - {upstream: web, rewrite: {strip_prefix: \"\", add_prefix: \"\"}}\n"
                                  "  - {match: {path: /a/b}, upstream: web, rewrite: {strip_prefix: /a/b}}\n"
                                  "  - {match: {prefix: /a/}, upstream: web, rewrite: {strip_prefix: /a}}\n"));
  ASSERT_EQ(config.routes.size(), 3u);
  EXPECT_EQ(config.routes[0].upstream->strip_prefix, "");
  EXPECT_EQ(config.routes[0].upstream->add_prefix, "");
  EXPECT_EQ(config.routes[1].upstream->strip_prefix, "/a/b");
  EXPECT_EQ(config.routes[2].upstream->strip_prefix, "/a");
  EXPECT_EQ(config.upstreams[0].endpoints[0].host, "2001:db8::1");
  EXPECT_EQ(config.upstreams[0].endpoints[0].port, 443);
}

TEST(Load, UnknownUpstreamListsAtMostTenNames) {
  std::string yaml = L("routes: [{upstream: x}]\nupstreams:\n");
  for (int i = 0; i < 12; ++i) yaml += "  c" + std::to_string(i) + ": {endpoints: [\"10.0.0.1:80\"]}\n";
  const LoadResult result = load(yaml, "t.yaml");
  ASSERT_EQ(result.errors.size(), 1u) << errors_of(result);
  EXPECT_EQ(result.errors[0].to_string(),
            "t.yaml:2:21: routes[0].upstream: unknown upstream \"x\" (defined: c0, c1, c2, c3, c4, c5, c6, c7, c8, "
            "c9 and 2 more)");
}

TEST(Load, RewriteWithoutAnActionIsTwoErrors) {
  const LoadResult result = load(L("routes:\n  - {match: {prefix: /a}, rewrite: {strip_prefix: /a}}\n"), "t.yaml");
  std::vector<std::string> lines;
  for (const Error& e : result.errors) lines.push_back(e.to_string());
  EXPECT_EQ(lines, (std::vector<std::string>{
                       "t.yaml:3:5: routes[0]: a route needs an action (respond, upstream or query)",
                       "t.yaml:3:36: routes[0].rewrite: only allowed with upstream",
                   }));
}

const std::string kBalances = "expected one of: round_robin, least_request, consistent_hash";
const std::string kHashOn = "expected path, header:NAME or cookie:NAME";
const std::string kHealthPath = "must not contain spaces, control characters, non-ASCII bytes or \"#\"";
const std::string kRewritePath = "must not contain spaces, control characters, non-ASCII bytes, \"?\" or \"#\"";
const std::string kBudget = "expected a percentage such as 20% or 20";
const std::string kEndpoint =
    "expected \"host:port\" (e.g. \"10.0.0.7:9000\", \"[::1]:9000\" or \"origin.internal:9000\")";
const std::string kNotAddress =
    " is not an IP address (expected e.g. \"10.0.0.0/8\", \"192.168.1.7\" or \"2001:db8::/32\")";

// Rows whose YAML is one cluster on line 2, after a valid endpoint:
// `upstreams: {web: {endpoints: ["10.0.0.1:80"], <rest>}}`.
ErrorCase cluster_case(std::string name, std::string_view rest, std::string key, int column, std::string reason) {
  return ErrorCase{std::move(name), L("upstreams: {web: {endpoints: [\"10.0.0.1:80\"], " + std::string(rest) + "}}\n"),
                   std::move(key), 2, column, std::move(reason)};
}

// Rows whose YAML is `upstreams: {web: {endpoints: <endpoints>}}` on line 2.
ErrorCase endpoints_case(std::string name, std::string_view endpoints, std::string key, int column,
                         std::string reason) {
  return ErrorCase{std::move(name), L("upstreams: {web: {endpoints: " + std::string(endpoints) + "}}\n"),
                   std::move(key), 2, column, std::move(reason)};
}

// Rows with clusters web and api on line 2 and one route on line 3: `routes: [<route>]`.
ErrorCase route_upstream_case(std::string name, std::string_view route, std::string key, int column,
                              std::string reason) {
  return ErrorCase{std::move(name),
                   L("upstreams: {web: {endpoints: [\"10.0.0.1:80\"]}, api: {endpoints: [\"10.0.0.2:80\"]}}\n"
                     "routes: [" + std::string(route) + "]\n"),
                   std::move(key), 3, column, std::move(reason)};
}

// Rows whose YAML is `proxy: {trusted_proxies: [<entries>]}` on line 2.
ErrorCase proxy_case(std::string name, std::string_view entries, std::string key, int column, std::string reason) {
  return ErrorCase{std::move(name), L("proxy: {trusted_proxies: [" + std::string(entries) + "]}\n"), std::move(key),
                   2, column, std::move(reason)};
}

INSTANTIATE_TEST_SUITE_P(
    Upstreams, LoadError,
    testing::Values(
        ErrorCase{"NotAMapping", L("upstreams: [web]\n"), "upstreams", 2, 12, "expected a mapping"},
        ErrorCase{"NameNotALabel", L("upstreams: {\"w b\": {endpoints: [\"10.0.0.1:80\"]}}\n"), "upstreams.w b", 2,
                  13, "must match [A-Za-z0-9_.-]+"},
        ErrorCase{"DuplicateName",
                  L("upstreams: {web: {endpoints: [\"10.0.0.1:80\"]}, web: {endpoints: [\"10.0.0.2:80\"]}}\n"),
                  "upstreams.web", 2, 48, "duplicate key"},
        ErrorCase{"ClusterNotAMapping", L("upstreams: {web: 1}\n"), "upstreams.web", 2, 18, "expected a mapping"},
        ErrorCase{"EndpointsMissing", L("upstreams:\n  web: {balance: round_robin}\n"), "upstreams.web.endpoints", 3,
                  8, "is required"},
        ErrorCase{"ClusterNull", L("upstreams:\n  web:\n"), "upstreams.web.endpoints", 3, 3, "is required"},
        ErrorCase{"EndpointsNull", L("upstreams:\n  web:\n    endpoints:\n"), "upstreams.web.endpoints", 4, 5,
                  "at least one endpoint is required"},
        cluster_case("UnknownKey", "weight: 1", "upstreams.web.weight", 47, "unknown key"),
        cluster_case("BalanceUnknown", "balance: random", "upstreams.web.balance", 56, kBalances),
        cluster_case("BadBalanceHidesHashOnCheck", "balance: hash, hash_on: path", "upstreams.web.balance", 56,
                     kBalances),
        cluster_case("HashOnWithDefaultBalance", "hash_on: path", "upstreams.web.hash_on", 56,
                     "hash_on needs balance: consistent_hash"),
        cluster_case("HashOnWithLeastRequest", "hash_on: header:X-User, balance: least_request",
                     "upstreams.web.hash_on", 56, "hash_on needs balance: consistent_hash"),
        cluster_case("HashOnUnknownKind", "balance: consistent_hash, hash_on: query:id", "upstreams.web.hash_on", 82,
                     kHashOn),
        cluster_case("HashOnBareHeader", "balance: consistent_hash, hash_on: header", "upstreams.web.hash_on", 82,
                     kHashOn),
        cluster_case("HashOnHeaderNotToken", "balance: consistent_hash, hash_on: \"header:X User\"",
                     "upstreams.web.hash_on", 82, "expected a header name (an RFC 9110 token) after \"header:\""),
        cluster_case("HashOnHeaderEmpty", "balance: consistent_hash, hash_on: \"header:\"", "upstreams.web.hash_on", 82,
                     "expected a header name (an RFC 9110 token) after \"header:\""),
        cluster_case("HashOnCookieNotToken", "balance: consistent_hash, hash_on: \"cookie:a;b\"",
                     "upstreams.web.hash_on", 82, "expected a cookie name (an RFC 9110 token) after \"cookie:\""),
        cluster_case("HashOnList", "balance: consistent_hash, hash_on: [path]", "upstreams.web.hash_on", 82,
                     "expected a string"),
        cluster_case("HostHeaderSpace", "host_header: \"a b\"", "upstreams.web.host_header", 60,
                     "\"a b\" is neither an IP address nor a host name"),
        cluster_case("HostHeaderPortZero", "host_header: \"origin:0\"", "upstreams.web.host_header", 60, kPort),
        cluster_case("HostHeaderBadIPv6", "host_header: \"[::g]\"", "upstreams.web.host_header", 60,
                     "\"::g\" is not an IPv6 address"),
        cluster_case("ResolveIntervalZero", "resolve_interval: 0", "upstreams.web.resolve_interval", 65,
                     "must be greater than 0"),
        cluster_case("HealthCheckNotAMapping", "health_check: /health", "upstreams.web.health_check", 61,
                     "expected a mapping"),
        cluster_case("HealthCheckUnknownKey", "health_check: {expect: 200}", "upstreams.web.health_check.expect", 62,
                     "unknown key"),
        cluster_case("HealthPathNoSlash", "health_check: {path: health}", "upstreams.web.health_check.path", 68,
                     "must start with \"/\""),
        cluster_case("HealthPathSpace", "health_check: {path: \"/a b\"}", "upstreams.web.health_check.path", 68,
                     kHealthPath),
        cluster_case("HealthPathTab", "health_check: {path: \"/a\\tb\"}", "upstreams.web.health_check.path", 68,
                     kHealthPath),
        cluster_case("HealthPathFragment", "health_check: {path: \"/a#b\"}", "upstreams.web.health_check.path", 68,
                     kHealthPath),
        cluster_case("HealthHostWithPath", "health_check: {host: a/b}", "upstreams.web.health_check.host", 68,
                     "\"a/b\" is neither an IP address nor a host name"),
        cluster_case("HealthIntervalBad", "health_check: {interval: 2}", "upstreams.web.health_check.interval", 72,
                     kBadDuration),
        cluster_case("HealthTimeoutZero", "health_check: {timeout: 0ms}", "upstreams.web.health_check.timeout", 71,
                     "must be greater than 0"),
        cluster_case("HealthyZero", "health_check: {healthy: 0}", "upstreams.web.health_check.healthy", 71,
                     "must be between 1 and 100"),
        cluster_case("Unhealthy101", "health_check: {unhealthy: 101}", "upstreams.web.health_check.unhealthy", 73,
                     "must be between 1 and 100"),
        cluster_case("TimeoutsUnknownKey", "timeouts: {read: 1s}", "upstreams.web.timeouts.read", 58, "unknown key"),
        cluster_case("ConnectTimeoutZero", "timeouts: {connect: 0}", "upstreams.web.timeouts.connect", 67,
                     "must be greater than 0"),
        cluster_case("RequestTimeoutOverADay", "timeouts: {request: 2d}", "upstreams.web.timeouts.request", 67,
                     "must be at most 1d"),
        cluster_case("RetriesNotAMapping", "retries: 2", "upstreams.web.retries", 56, "expected a mapping"),
        cluster_case("Attempts11", "retries: {attempts: 11}", "upstreams.web.retries.attempts", 67,
                     "must be between 0 and 10"),
        cluster_case("AttemptsNegative", "retries: {attempts: -1}", "upstreams.web.retries.attempts", 67,
                     "must be between 0 and 10"),
        cluster_case("Budget101", "retries: {budget: 101%}", "upstreams.web.retries.budget", 65,
                     "must be between 0% and 100%"),
        cluster_case("BudgetInteger101", "retries: {budget: 101}", "upstreams.web.retries.budget", 65,
                     "must be between 0% and 100%"),
        cluster_case("BudgetWord", "retries: {budget: lots}", "upstreams.web.retries.budget", 65, kBudget),
        cluster_case("BudgetNegative", "retries: {budget: -5%}", "upstreams.web.retries.budget", 65, kBudget),
        cluster_case("BudgetSpace", "retries: {budget: 20 %}", "upstreams.web.retries.budget", 65, kBudget),
        cluster_case("BudgetFraction", "retries: {budget: 2.5%}", "upstreams.web.retries.budget", 65, kBudget),
        cluster_case("MinConcurrentTooMany", "retries: {min_concurrent: 1000001}",
                     "upstreams.web.retries.min_concurrent", 73, "must be between 0 and 1000000"),
        cluster_case("BackoffAboveDefaultMax", "retries: {backoff: 1s}", "upstreams.web.retries.backoff", 66,
                     "must not exceed max_backoff (250ms)"),
        cluster_case("MaxBackoffBelowDefault", "retries: {max_backoff: 10ms}", "upstreams.web.retries.max_backoff", 70,
                     "must be at least backoff (25ms)"),
        cluster_case("BackoffAboveMax", "retries: {max_backoff: 1s, backoff: 2s}", "upstreams.web.retries.backoff", 83,
                     "must not exceed max_backoff (1s)"),
        cluster_case("MaxConnectionsZero", "limits: {max_connections: 0}", "upstreams.web.limits.max_connections", 73,
                     "must be between 1 and 1000000"),
        cluster_case("MaxPendingTooMany", "limits: {max_pending: 1000001}", "upstreams.web.limits.max_pending", 69,
                     "must be between 1 and 1000000"),
        cluster_case("MaxRequestsWord", "limits: {max_requests: many}", "upstreams.web.limits.max_requests", 70,
                     "expected an integer"),
        cluster_case("LimitsUnknownKey", "limits: {max_retries: 1}", "upstreams.web.limits.max_retries", 56,
                     "unknown key"),
        cluster_case("MaxIdleTooMany", "pool: {max_idle: 10001}", "upstreams.web.pool.max_idle", 64,
                     "must be between 0 and 10000"),
        cluster_case("PoolIdleTimeoutZero", "pool: {idle_timeout: 0s}", "upstreams.web.pool.idle_timeout", 68,
                     "must be greater than 0"),
        cluster_case("MaxRequestsPerConnectionTooMany", "pool: {max_requests_per_connection: 1000001}",
                     "upstreams.web.pool.max_requests_per_connection", 83, "must be between 0 and 1000000"),
        cluster_case("Consecutive5xxTooMany", "outlier: {consecutive_5xx: 1001}",
                     "upstreams.web.outlier.consecutive_5xx", 74, "must be between 0 and 1000"),
        cluster_case("ConsecutiveFailuresWord", "outlier: {consecutive_failures: x}",
                     "upstreams.web.outlier.consecutive_failures", 79, "expected an integer"),
        cluster_case("MaxEjectedPercent101", "outlier: {max_ejected_percent: 101}",
                     "upstreams.web.outlier.max_ejected_percent", 78, "must be between 0 and 100"),
        cluster_case("BaseEjectionAboveDefaultMax", "outlier: {base_ejection: 10m}",
                     "upstreams.web.outlier.base_ejection", 72, "must not exceed max_ejection (5m)"),
        cluster_case("MaxEjectionBelowDefaultBase", "outlier: {max_ejection: 5s}", "upstreams.web.outlier.max_ejection",
                     71, "must be at least base_ejection (10s)"),
        cluster_case("BaseEjectionAboveMax", "outlier: {base_ejection: 90s, max_ejection: 1m}",
                     "upstreams.web.outlier.base_ejection", 72, "must not exceed max_ejection (1m)")),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Endpoints, LoadError,
    testing::Values(
        endpoints_case("NotASequence", "\"10.0.0.1:80\"", "upstreams.web.endpoints", 30, "expected a sequence"),
        endpoints_case("Empty", "[]", "upstreams.web.endpoints", 30, "at least one endpoint is required"),
        endpoints_case("NotAString", "[[a]]", "upstreams.web.endpoints[0]", 31, "expected a string"),
        endpoints_case("NoPort", "[\"10.0.0.1\"]", "upstreams.web.endpoints[0]", 31, kEndpoint),
        endpoints_case("HostNameNoPort", "[origin.internal]", "upstreams.web.endpoints[0]", 31, kEndpoint),
        endpoints_case("EmptyHost", "[\":80\"]", "upstreams.web.endpoints[0]", 31, kEndpoint),
        endpoints_case("PortZero", "[\"10.0.0.1:0\"]", "upstreams.web.endpoints[0]", 31, kPort),
        endpoints_case("PortTooLarge", "[\"origin:65536\"]", "upstreams.web.endpoints[0]", 31, kPort),
        endpoints_case("PortWord", "[\"origin:http\"]", "upstreams.web.endpoints[0]", 31, kPort),
        endpoints_case("PortEmpty", "[\"origin:\"]", "upstreams.web.endpoints[0]", 31, kPort),
        endpoints_case("IPv6WithoutBrackets", "[\"::1:80\"]", "upstreams.web.endpoints[0]", 31,
                       "an IPv6 address needs brackets, e.g. \"[::1]:9000\""),
        endpoints_case("IPv6Unclosed", "[\"[::1:80\"]", "upstreams.web.endpoints[0]", 31,
                       "missing \"]\" after the IPv6 address"),
        endpoints_case("IPv6NoPort", "[\"[::1]\"]", "upstreams.web.endpoints[0]", 31, kEndpoint),
        endpoints_case("BadIPv6", "[\"[::g]:80\"]", "upstreams.web.endpoints[0]", 31, "\"::g\" is not an IPv6 address"),
        endpoints_case("IPv4InBrackets", "[\"[10.0.0.1]:80\"]", "upstreams.web.endpoints[0]", 31,
                       "\"10.0.0.1\" is not an IPv6 address"),
        endpoints_case("BadIPv4", "[\"10.0.0.256:80\"]", "upstreams.web.endpoints[0]", 31,
                       "\"10.0.0.256\" is not a valid IPv4 address"),
        endpoints_case("ShortIPv4", "[\"10.1:80\"]", "upstreams.web.endpoints[0]", 31,
                       "\"10.1\" is not a valid IPv4 address"),
        endpoints_case("BadHostName", "[\"a..b:80\"]", "upstreams.web.endpoints[0]", 31,
                       "\"a..b\" is neither an IP address nor a host name"),
        endpoints_case("HostNameWithSpace", "[\"exa mple:80\"]", "upstreams.web.endpoints[0]", 31,
                       "\"exa mple\" is neither an IP address nor a host name"),
        endpoints_case("HostWithNul", "[\"[::1\\0]:80\"]", "upstreams.web.endpoints[0]", 31,
                       "\"::1" + std::string(1, '\0') + "\" is not an IPv6 address"),
        endpoints_case("Duplicate", "[\"10.0.0.1:80\", origin:80, \"ORIGIN:80\"]", "upstreams.web.endpoints[2]", 57,
                       "duplicate endpoint \"origin:80\" (first at line 2)"),
        endpoints_case("DuplicateIPv6Spelling", "[\"[::1]:80\", \"[0:0::1]:80\"]", "upstreams.web.endpoints[1]", 43,
                       "duplicate endpoint \"[::1]:80\" (first at line 2)")),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    RouteUpstream, LoadError,
    testing::Values(
        ErrorCase{"UnknownClusterNoneDefined", L("routes: [{upstream: web}]\n"), "routes[0].upstream", 2, 21,
                  "unknown upstream \"web\" (defined: none)"},
        // A cluster that has errors is still defined: the route naming it gets no second error.
        ErrorCase{"ClusterWithErrors", L("routes: [{upstream: web}]\nupstreams: {web: {endpoints: []}}\n"),
                  "upstreams.web.endpoints", 3, 30, "at least one endpoint is required"},
        route_upstream_case("BothActions", "{respond: {}, upstream: web}", "routes[0].upstream", 34,
                            "respond and upstream are mutually exclusive"),
        route_upstream_case("UnknownCluster", "{upstream: webb}", "routes[0].upstream", 21,
                            "unknown upstream \"webb\" (defined: web, api)"),
        route_upstream_case("UpstreamNotAString", "{upstream: [web]}", "routes[0].upstream", 21, "expected a string"),
        route_upstream_case("UpstreamNull", "{upstream: }", "routes[0].upstream", 11, "expected a string"),
        route_upstream_case("RewriteWithoutUpstream", "{respond: {}, rewrite: {strip_prefix: /a}}", "routes[0].rewrite",
                            33, "only allowed with upstream"),
        route_upstream_case("TimeoutsWithoutUpstream", "{respond: {}, timeouts: {idle: 1s}}", "routes[0].timeouts", 34,
                            "only allowed with upstream"),
        route_upstream_case("RewriteNotAMapping", "{upstream: web, rewrite: /v1}", "routes[0].rewrite", 35,
                            "expected a mapping"),
        route_upstream_case("RewriteUnknownKey", "{upstream: web, rewrite: {strip: /a}}", "routes[0].rewrite.strip", 36,
                            "unknown key"),
        route_upstream_case("StripPrefixNoSlash", "{upstream: web, rewrite: {strip_prefix: api}}",
                            "routes[0].rewrite.strip_prefix", 50, "must start with \"/\""),
        route_upstream_case("AddPrefixNoSlash", "{upstream: web, rewrite: {add_prefix: v1}}",
                            "routes[0].rewrite.add_prefix", 48, "must start with \"/\""),
        route_upstream_case("AddPrefixQuery", "{upstream: web, rewrite: {add_prefix: \"/v1?a=b\"}}",
                            "routes[0].rewrite.add_prefix", 48, kRewritePath),
        route_upstream_case("AddPrefixNonAscii", "{upstream: web, rewrite: {add_prefix: \"/caf\\xe9\"}}",
                            "routes[0].rewrite.add_prefix", 48, kRewritePath),
        route_upstream_case("StripPrefixSpace", "{upstream: web, rewrite: {strip_prefix: \"/a b\"}}",
                            "routes[0].rewrite.strip_prefix", 50, kRewritePath),
        route_upstream_case("StripPrefixNotPrefixOfPrefix",
                            "{match: {prefix: /api/}, upstream: web, rewrite: {strip_prefix: /v2}}",
                            "routes[0].rewrite.strip_prefix", 74,
                            "strip_prefix /v2 is not a prefix of the route's path /api/"),
        route_upstream_case("StripPrefixLongerThanPrefix",
                            "{match: {prefix: /ap}, upstream: web, rewrite: {strip_prefix: /api}}",
                            "routes[0].rewrite.strip_prefix", 72,
                            "strip_prefix /api is not a prefix of the route's path /ap"),
        route_upstream_case("StripPrefixNotPrefixOfExact",
                            "{upstream: web, match: {path: /v1/x}, rewrite: {strip_prefix: /v2}}",
                            "routes[0].rewrite.strip_prefix", 72,
                            "strip_prefix /v2 is not a prefix of the route's path /v1/x"),
        route_upstream_case("StripPrefixBeforeDefaultMatch", "{rewrite: {strip_prefix: /api}, upstream: web}",
                            "routes[0].rewrite.strip_prefix", 35,
                            "strip_prefix /api is not a prefix of the route's path /"),
        route_upstream_case("BadMatchIsReportedOnce",
                            "{match: {prefix: api}, upstream: web, rewrite: {strip_prefix: /api}}",
                            "routes[0].match.prefix", 27, "must start with \"/\""),
        route_upstream_case("TimeoutsNotAMapping", "{upstream: web, timeouts: 5s}", "routes[0].timeouts", 36,
                            "expected a mapping"),
        route_upstream_case("TimeoutsConnect", "{upstream: web, timeouts: {connect: 1s}}", "routes[0].timeouts.connect",
                            37, "unknown key"),
        route_upstream_case("TimeoutsFirstByteZero", "{upstream: web, timeouts: {first_byte: 0}}",
                            "routes[0].timeouts.first_byte", 49, "must be greater than 0"),
        route_upstream_case("TimeoutsIdleBad", "{upstream: web, timeouts: {idle: soon}}", "routes[0].timeouts.idle", 43,
                            kBadDuration),
        route_upstream_case("TimeoutsRequestOverADay", "{upstream: web, timeouts: {request: 25h}}",
                            "routes[0].timeouts.request", 46, "must be at most 1d")),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    Proxy, LoadError,
    testing::Values(
        ErrorCase{"NotAMapping", L("proxy: [a]\n"), "proxy", 2, 8, "expected a mapping"},
        ErrorCase{"UnknownKey", L("proxy: {trusted: []}\n"), "proxy.trusted", 2, 9, "unknown key"},
        ErrorCase{"TrustedNotASequence", L("proxy: {trusted_proxies: 10.0.0.0/8}\n"), "proxy.trusted_proxies", 2, 26,
                  "expected a sequence"},
        ErrorCase{"ViaNotBool", L("proxy: {via: yes}\n"), "proxy.via", 2, 14, "expected a boolean (true or false)"},
        proxy_case("BadAddress", "\"10.0.0/8\"", "proxy.trusted_proxies[0]", 27, "\"10.0.0\"" + kNotAddress),
        proxy_case("HostName", "localhost", "proxy.trusted_proxies[0]", 27, "\"localhost\"" + kNotAddress),
        proxy_case("Empty", "\"\"", "proxy.trusted_proxies[0]", 27, "\"\"" + kNotAddress),
        proxy_case("ZoneId", "\"fe80::1%eth0\"", "proxy.trusted_proxies[0]", 27, "\"fe80::1%eth0\"" + kNotAddress),
        proxy_case("IPv4WithPort", "\"10.0.0.1:80\"", "proxy.trusted_proxies[0]", 27, "\"10.0.0.1:80\"" + kNotAddress),
        proxy_case("V4PrefixTooLong", "\"10.0.0.0/33\"", "proxy.trusted_proxies[0]", 27,
                   "the prefix length after \"/\" must be between 0 and 32"),
        proxy_case("V4PrefixEmpty", "\"10.0.0.0/\"", "proxy.trusted_proxies[0]", 27,
                   "the prefix length after \"/\" must be between 0 and 32"),
        proxy_case("V4PrefixNegative", "\"10.0.0.0/-1\"", "proxy.trusted_proxies[0]", 27,
                   "the prefix length after \"/\" must be between 0 and 32"),
        proxy_case("V6PrefixTooLong", "\"::1/129\"", "proxy.trusted_proxies[0]", 27,
                   "the prefix length after \"/\" must be between 0 and 128"),
        proxy_case("V4HostBits", "\"192.168.0.0/16\", \"10.1.0.0/8\"", "proxy.trusted_proxies[1]", 45,
                   "\"10.1.0.0/8\" has address bits set after its /8 prefix (did you mean \"10.0.0.0/8\"?)"),
        proxy_case("V6HostBits", "\"2001:db8::1/32\"", "proxy.trusted_proxies[0]", 27,
                   "\"2001:db8::1/32\" has address bits set after its /32 prefix (did you mean \"2001:db8::/32\"?)"),
        proxy_case("EntryNotAString", "[a]", "proxy.trusted_proxies[0]", 27, "expected a string")),
    [](const auto& info) { return info.param.name; });

// ---- edge cache, admin, a route's cache block ------------------------------------------------------------

constexpr std::string_view kCache = R"(listeners: [{name: a, address: "127.0.0.1:80"}]
upstreams: {web: {endpoints: ["127.0.0.1:9000"]}}
cache:
  edge: {max_bytes: 1GiB, max_object_bytes: 16MiB, shards: 64}
admin:
  token: "s3cr3t-t0ken_abc.~+/="
routes:
  - name: customers
    match: {path: "/v1/customers/{customer_id:int64}/orders/{order}"}
    upstream: web
    cache:
      edge_ttl: 60s
      key:
        headers: [Accept-Language, X-Tenant]
        query: [page, sort]
        cookies: [tier]
      tags: ["customer:{customer_id}", "order:{customer_id}:{order}", static]
      scope: private
      store_set_cookie: true
      negative_ttl: 0
      stale_while_revalidate: 30s
      stale_if_error: 1d
  - name: assets
    match: {prefix: /static/}
    upstream: web
    cache: {key: {ignore_query: true}}
  - name: plain
    upstream: web
)";

TEST(Load, CacheRoundTrip) {
  const Config config = load_ok(kCache);
  EXPECT_EQ(config.cache.edge.max_bytes, 1024u * 1024 * 1024);
  EXPECT_EQ(config.cache.edge.max_object_bytes, 16u * 1024 * 1024);
  EXPECT_EQ(config.cache.edge.shards, 64u);
  EXPECT_EQ(config.admin.token, "s3cr3t-t0ken_abc.~+/=");
  EXPECT_FALSE(config.admin.token_file.has_value());

  ASSERT_EQ(config.routes.size(), 3u);
  ASSERT_TRUE(config.routes[0].cache.has_value());
  const RouteCache& c = *config.routes[0].cache;
  EXPECT_EQ(c.location.line, 12);  // where the block's value starts
  EXPECT_EQ(c.location.column, 7);
  EXPECT_EQ(c.edge_ttl, seconds(60));
  EXPECT_EQ(c.key.headers, (std::vector<std::string>{"accept-language", "x-tenant"}));
  EXPECT_EQ(c.key.query, (std::vector<std::string>{"page", "sort"}));
  EXPECT_FALSE(c.key.ignore_query);
  EXPECT_EQ(c.key.cookies, (std::vector<std::string>{"tier"}));
  EXPECT_EQ(c.tags, (std::vector<std::string>{"customer:{customer_id}", "order:{customer_id}:{order}", "static"}));
  EXPECT_EQ(c.scope, CacheScope::private_);
  EXPECT_TRUE(c.store_set_cookie);
  EXPECT_EQ(c.negative_ttl, seconds(0));
  EXPECT_EQ(c.stale_while_revalidate, seconds(30));
  EXPECT_EQ(c.stale_if_error, std::chrono::hours(24));

  ASSERT_TRUE(config.routes[1].cache.has_value());
  const RouteCache& d = *config.routes[1].cache;  // only ignore_query set: every other field at its default
  const RouteCache defaults;
  EXPECT_TRUE(d.key.ignore_query);
  EXPECT_FALSE(d.edge_ttl.has_value());
  EXPECT_TRUE(d.key.headers.empty());
  EXPECT_TRUE(d.key.query.empty());
  EXPECT_TRUE(d.key.cookies.empty());
  EXPECT_TRUE(d.tags.empty());
  EXPECT_EQ(d.scope, CacheScope::public_);
  EXPECT_FALSE(d.store_set_cookie);
  EXPECT_EQ(d.negative_ttl, seconds(10));
  EXPECT_EQ(d.negative_ttl, defaults.negative_ttl);
  EXPECT_EQ(d.stale_while_revalidate, seconds(0));
  EXPECT_EQ(d.stale_if_error, seconds(0));
  EXPECT_FALSE(config.routes[2].cache.has_value());
}

TEST(Load, CacheAndAdminDefaults) {
  const Config config = load_ok(L("cache:\nadmin:\nroutes: [{upstream: web, cache: {}}]\n"
                                  "upstreams: {web: {endpoints: [\"10.0.0.1:80\"]}}\n"));
  EXPECT_EQ(config.cache.edge.max_bytes, 512u * 1024 * 1024);
  EXPECT_EQ(config.cache.edge.max_object_bytes, 8u * 1024 * 1024);
  EXPECT_EQ(config.cache.edge.shards, 0u);
  EXPECT_EQ(config.admin.token, "");
  EXPECT_FALSE(config.admin.token_file.has_value());
  ASSERT_TRUE(config.routes[0].cache.has_value());
  EXPECT_FALSE(config.routes[0].cache->edge_ttl.has_value());
  EXPECT_EQ(config.routes[0].cache->negative_ttl, seconds(10));
}

TEST(Load, CacheEdgeCases) {
  const Config config = load_ok(L("cache: {edge: {shards: auto, max_bytes: 1MiB, max_object_bytes: 1MiB}}\n"
                                  "admin: {token_file: /etc/virex-edge/admin.token}\n"
                                  "upstreams: {web: {endpoints: [\"10.0.0.1:80\"]}}\n"
                                  "routes:\n"
                                  "  - {upstream: web, cache: {edge_ttl: 1h, negative_ttl: 1h, tags: [\"{x}y\"]},\n"
                                  "     match: {path: \"/a/{x}\"}}\n"
                                  "  - {upstream: web, cache: {edge_ttl: 1s, stale_if_error: 0s, key: {query: []}}}\n"));
  EXPECT_EQ(config.cache.edge.shards, 0u);
  EXPECT_EQ(config.cache.edge.max_bytes, 1024u * 1024);
  ASSERT_TRUE(config.admin.token_file.has_value());
  EXPECT_EQ(*config.admin.token_file, "/etc/virex-edge/admin.token");
  EXPECT_EQ(config.admin.token_file_location.line, 3);
  EXPECT_EQ(config.routes[0].cache->edge_ttl, std::chrono::hours(1));
  EXPECT_EQ(config.routes[0].cache->tags, (std::vector<std::string>{"{x}y"}));
  EXPECT_EQ(config.routes[1].cache->edge_ttl, seconds(1));
}

TEST(AdminToken, Rules) {
  EXPECT_EQ(admin_token_error("0123456789abcdef"), "");
  EXPECT_EQ(admin_token_error("AbC-._~+/0123456=="), "");
  EXPECT_EQ(admin_token_error("0123456789abcde"), "must be at least 16 characters");
  const std::string chars = "expected a bearer token: letters, digits and - . _ ~ + /, then optional \"=\" padding";
  EXPECT_EQ(admin_token_error(""), chars);
  EXPECT_EQ(admin_token_error("================"), chars);
  EXPECT_EQ(admin_token_error("0123456789 abcdef"), chars);
  EXPECT_EQ(admin_token_error("0123456789=abcdef"), chars);
  EXPECT_EQ(admin_token_error("0123456789abcdef\n"), chars);
}

const std::string kWholeSeconds = "must be a whole number of seconds";
const std::string kCacheDuration = "expected a duration such as 10s, 5m or 1h";
const std::string kTagChars = "a tag is visible ASCII without spaces, commas, quotes or backslashes";

// Rows with cluster web on line 2 and one route on line 3: `routes: [{upstream: web, cache: <cache>}]`; the
// cache value starts at column 34.
ErrorCase route_cache_case(std::string name, std::string_view cache, std::string key, int column, std::string reason) {
  return ErrorCase{std::move(name),
                   L("upstreams: {web: {endpoints: [\"10.0.0.1:80\"]}}\nroutes: [{upstream: web, cache: " +
                     std::string(cache) + "}]\n"),
                   std::move(key), 3, column, std::move(reason)};
}

// Rows whose route matches a template on line 3 and has `cache: {tags: [<tags>]}`; the first tag is at column 77.
ErrorCase tag_case(std::string name, std::string_view tags, std::string key, int column, std::string reason) {
  return ErrorCase{std::move(name),
                   L("upstreams: {web: {endpoints: [\"10.0.0.1:80\"]}}\nroutes: [{match: {path: \"/c/{id}/{n:int64}\"}, "
                     "upstream: web, cache: {tags: [" + std::string(tags) + "]}}]\n"),
                   std::move(key), 3, column, std::move(reason)};
}

INSTANTIATE_TEST_SUITE_P(
    Cache, LoadError,
    testing::Values(
        ErrorCase{"CacheNotAMapping", L("cache: 1\n"), "cache", 2, 8, "expected a mapping"},
        ErrorCase{"CacheUnknownKey", L("cache: {l2: {}}\n"), "cache.l2", 2, 9, "unknown key"},
        ErrorCase{"EdgeUnknownKey", L("cache: {edge: {max_entries: 1}}\n"), "cache.edge.max_entries", 2, 16,
                  "unknown key"},
        ErrorCase{"MaxBytesTooSmall", L("cache: {edge: {max_bytes: 1KiB}}\n"), "cache.edge.max_bytes", 2, 27,
                  "must be at least 1MiB"},
        ErrorCase{"MaxBytesWord", L("cache: {edge: {max_bytes: lots}}\n"), "cache.edge.max_bytes", 2, 27, kBadSize},
        ErrorCase{"MaxObjectTooSmall", L("cache: {edge: {max_object_bytes: 100}}\n"), "cache.edge.max_object_bytes",
                  2, 34, "must be at least 1KiB"},
        ErrorCase{"MaxObjectAboveMaxBytes", L("cache: {edge: {max_bytes: 4MiB, max_object_bytes: 5MiB}}\n"),
                  "cache.edge.max_object_bytes", 2, 51, "must not exceed max_bytes (4194304)"},
        ErrorCase{"MaxBytesBelowDefaultObject", L("cache: {edge: {max_bytes: 4MiB}}\n"), "cache.edge.max_bytes", 2,
                  27, "must be at least max_object_bytes (8388608)"},
        ErrorCase{"ShardsTooMany", L("cache: {edge: {shards: 1025}}\n"), "cache.edge.shards", 2, 24,
                  "must be between 0 and 1024"},
        ErrorCase{"ShardsWord", L("cache: {edge: {shards: many}}\n"), "cache.edge.shards", 2, 24,
                  "expected an integer"},
        ErrorCase{"AdminNotAMapping", L("admin: secret\n"), "admin", 2, 8, "expected a mapping"},
        ErrorCase{"AdminUnknownKey", L("admin: {password: x}\n"), "admin.password", 2, 9, "unknown key"},
        ErrorCase{"AdminTokenShort", L("admin: {token: short}\n"), "admin.token", 2, 16,
                  "must be at least 16 characters"},
        ErrorCase{"AdminTokenSpace", L("admin: {token: \"0123456789 abcdef\"}\n"), "admin.token", 2, 16,
                  "expected a bearer token: letters, digits and - . _ ~ + /, then optional \"=\" padding"},
        ErrorCase{"AdminTokenNotAString", L("admin: {token: [a]}\n"), "admin.token", 2, 16, "expected a string"},
        ErrorCase{"AdminBoth", L("admin: {token: 0123456789abcdef, token_file: /t}\n"), "admin.token_file", 2, 46,
                  "token and token_file are mutually exclusive"},
        ErrorCase{"AdminTokenFileEmpty", L("admin: {token_file: \"\"}\n"), "admin.token_file", 2, 21,
                  "must not be empty"}),
    [](const auto& info) { return info.param.name; });

INSTANTIATE_TEST_SUITE_P(
    RouteCache, LoadError,
    testing::Values(
        ErrorCase{"WithoutUpstream", L("routes: [{respond: {}, cache: {edge_ttl: 5s}}]\n"), "routes[0].cache", 2, 31,
                  "only allowed with upstream or query"},
        route_cache_case("NotAMapping", "60s", "routes[0].cache", 33, "expected a mapping"),
        route_cache_case("UnknownKey", "{ttl: 60s}", "routes[0].cache.ttl", 34, "unknown key"),
        route_cache_case("EdgeTtlZero", "{edge_ttl: 0s}", "routes[0].cache.edge_ttl", 44, "must be between 1s and 1h"),
        route_cache_case("EdgeTtlOverAnHour", "{edge_ttl: 61m}", "routes[0].cache.edge_ttl", 44,
                         "must be between 1s and 1h"),
        route_cache_case("EdgeTtlMilliseconds", "{edge_ttl: 1500ms}", "routes[0].cache.edge_ttl", 44, kWholeSeconds),
        route_cache_case("EdgeTtlWord", "{edge_ttl: long}", "routes[0].cache.edge_ttl", 44, kCacheDuration),
        route_cache_case("NegativeTtlOverAnHour", "{negative_ttl: 2h}", "routes[0].cache.negative_ttl", 48,
                         "must be between 0s and 1h"),
        route_cache_case("SwrOverADay", "{stale_while_revalidate: 25h}", "routes[0].cache.stale_while_revalidate",
                         58, "must be between 0s and 1d"),
        route_cache_case("SieFraction", "{stale_if_error: 100ms}", "routes[0].cache.stale_if_error", 50,
                         kWholeSeconds),
        route_cache_case("ScopeBad", "{scope: shared}", "routes[0].cache.scope", 41,
                         "expected one of: public, private"),
        route_cache_case("StoreSetCookieNotBool", "{store_set_cookie: 1}", "routes[0].cache.store_set_cookie", 52,
                         "expected a boolean (true or false)"),
        route_cache_case("KeyNotAMapping", "{key: [a]}", "routes[0].cache.key", 39, "expected a mapping"),
        route_cache_case("KeyUnknown", "{key: {paths: []}}", "routes[0].cache.key.paths", 40, "unknown key"),
        route_cache_case("KeyHeaderNotToken", "{key: {headers: [\"a b\"]}}", "routes[0].cache.key.headers[0]", 50,
                         "expected a header name (an RFC 9110 token)"),
        route_cache_case("KeyHeaderHost", "{key: {headers: [Host]}}", "routes[0].cache.key.headers[0]", 50,
                         "the host is always part of the key"),
        route_cache_case("KeyHeaderCookie", "{key: {headers: [cookie]}}", "routes[0].cache.key.headers[0]", 50,
                         "list cookies under key.cookies"),
        route_cache_case("KeyHeaderDuplicate", "{key: {headers: [X-A, x-a]}}", "routes[0].cache.key.headers[1]", 55,
                         "duplicate \"x-a\" (names are case-insensitive)"),
        route_cache_case("KeyQueryEmpty", "{key: {query: [\"\"]}}", "routes[0].cache.key.query[0]", 48,
                         "must not be empty"),
        route_cache_case("KeyQueryAmpersand", "{key: {query: [\"a&b\"]}}", "routes[0].cache.key.query[0]", 48,
                         "a query parameter name has no \"&\", \"=\", \"#\", \"?\", spaces or control characters"),
        route_cache_case("KeyQueryDuplicate", "{key: {query: [a, a]}}", "routes[0].cache.key.query[1]", 51,
                         "duplicate \"a\""),
        route_cache_case("KeyQueryAndIgnore", "{key: {query: [a], ignore_query: true}}",
                         "routes[0].cache.key.ignore_query", 66,
                         "ignore_query: true leaves out the query that key.query selects from"),
        route_cache_case("KeyIgnoreNotBool", "{key: {ignore_query: yes}}", "routes[0].cache.key.ignore_query", 54,
                         "expected a boolean (true or false)"),
        route_cache_case("KeyCookieNotToken", "{key: {cookies: [\"a=b\"]}}", "routes[0].cache.key.cookies[0]", 50,
                         "expected a cookie name (an RFC 9110 token)"),
        route_cache_case("KeyCookieDuplicateCaseSensitive", "{key: {cookies: [a, A, a]}}",
                         "routes[0].cache.key.cookies[2]", 56, "duplicate \"a\""),
        route_cache_case("TagsNotASequence", "{tags: static}", "routes[0].cache.tags", 40, "expected a sequence"),
        route_cache_case("TagCaptureOnPrefixRoute", "{tags: [\"c:{id}\"]}", "routes[0].cache.tags[0]", 41,
                         "{id} is not a capture of the route's path /"),
        tag_case("UnknownCapture", "\"c:{customer}\"", "routes[0].cache.tags[0]", 77,
                 "{customer} is not a capture of the route's path /c/{id}/{n:int64}"),
        tag_case("TypeInTag", "\"c:{n:int64}\"", "routes[0].cache.tags[0]", 77,
                 "bad capture name \"n:int64\" (expected [a-z_][a-z0-9_]*)"),
        tag_case("Unclosed", "\"c:{id\"", "routes[0].cache.tags[0]", 77, "unbalanced braces in tag template"),
        tag_case("Nested", "\"{{id}}\"", "routes[0].cache.tags[0]", 77, "unbalanced braces in tag template"),
        tag_case("StrayClose", "\"c}\"", "routes[0].cache.tags[0]", 77, "unbalanced braces in tag template"),
        tag_case("Space", "\"a b\"", "routes[0].cache.tags[0]", 77, kTagChars),
        tag_case("Comma", "\"a,b\"", "routes[0].cache.tags[0]", 77, kTagChars),
        tag_case("Empty", "\"\"", "routes[0].cache.tags[0]", 77, "must not be empty"),
        tag_case("TooLong", "\"" + std::string(129, 'x') + "\"", "routes[0].cache.tags[0]", 77,
                 "must be at most 128 bytes"),
        tag_case("Duplicate", "\"c:{id}\", \"c:{id}\"", "routes[0].cache.tags[1]", 87, "duplicate tag \"c:{id}\""),
        // A bad match is reported once; its captures are not checked against.
        ErrorCase{"BadMatchIsReportedOnce",
                  L("upstreams: {web: {endpoints: [\"10.0.0.1:80\"]}}\n"
                    "routes: [{match: {path: \"/c/{id\"}, upstream: web, cache: {tags: [\"{x}\"]}}]\n"),
                  "routes[0].match.path", 3, 25, "unbalanced braces in path template"}),
    [](const auto& info) { return info.param.name; });


// ---- the regional tier: cache.regional and a route's regional_ttl / identity ------------------------------

TEST(Load, RegionalRoundTripAndDefaults) {
  const Config d = load_ok(std::string(kListener));
  EXPECT_FALSE(d.cache.regional.enabled);
  const Config c = load_ok(std::string(kListener) + R"(upstreams: {web: {endpoints: ["127.0.0.1:9000"]}}
cache:
  regional:
    redis: {address: "redis.internal:6380", pool: 2, timeout: 20ms, connect_timeout: 1s, prefix: "r1:",
            max_in_flight: 100, max_value_bytes: 64KiB}
    breaker: {failures: 3, open_for: 500ms}
    tag_ttl: 30m
routes:
  - name: a
    upstream: web
    cache: {edge_ttl: 30s, regional_ttl: 10m}
  - name: b
    upstream: web
    cache: {regional_ttl: 1h, regional_ttl_override: true, scope: private, identity: {cookie: session}}
  - name: c
    upstream: web
    cache: {regional_ttl_override: true, regional_ttl: 2s, scope: private, identity: {header: X-User}}
)");
  const RegionalCache& r = c.cache.regional;
  EXPECT_TRUE(r.enabled);
  EXPECT_EQ(r.host, "redis.internal");
  EXPECT_EQ(r.port, 6380);
  EXPECT_EQ(r.pool, 2u);
  EXPECT_EQ(r.timeout, milliseconds(20));
  EXPECT_EQ(r.connect_timeout, seconds(1));
  EXPECT_EQ(r.prefix, "r1:");
  EXPECT_EQ(r.max_in_flight, 100u);
  EXPECT_EQ(r.max_value_bytes, 64u * 1024);
  EXPECT_EQ(r.breaker_failures, 3u);
  EXPECT_EQ(r.breaker_open, milliseconds(500));
  EXPECT_EQ(r.tag_ttl, std::chrono::minutes(30));
  EXPECT_EQ(c.routes[0].cache->regional_ttl, std::chrono::minutes(10));
  EXPECT_EQ(c.routes[1].cache->regional_ttl, std::chrono::hours(1));
  EXPECT_EQ(c.routes[1].cache->identity_from, RouteCache::IdentityFrom::cookie);
  EXPECT_EQ(c.routes[1].cache->identity_name, "session");
  EXPECT_EQ(c.routes[2].cache->regional_ttl, seconds(2));
  EXPECT_EQ(c.routes[2].cache->identity_from, RouteCache::IdentityFrom::header);
  EXPECT_EQ(c.routes[2].cache->identity_name, "x-user");
  const Config u = load_ok(std::string(kListener) + "cache: {regional: {redis: {address: \"unix:/run/redis.sock\"}}}\n");
  EXPECT_EQ(u.cache.regional.unix_path, "/run/redis.sock");
  const Config v6 = load_ok(std::string(kListener) + "cache: {regional: {redis: {address: \"[::1]:7000\"}}}\n");
  EXPECT_EQ(v6.cache.regional.host, "::1");
  EXPECT_EQ(v6.cache.regional.port, 7000);
  const Config list = load_ok(std::string(kListener) +
                              "cache: {regional: {redis: {address: [\"10.0.0.5:6379\", \"unix:/run/r.sock\", \"r2:6380\"]}}}\n");
  EXPECT_EQ(list.cache.regional.host, "10.0.0.5");
  ASSERT_EQ(list.cache.regional.fallbacks.size(), 2u);
  EXPECT_EQ(list.cache.regional.fallbacks[0].unix_path, "/run/r.sock");
  EXPECT_EQ(list.cache.regional.fallbacks[1].host, "r2");
  EXPECT_EQ(list.cache.regional.fallbacks[1].port, 6380);
  EXPECT_EQ(list.cache.regional.address, "10.0.0.5:6379, unix:/run/r.sock, r2:6380");
}

const std::string kRedisAddress = "expected host:port (an IPv4 address, [IPv6 address] or DNS name) or unix:/path";
const std::string kRegionalUpstream = "upstreams: {web: {endpoints: [\"10.0.0.1:80\"]}}\n";
const std::string kRegionalOn = "cache: {regional: {redis: {}}}\n";

INSTANTIATE_TEST_SUITE_P(
    Regional, LoadError,
    testing::Values(
        ErrorCase{"NoRedis", L("cache: {regional: {}}\n"), "cache.regional", 2, 19, "needs redis: {address: ...}"},
        ErrorCase{"AddressNoPort", L("cache: {regional: {redis: {address: localhost}}}\n"), "cache.regional.redis.address",
                  2, 37, kRedisAddress},
        ErrorCase{"AddressBadPort", L("cache: {regional: {redis: {address: \"h:70000\"}}}\n"),
                  "cache.regional.redis.address", 2, 37, "the port must be between 1 and 65535"},
        ErrorCase{"AddressEmptyList", L("cache: {regional: {redis: {address: []}}}\n"), "cache.regional.redis.address",
                  2, 37, "expected at least one address"},
        ErrorCase{"AddressBadListItem", L("cache: {regional: {redis: {address: [\"a:1\", b]}}}\n"),
                  "cache.regional.redis.address[1]", 2, 45, kRedisAddress},
        ErrorCase{"AddressRelativeUnix", L("cache: {regional: {redis: {address: \"unix:r.sock\"}}}\n"),
                  "cache.regional.redis.address", 2, 37, "expected unix:/absolute/path"},
        ErrorCase{"PoolTooBig", L("cache: {regional: {redis: {pool: 17}}}\n"), "cache.regional.redis.pool", 2, 34,
                  "must be between 1 and 16"},
        ErrorCase{"TimeoutZero", L("cache: {regional: {redis: {timeout: 0ms}}}\n"), "cache.regional.redis.timeout",
                  2, 37, "must be greater than 0"},
        ErrorCase{"PrefixSpace", L("cache: {regional: {redis: {prefix: \"a b\"}}}\n"), "cache.regional.redis.prefix",
                  2, 36, "at most 64 characters, no spaces or control characters"},
        ErrorCase{"ValueTooSmall", L("cache: {regional: {redis: {max_value_bytes: 10}}}\n"),
                  "cache.regional.redis.max_value_bytes", 2, 45, "must be between 1024 and 536870912 bytes"},
        ErrorCase{"RedisUnknownKey", L("cache: {regional: {redis: {db: 1}}}\n"), "cache.regional.redis.db", 2, 28,
                  "unknown key"},
        ErrorCase{"BreakerFailuresZero", L("cache: {regional: {redis: {}, breaker: {failures: 0}}}\n"),
                  "cache.regional.breaker.failures", 2, 51, "must be between 1 and 1000"},
        route_cache_case("RegionalTtlTooShort", "{regional_ttl: 4m}", "routes[0].cache.regional_ttl", 48,
                         "must be between 5m and 15m (set regional_ttl_override: true for other values)"),
        route_cache_case("RegionalTtlTooLong", "{regional_ttl: 16m}", "routes[0].cache.regional_ttl", 48,
                         "must be between 5m and 15m (set regional_ttl_override: true for other values)"),
        route_cache_case("RegionalTtlFraction", "{regional_ttl: 300500ms}", "routes[0].cache.regional_ttl", 48,
                         "must be a whole number of seconds"),
        route_cache_case("RegionalTtlOverrideBound", "{regional_ttl: 2d, regional_ttl_override: true}",
                         "routes[0].cache.regional_ttl", 48, "must be between 1s and 1d"),
        route_cache_case("RegionalTtlWithoutTier", "{regional_ttl: 10m}", "routes[0].cache.regional_ttl", 48,
                         "needs cache.regional.redis (no regional tier is configured)"),
        route_cache_case("IdentityOnPublic", "{identity: {header: X-User}}", "routes[0].cache.identity", 44,
                         "only with scope: private and regional_ttl (the per-user regional key)"),
        ErrorCase{"IdentityBadHeader",
                  L(kRegionalUpstream + kRegionalOn +
                    "routes: [{upstream: web, cache: {scope: private, regional_ttl: 10m, identity: {header: \"a b\"}}}]\n"),
                  "routes[0].cache.identity.header", 4, 88, "expected a header name (an RFC 9110 token)"}),
    [](const auto& info) { return info.param.name; });

// The reference's commented-out `cache.regional` block, uncommented, is valid and spells out the defaults.
TEST(Load, ShippedRegionalBlockIsValidAndSpellsTheDefaults) {
  std::istringstream in(read_source_file("config/edge.yaml"));
  std::string text, line;
  bool block = false;
  while (std::getline(in, line)) {
    if (line.rfind("  # regional:", 0) == 0) block = true;
    else if (block && line.rfind("  #", 0) != 0) block = false;
    if (block && line.rfind("  # ", 0) == 0) line = "  " + line.substr(4);
    text += line + "\n";
  }
  ASSERT_NE(text.find("\n  regional:\n    redis:"), std::string::npos) << "the block was not found";
  const LoadResult result = load(text, "config/edge.yaml");
  ASSERT_TRUE(result.errors.empty()) << errors_of(result);
  const RegionalCache& r = result.config->cache.regional;
  const RegionalCache d;
  EXPECT_TRUE(r.enabled);
  EXPECT_EQ(r.address, d.address);
  EXPECT_EQ(r.host, d.host);
  EXPECT_EQ(r.port, d.port);
  EXPECT_EQ(r.pool, d.pool);
  EXPECT_EQ(r.timeout, d.timeout);
  EXPECT_EQ(r.connect_timeout, d.connect_timeout);
  EXPECT_EQ(r.prefix, d.prefix);
  EXPECT_EQ(r.max_in_flight, d.max_in_flight);
  EXPECT_EQ(r.max_value_bytes, d.max_value_bytes);
  EXPECT_EQ(r.breaker_failures, d.breaker_failures);
  EXPECT_EQ(r.breaker_open, d.breaker_open);
  EXPECT_EQ(r.tag_ttl, d.tag_ttl);
}

TEST(Load, PrivateRegionalRouteNeedsIdentity) {
  const LoadResult r = load(std::string(kListener) + kRegionalUpstream + kRegionalOn +
                                "routes: [{upstream: web, cache: {scope: private, regional_ttl: 10m}}]\n",
                            "t.yaml");
  ASSERT_EQ(r.errors.size(), 1u) << errors_of(r);
  EXPECT_EQ(r.errors[0].key, "routes[0].cache.regional_ttl");
  EXPECT_EQ(r.errors[0].reason, "a private route cached regionally needs identity: {header: NAME} or {cookie: NAME}");
}

// ---- listener transport (`protocols:`, `tls:`) and `limits.http2` ---------------------------------------------

TEST(Load, ListenerTransportDefaultsAndValues) {
  const Config plain = load_ok(kListener);
  ASSERT_EQ(plain.listeners.size(), 1u);
  EXPECT_EQ(plain.listeners[0].protocols, std::vector<Protocol>{Protocol::http1});
  EXPECT_FALSE(plain.listeners[0].tls.has_value());
  const Config c = load_ok(
      "listeners:\n"
      "  - {name: a, address: \"127.0.0.1:80\", protocols: [http1, h2c]}\n"
      "  - name: b\n"
      "    address: \"127.0.0.1:443\"\n"
      "    protocols: [h2, http1]\n"
      "    tls:\n"
      "      certificates: [{cert: a.crt, key: a.key, ocsp_staple: a.der}, {cert: b.crt, key: b.key}]\n"
      "      min_version: \"1.3\"\n"
      "      session_tickets: false\n"
      "      ocsp_staple: x.der\n");
  EXPECT_EQ(c.listeners[0].protocols, (std::vector<Protocol>{Protocol::http1, Protocol::h2c}));
  const Listener& b = c.listeners[1];
  EXPECT_EQ(b.protocols, (std::vector<Protocol>{Protocol::h2, Protocol::http1}));
  ASSERT_TRUE(b.tls.has_value());
  ASSERT_EQ(b.tls->certificates.size(), 2u);
  EXPECT_EQ(b.tls->certificates[0].cert, "a.crt");
  EXPECT_EQ(b.tls->certificates[0].key, "a.key");
  EXPECT_EQ(b.tls->certificates[0].ocsp_staple, "a.der");
  EXPECT_EQ(b.tls->certificates[0].key_location.line, 7);
  EXPECT_FALSE(b.tls->certificates[1].ocsp_staple.has_value());
  EXPECT_EQ(b.tls->min_version, TlsVersion::tls13);
  EXPECT_FALSE(b.tls->session_tickets);
  EXPECT_EQ(b.tls->ocsp_staple, "x.der");
}

TEST(Load, ListenerTransportErrors) {
  const auto first_error = [](std::string_view yaml) {
    const LoadResult r = load(yaml, "t.yaml");
    return r.errors.empty() ? std::string() : r.errors.front().to_string();
  };
  EXPECT_EQ(first_error("listeners: [{name: a, address: \"127.0.0.1:80\", protocols: [http3]}]\n"),
            "t.yaml:1:60: listeners[0].protocols[0]: expected one of: http1, h2c, h2");
  EXPECT_NE(first_error("listeners: [{name: a, address: \"127.0.0.1:80\", protocols: [http1, http1]}]\n")
                .find("duplicate protocol http1"), std::string::npos);
  EXPECT_NE(first_error("listeners: [{name: a, address: \"127.0.0.1:80\", protocols: []}]\n")
                .find("expected at least one protocol"), std::string::npos);
  EXPECT_NE(first_error("listeners: [{name: a, address: \"127.0.0.1:80\", protocols: [h2]}]\n")
                .find("h2 is HTTP/2 over TLS and needs tls:"), std::string::npos);
  EXPECT_NE(first_error("listeners: [{name: a, address: \"127.0.0.1:80\", tls: {certificates: [{cert: \"\", key: k}]}}]\n")
                .find("listeners[0].tls.certificates[0].cert: must not be empty"), std::string::npos);
  EXPECT_NE(first_error("listeners: [{name: a, address: \"127.0.0.1:80\", tls: {certificates: [{cert: c, key: k}], bogus: 1}}]\n")
                .find("listeners[0].tls.bogus: unknown key"), std::string::npos);
}

TEST(Load, Http2LimitsDefaultsAndBounds) {
  const Http2Limits d = load_ok(kListener).limits.http2;
  EXPECT_EQ(d.max_concurrent_streams, 100u);
  EXPECT_EQ(d.max_header_list_size, 64u * 1024);
  EXPECT_EQ(d.max_header_count, 128u);
  EXPECT_EQ(d.hpack_table_size, 4096u);
  EXPECT_EQ(d.max_continuation_frames, 8u);
  EXPECT_EQ(d.max_stalled_bytes, 1024u * 1024);
  EXPECT_EQ(d.max_resets_per_second, 100u);
  EXPECT_EQ(d.max_pings_per_second, 10u);
  EXPECT_EQ(d.max_settings_per_second, 10u);
  EXPECT_EQ(d.max_empty_data_per_second, 100u);
  const Http2Limits l = load_ok(std::string(kListener) +
                                "limits: {http2: {max_concurrent_streams: 8, max_header_list_size: 16KiB, "
                                "hpack_table_size: 0, max_continuation_frames: 0, max_stalled_bytes: 64KiB, "
                                "max_resets_per_second: 5}}\n")
                            .limits.http2;
  EXPECT_EQ(l.max_concurrent_streams, 8u);
  EXPECT_EQ(l.max_header_list_size, 16u * 1024);
  EXPECT_EQ(l.hpack_table_size, 0u);
  EXPECT_EQ(l.max_continuation_frames, 0u);
  EXPECT_EQ(l.max_stalled_bytes, 64u * 1024);
  EXPECT_EQ(l.max_resets_per_second, 5u);
  const LoadResult bad = load(std::string(kListener) + "limits: {http2: {max_concurrent_streams: 0, max_header_list_size: 10}}\n", "t.yaml");
  ASSERT_EQ(bad.errors.size(), 2u) << errors_of(bad);
  EXPECT_EQ(bad.errors[0].key, "limits.http2.max_concurrent_streams");
  EXPECT_EQ(bad.errors[1].key, "limits.http2.max_header_list_size");
}

}  // namespace

// ---- databases: and query routes (shard router) ----
INSTANTIATE_TEST_SUITE_P(
    Databases, LoadError,
    testing::Values(
        ErrorCase{"RangesOverlap", L("databases:\n  shards:\n    - {id: 0, customers: [1, 100], primary: \"host=a dbname=x\"}\n    - {id: 1, customers: [50, 200], primary: \"host=b dbname=x\"}\n"), "databases.shards[1].customers", 5, 7,
                  "customer ranges overlap: shard 1 (line 5) and shard 0 (line 4) both hold 50..100"},
        ErrorCase{"RangesGap", L("databases:\n  shards:\n    - {id: 0, customers: [1, 100], primary: \"host=a dbname=x\"}\n    - {id: 1, customers: [102, 200], primary: \"host=b dbname=x\"}\n"), "databases.shards[1].customers", 5, 7,
                  "gap in the customer ranges between shard 1 (line 5) and shard 0 (line 4): 101..101 belong to no shard"},
        ErrorCase{"BadConnectionString", L("databases:\n  shards:\n    - {id: 0, customers: [1, 100], primary: \"host=a dbname\"}\n"), "databases.shards[0].primary", 4, 45,
                  "bad connection string: missing \"=\" after \"dbname\" in connection info string"},
        ErrorCase{"QueryWithoutDatabases", L("routes: [{match: {path: /x, method: GET}, query: {sql: \"SELECT 1\"}}]\n"), "routes[0].query", 2, 50,
                  "a query route needs a databases: section"},
        ErrorCase{"PoolMinAboveMax", L("databases: {pool: {max_per_endpoint: 2, min_per_endpoint: 3}, shards: [{id: 0, customers: [1, 10], primary: \"host=a dbname=x\"}]}\n"), "databases.pool.min_per_endpoint", 2, 59,
                  "must not be greater than max_per_endpoint (2)"},
        ErrorCase{"WriteWithoutShardBy", L("routes: [{match: {path: /x, method: POST}, query: {sql: \"SELECT 1\"}}]\ndatabases: {shards: [{id: 0, customers: [1, 10], primary: \"host=a dbname=x\"}]}\n"), "routes[0].query", 2, 51,
                  "a write (a route not read_only, or not GET/HEAD-only) needs shard_by: it must go to one shard"},
        ErrorCase{"PlaceholderCount", L("routes: [{match: {path: \"/c/{customer_id}\"}, query: {sql: \"SELECT $1, $2\", params: [\"customer_id:int64\"], shard_by: customer_id}}]\ndatabases: {shards: [{id: 0, customers: [1, 10], primary: \"host=a dbname=x\"}]}\n"), "routes[0].query.sql", 2, 59,
                  "uses $1..$2 but params lists 1"},
        ErrorCase{"QueryCacheWithoutEdgeTtl", L("routes: [{match: {path: /x, method: GET}, query: {sql: \"SELECT 1\"}, cache: {tags: [t]}}]\ndatabases: {shards: [{id: 0, customers: [1, 10], primary: \"host=a dbname=x\"}]}\n"), "routes[0].cache", 2, 76,
                  "a query route's cache needs edge_ttl: its answers carry no lifetime of their own"},
        ErrorCase{"UnknownParamType", L("routes: [{match: {path: \"/c/{customer_id}\"}, query: {sql: \"SELECT $1\", params: [\"customer_id:uuid\"], shard_by: customer_id}}]\ndatabases: {shards: [{id: 0, customers: [1, 10], primary: \"host=a dbname=x\"}]}\n"), "routes[0].query.params[0]", 2, 81,
                  "unknown type \"uuid\" (expected int64, text, bool, timestamp or numeric)"}),
    [](const auto& info) { return info.param.name; });

TEST(Databases, ShardsSortedRegionsDefaultedQueryCompiled) {
  const LoadResult r = load(L("node: {region: eu}\n"
                              "routes: [{match: {path: \"/c/{customer_id}/o\", method: POST}, query: {sql: \"INSERT INTO o VALUES ($1, $2)\", "
                              "params: [\"customer_id:int64\", \"body.total:numeric\"], shard_by: customer_id}, invalidate: [\"tag:c:{customer_id}\"]}]\n"
                              "databases:\n  pool: {max_per_endpoint: 3, min_per_endpoint: 2, idle_timeout: 30s, max_lifetime: 2h, health_interval: 1s}\n  shards:\n"
                              "    - {id: 1, customers: [11, 20], primary: \"host=b dbname=x\", replicas: [{dsn: \"host=c dbname=x\", region: us}]}\n"
                              "    - {id: 0, customers: [1, 10], primary: \"host=a dbname=x\", replicas: [\"host=d dbname=x\"]}\n"),
                            "t.yaml");
  ASSERT_TRUE(r.config.has_value()) << errors_of(r);
  const Databases& db = r.config->databases;
  ASSERT_EQ(db.shards.size(), 2u);
  EXPECT_EQ(db.shards[0].id, 0);
  EXPECT_EQ(db.shards[0].region, "eu");
  EXPECT_EQ(db.shards[0].replicas[0].region, "eu");
  EXPECT_EQ(db.shards[1].replicas[0].region, "us");
  EXPECT_EQ(db.pool.max_per_endpoint, 3u);
  EXPECT_EQ(db.pool.min_per_endpoint, 2u);
  EXPECT_EQ(db.pool.idle_timeout, std::chrono::seconds(30));
  EXPECT_EQ(db.pool.max_lifetime, std::chrono::hours(2));
  EXPECT_EQ(db.pool.health_interval, std::chrono::seconds(1));
  const RouteQuery& q = *r.config->routes[0].query;
  EXPECT_FALSE(q.reads());
  ASSERT_EQ(q.params.size(), 2u);
  EXPECT_EQ(q.params[0].source, QueryParamSource::path);
  EXPECT_EQ(q.params[1].source, QueryParamSource::body);
  EXPECT_EQ(q.params[1].type, QueryParamType::numeric);
  EXPECT_EQ(q.shard_by, std::optional<std::size_t>(0));
  EXPECT_EQ(r.config->routes[0].invalidate, std::vector<std::string>{"tag:c:{customer_id}"});
}

}  // namespace virex::config
