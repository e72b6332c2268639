// Route matching, table-driven: host, exact/prefix/template paths, methods, first match in config order.
#include <virex/pipeline/route_table.hpp>

#include <gtest/gtest.h>

namespace virex::pipeline {
namespace {

config::Route route(std::string name, config::PathKind kind, std::string path, std::vector<std::string> methods = {},
                    std::string host = "*") {
  config::Route r;
  r.name = std::move(name);
  r.match.kind = kind;
  r.match.path = std::move(path);
  r.match.methods = std::move(methods);
  r.match.host = std::move(host);
  r.respond.body = r.name;
  return r;
}

RouteTable table(const std::vector<config::Route>& routes) {
  std::vector<BuildError> errors;
  auto t = RouteTable::build(routes, [](const std::string&, std::string& e) { e = "no files"; return std::nullopt; }, errors);
  EXPECT_TRUE(errors.empty());
  return t;
}

using K = config::PathKind;

const std::vector<config::Route> kRoutes = {
    route("health", K::exact, "/healthz", {"GET"}),
    route("api-host", K::prefix, "/", {}, "api.example.com"),
    route("orders", K::template_, "/v1/customers/{customer_id:int64}/orders", {"GET"}),
    route("orders-post", K::template_, "/v1/customers/{customer_id:int64}/orders", {"POST"}),
    route("by-name", K::template_, "/v1/customers/{name}/profile"),
    route("static", K::prefix, "/static/"),
    route("static-exact", K::exact, "/static/special.css"),  // after the prefix: never wins
    route("wild", K::prefix, "/w/", {}, "*.example.org"),
    route("purge", K::exact, "/purge", {"PURGE"}),
    route("root", K::exact, "/", {"GET"}),
};

struct Case {
  std::string host, path;
  http::Method method;
  std::string method_text;
  std::string want;  // route name, "404" or "405:<Allow>"
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.method_text << " " << c.host << c.path; }

class RouteMatching : public ::testing::TestWithParam<Case> {};

TEST_P(RouteMatching, FirstMatchInOrder) {
  static const RouteTable t = table(kRoutes);
  const Case& c = GetParam();
  const Match m = t.match(c.host, c.path, c.method, c.method_text);
  std::string got = m.route ? m.route->name : m.method_not_allowed ? "405:" + m.allow : "404";
  EXPECT_EQ(got, c.want) << c.host << " " << c.method_text << " " << c.path;
}

INSTANTIATE_TEST_SUITE_P(
    Table, RouteMatching,
    ::testing::Values(Case{"x", "/healthz", http::Method::get, "GET", "health"},
                      Case{"x", "/healthz", http::Method::head, "HEAD", "health"},  // GET implies HEAD
                      Case{"x", "/healthz", http::Method::post, "POST", "405:GET, HEAD"},
                      Case{"API.Example.com", "/healthz", http::Method::post, "POST", "api-host"},
                      Case{"x", "/v1/customers/42/orders", http::Method::get, "GET", "orders"},
                      Case{"x", "/v1/customers/42/orders", http::Method::post, "POST", "orders-post"},
                      Case{"x", "/v1/customers/42/orders", http::Method::delete_, "DELETE", "405:GET, HEAD, POST"},
                      Case{"x", "/v1/customers/abc/orders", http::Method::get, "GET", "404"},
                      Case{"x", "/v1/customers/-7/orders", http::Method::get, "GET", "orders"},
                      Case{"x", "/v1/customers/99999999999999999999/orders", http::Method::get, "GET", "404"},
                      Case{"x", "/v1/customers/abc/profile", http::Method::put, "PUT", "by-name"},
                      Case{"x", "/v1/customers//profile", http::Method::get, "GET", "404"},
                      Case{"x", "/static/special.css", http::Method::get, "GET", "static"},
                      Case{"x", "/static", http::Method::get, "GET", "404"},
                      Case{"a.example.org", "/w/x", http::Method::get, "GET", "wild"},
                      Case{"example.org", "/w/x", http::Method::get, "GET", "404"},
                      Case{"x", "/purge", http::Method::other, "PURGE", "purge"},
                      Case{"x", "/purge", http::Method::get, "GET", "405:PURGE"},
                      Case{"x", "/", http::Method::get, "GET", "root"},
                      Case{"", "/nothing", http::Method::get, "GET", "404"}));

TEST(RouteTable, Captures) {
  const RouteTable t = table(kRoutes);
  const Match m = t.match("x", "/v1/customers/1234/orders", http::Method::get, "GET");
  ASSERT_NE(m.route, nullptr);
  ASSERT_EQ(m.ncaptures, 1u);
  EXPECT_EQ(m.captures[0].name, "customer_id");
  EXPECT_EQ(m.captures[0].value, "1234");
  EXPECT_EQ(m.captures[0].int_value, 1234);
}

TEST(RouteTable, ManyRoutesPickLowestIndex) {
  std::vector<config::Route> routes;
  for (int i = 0; i < 10000; ++i) routes.push_back(route("p" + std::to_string(i), K::prefix, "/p/" + std::to_string(i) + "/"));
  routes.insert(routes.begin() + 5000, route("catch", K::prefix, "/p/"));
  const RouteTable t = table(routes);
  EXPECT_EQ(t.match("h", "/p/42/x", http::Method::get, "GET").route->name, "p42");
  EXPECT_EQ(t.match("h", "/p/7000", http::Method::get, "GET").route->name, "catch");
  EXPECT_EQ(t.match("h", "/p/7000/", http::Method::get, "GET").route->name, "catch");
  EXPECT_EQ(t.match("h", "/p/4999/", http::Method::get, "GET").route->name, "p4999");
}

TEST(RouteTable, FileBodyErrorsAreReported) {
  config::Route r = route("f", K::exact, "/f");
  r.respond.file = "missing.html";
  r.respond.file_location = {"edge.yaml", 7, 13};
  std::vector<BuildError> errors;
  RouteTable::build({r}, [](const std::string& p, std::string& e) { e = "cannot read " + p; return std::nullopt; }, errors);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].location.line, 7);
  EXPECT_EQ(errors[0].key, "routes[0].respond.file");
}

}  // namespace
}  // namespace virex::pipeline
