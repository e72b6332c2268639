// Route matching with 10,000 routes: exact, prefix and template routes mixed, first match in order.
#include <virex/pipeline/route_table.hpp>

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

namespace {
using namespace virex;

pipeline::RouteTable make_table(std::size_t n) {
  std::vector<config::Route> routes;
  for (std::size_t i = 0; i < n; ++i) {
    config::Route r;
    r.name = "r" + std::to_string(i);
    switch (i % 3) {
      case 0: r.match.kind = config::PathKind::exact; r.match.path = "/exact/" + std::to_string(i); break;
      case 1: r.match.kind = config::PathKind::prefix; r.match.path = "/prefix/" + std::to_string(i) + "/"; break;
      case 2:
        r.match.kind = config::PathKind::template_;
        r.match.path = "/t" + std::to_string(i) + "/customers/{customer_id:int64}/orders";
        break;
    }
    if (i % 7 == 0) r.match.host = "host" + std::to_string(i % 50) + ".example.com";
    r.match.methods = {"GET"};
    routes.push_back(std::move(r));
  }
  std::vector<pipeline::BuildError> errors;
  return pipeline::RouteTable::build(routes, [](const std::string&, std::string&) { return std::nullopt; }, errors);
}

void BM_Match10k(benchmark::State& state) {
  static const auto table = make_table(10000);
  const std::vector<std::string> paths = {"/exact/3000", "/prefix/4000/a/b/c", "/t8000/customers/42/orders",
                                          "/nowhere/at/all"};
  std::size_t i = 0;
  for (auto _ : state) {
    auto m = table.match("api.example.com", paths[i++ & 3], http::Method::get, "GET");
    benchmark::DoNotOptimize(m.route);
  }
}
BENCHMARK(BM_Match10k);

void BM_Match10kTemplate(benchmark::State& state) {
  static const auto table = make_table(10000);
  for (auto _ : state) {
    auto m = table.match("api.example.com", "/t8000/customers/42/orders", http::Method::get, "GET");
    benchmark::DoNotOptimize(m.route);
  }
}
BENCHMARK(BM_Match10kTemplate);
}  // namespace
