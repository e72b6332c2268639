// config::load(): defaults, a full round trip, the shipped config files, and one table row per error path
// (exact key path, line and column). No files are read except config/*.yaml from the source tree.
#include <virex/config/loader.hpp>

#include <gtest/gtest.h>

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
  EXPECT_FALSE(config.routes.empty());
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
                       "multi.yaml:10:5: routes[0]: a route needs an action (respond)",
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
                  "a route needs an action (respond)"},
        route_case("UnknownKey", "{respond: {}, upstream: x}", "routes[0].upstream", 24, "unknown key"),
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

}  // namespace
}  // namespace virex::config
