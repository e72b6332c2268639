// Endpoint selection per policy over 10 endpoints, the key hash, and the proxy header rewrite of a typical
// 10-header browser request and of a typical response (one worker, warm buffers: no allocation measured).
#include <virex/upstream/balancer.hpp>
#include <virex/upstream/forward.hpp>

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

namespace {
using namespace virex;

std::vector<std::string> endpoint_names(std::size_t n) {
  std::vector<std::string> v;
  for (std::size_t i = 0; i < n; ++i) v.push_back("10.0.0." + std::to_string(i) + ":8080");
  return v;
}

std::vector<upstream::Candidate> candidates(std::size_t n, std::size_t down = 0) {
  std::vector<upstream::Candidate> eps(n);
  for (std::size_t i = 0; i < n; ++i) eps[i].active = static_cast<std::uint32_t>((i * 7) % 5);
  for (std::size_t i = 0; i < down; ++i) eps[i * 3 % n].available = false;
  return eps;
}

std::vector<std::uint64_t> key_hashes() {
  std::vector<std::uint64_t> v;
  for (int i = 0; i < 1024; ++i) v.push_back(upstream::hash_key("/api/v1/customers/" + std::to_string(i)));
  return v;
}

void run_pick(benchmark::State& state, config::Balance policy, std::size_t down, std::uint64_t tried) {
  const upstream::Balancer b(policy, endpoint_names(10));
  const auto eps = candidates(10, down);
  const auto hashes = key_hashes();
  upstream::PickState st;
  std::size_t i = 0;
  for (auto _ : state) {
    auto p = b.pick(eps, st, true, hashes[i++ & 1023], tried);
    benchmark::DoNotOptimize(p);
  }
}

void BM_PickRoundRobin(benchmark::State& s) { run_pick(s, config::Balance::round_robin, 0, 0); }
void BM_PickLeastRequest(benchmark::State& s) { run_pick(s, config::Balance::least_request, 0, 0); }
void BM_PickConsistentHash(benchmark::State& s) { run_pick(s, config::Balance::consistent_hash, 0, 0); }
// 3 of 10 endpoints down and the request's first try excluded: the retry path of each policy.
void BM_PickRoundRobinDegraded(benchmark::State& s) { run_pick(s, config::Balance::round_robin, 3, 0b10); }
void BM_PickLeastRequestDegraded(benchmark::State& s) { run_pick(s, config::Balance::least_request, 3, 0b10); }
void BM_PickConsistentHashDegraded(benchmark::State& s) { run_pick(s, config::Balance::consistent_hash, 3, 0b10); }
BENCHMARK(BM_PickRoundRobin);
BENCHMARK(BM_PickLeastRequest);
BENCHMARK(BM_PickConsistentHash);
BENCHMARK(BM_PickRoundRobinDegraded);
BENCHMARK(BM_PickLeastRequestDegraded);
BENCHMARK(BM_PickConsistentHashDegraded);

void BM_HashKeyPath(benchmark::State& state) {
  const std::string path = "/api/v1/customers/12345/orders";
  for (auto _ : state) {
    benchmark::DoNotOptimize(path.data());
    benchmark::DoNotOptimize(upstream::hash_key(path));
  }
}
BENCHMARK(BM_HashKeyPath);

void BM_MaglevBuild10(benchmark::State& state) {
  const auto names = endpoint_names(10);
  for (auto _ : state) {
    upstream::MaglevTable t(names);
    benchmark::DoNotOptimize(t.size());
  }
}
BENCHMARK(BM_MaglevBuild10)->Unit(benchmark::kMicrosecond);

const std::vector<http::Header> kRequestHeaders = {
    {"Host", "shop.example.com"},
    {"User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"},
    {"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
    {"Accept-Language", "en-GB,en;q=0.5"},
    {"Accept-Encoding", "gzip, deflate, br"},
    {"Connection", "keep-alive"},
    {"Cookie", "session=4f2a9c1e77d04b1f; theme=dark"},
    {"Upgrade-Insecure-Requests", "1"},
    {"X-Forwarded-For", "198.51.100.23"},
    {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
};

void BM_AppendRequestHead10(benchmark::State& state) {
  http::RequestHead head;
  head.method = http::Method::get;
  head.method_text = "GET";
  head.target = "/catalog/shoes?size=42";
  head.path = "/catalog/shoes";
  head.query = "size=42";
  head.host = "shop.example.com";
  head.headers = kRequestHeaders;
  upstream::RequestForward f;
  f.path = head.path;
  f.query = head.query;
  f.client_addr = "203.0.113.7";
  f.proto = "https";
  f.via = "1.1 edge-fra-1";
  f.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  std::string out;
  out.reserve(4096);
  for (auto _ : state) {
    out.clear();
    upstream::append_request_head(out, head, f);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes"] = static_cast<double>(out.size());
}
BENCHMARK(BM_AppendRequestHead10);

const std::vector<http::Header> kResponseHeaders = {
    {"Date", "Mon, 01 Jan 2024 00:00:00 GMT"},
    {"Server", "origin"},
    {"Content-Type", "text/html; charset=utf-8"},
    {"Content-Length", "5120"},
    {"Cache-Control", "public, max-age=60"},
    {"ETag", "\"abc123\""},
    {"Vary", "Accept-Encoding"},
    {"Connection", "keep-alive"},
    {"Keep-Alive", "timeout=5"},
};

void BM_AppendResponseHead(benchmark::State& state) {
  http::ResponseHead head;
  head.status = 200;
  head.reason = "OK";
  head.headers = kResponseHeaders;
  head.content_length = 5120;
  upstream::ResponseForward f;
  f.via = "1.1 edge-fra-1";
  std::string out;
  out.reserve(4096);
  for (auto _ : state) {
    out.clear();
    auto fr = upstream::append_response_head(out, head, f);
    benchmark::DoNotOptimize(fr);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_AppendResponseHead);

}  // namespace
