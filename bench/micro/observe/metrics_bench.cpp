// Hot-path cost of the metrics registry: a counter increment and a histogram observation on a worker's
// shard (no lock, relaxed atomics), and the scrape-side cost of expose() over 1,000 series.
#include <virex/observe/metrics.hpp>

#include <benchmark/benchmark.h>

#include <string>

namespace virex::observe {
namespace {

void BM_CounterInc(benchmark::State& state) {
  Registry reg(2);
  CounterRef c = reg.shard(0).counter(reg.counter("virex_bench_requests_total", "Requests."));
  for (auto _ : state) c.inc();
  benchmark::DoNotOptimize(reg.cell(0, 0)->load());
}
BENCHMARK(BM_CounterInc);

// Observations spread over the default latency buckets (50µs … 10s in ns) so the bucket search varies.
void BM_HistogramObserve(benchmark::State& state) {
  Registry reg(2);
  HistogramRef h = reg.shard(0).histogram(
      reg.histogram("virex_bench_duration_seconds", "Latency.", {}, default_latency_buckets(), 1e-9));
  std::uint64_t v = 1;
  for (auto _ : state) {
    h.observe(v);
    v = v * 6364136223846793005ULL + 1442695040888963407ULL;  // LCG: pseudo-random, cheap
    v %= 20'000'000'000ULL;
  }
}
BENCHMARK(BM_HistogramObserve);

// 1,000 series: 900 labelled counters, 100 labelled histograms (~20 cells each), 4 shards.
void BM_Expose1000Series(benchmark::State& state) {
  Registry reg(4);
  for (int i = 0; i < 900; ++i) {
    SeriesId id = reg.counter("virex_bench_requests_total", "Requests.",
                              {{"route", "route" + std::to_string(i / 10)}, {"status", std::to_string(i % 10) + "xx"}});
    reg.shard(i % 4).counter(id).inc(static_cast<std::uint64_t>(i) * 7);
  }
  for (int i = 0; i < 100; ++i) {
    HistogramId id = reg.histogram("virex_bench_duration_seconds", "Latency.", {{"route", "route" + std::to_string(i)}},
                                   default_latency_buckets(), 1e-9);
    reg.shard(i % 4).histogram(id).observe(static_cast<std::uint64_t>(i) * 1'000'000);
  }
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string text = reg.expose();
    bytes = text.size();
    benchmark::DoNotOptimize(text.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes * state.iterations()));
}
BENCHMARK(BM_Expose1000Series);

}  // namespace
}  // namespace virex::observe
