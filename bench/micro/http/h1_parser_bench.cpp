// HTTP/1.1 request parsing cost: a typical browser-like GET, and a pipelined batch of small requests.
#include <virex/http/h1_parser.hpp>

#include <benchmark/benchmark.h>

#include <string>

namespace {
const std::string kBrowserGet =
    "GET /v1/customers/42/orders?page=2&sort=desc HTTP/1.1\r\n"
    "Host: api.example.com\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Cookie: session=abcdef0123456789; theme=dark\r\n"
    "Connection: keep-alive\r\n\r\n";

void BM_ParseBrowserGet(benchmark::State& state) {
  virex::http::H1RequestParser p({});
  for (auto _ : state) {
    auto r = p.feed(kBrowserGet);
    benchmark::DoNotOptimize(r);
    auto c = p.feed(std::string_view(kBrowserGet).substr(r.consumed));
    benchmark::DoNotOptimize(c);
    p.next();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBrowserGet.size()));
}
BENCHMARK(BM_ParseBrowserGet);

void BM_ParseWrkGet(benchmark::State& state) {
  const std::string req = "GET /hit HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";
  virex::http::H1RequestParser p({});
  for (auto _ : state) {
    auto r = p.feed(req);
    benchmark::DoNotOptimize(r);
    p.feed({});
    p.next();
  }
}
BENCHMARK(BM_ParseWrkGet);
}  // namespace
