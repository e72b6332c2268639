// Registry: get-or-create identity, shard sums under concurrent writers, exact exposition text, chunk
// boundaries, and the real `promtool check metrics` over the output.
#include <virex/observe/metrics.hpp>

#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <vector>

namespace virex::observe {
namespace {

std::string line_of(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with(prefix)) return line;
  }
  return {};
}

TEST(Metrics, GetOrCreateReturnsTheSameSeries) {
  Registry reg(2);
  SeriesId a = reg.counter("virex_test_requests_total", "Requests.", {{"route", "a"}, {"code", "2xx"}});
  SeriesId again = reg.counter("virex_test_requests_total", "Other help.", {{"route", "a"}, {"code", "2xx"}});
  SeriesId reordered = reg.counter("virex_test_requests_total", "Requests.", {{"code", "2xx"}, {"route", "a"}});
  SeriesId b = reg.counter("virex_test_requests_total", "Requests.", {{"route", "b"}, {"code", "2xx"}});
  SeriesId bare = reg.counter("virex_test_requests_total", "Requests.");
  EXPECT_EQ(a.cell, again.cell);
  EXPECT_EQ(a.cell, reordered.cell);
  EXPECT_NE(a.cell, b.cell);
  EXPECT_NE(a.cell, bare.cell);
  EXPECT_EQ(reg.shard(0).counter(a).valid(), true);

  HistogramId h1 = reg.histogram("virex_test_seconds", "H.", {}, default_latency_buckets(), 1e-9);
  HistogramId h2 = reg.histogram("virex_test_seconds", "H.", {}, default_latency_buckets(), 1e-9);
  EXPECT_EQ(h1.first.cell, h2.first.cell);
  EXPECT_EQ(h1.bounds, h2.bounds);
  EXPECT_EQ(h1.nbounds, default_latency_buckets().size());
  EXPECT_EQ(h1.bounds[0], 50000u);  // 50µs in ns
  EXPECT_EQ(h1.bounds[h1.nbounds - 1], 10'000'000'000u);
}

TEST(Metrics, AnotherTypeForANameIsALogicError) {
  Registry reg(1);
  reg.counter("virex_test_things_total", "Things.");
  EXPECT_THROW(reg.gauge("virex_test_things_total", "Things."), std::logic_error);
  EXPECT_THROW(reg.histogram("virex_test_things_total", "Things.", {}, default_latency_buckets(), 1e-9),
               std::logic_error);
  EXPECT_THROW(reg.counter("bad name", "x"), std::logic_error);
  EXPECT_THROW(reg.histogram("virex_test_h_seconds", "x", {{"le", "1"}}, default_latency_buckets(), 1e-9),
               std::logic_error);
}

TEST(Metrics, CountersAreSummedOverShardsWrittenByTheirOwnThreads) {
  constexpr unsigned kShards = 4;
  constexpr std::uint64_t kIncrements = 200'000;
  Registry reg(kShards);
  SeriesId id = reg.counter("virex_test_hits_total", "Hits.");
  std::atomic<bool> go{false};
  std::vector<std::thread> writers;
  for (unsigned s = 0; s < kShards; ++s) {
    writers.emplace_back([&, s] {
      CounterRef ref = reg.shard(s).counter(id);
      while (!go.load(std::memory_order_acquire)) {
      }
      for (std::uint64_t i = 0; i < kIncrements; ++i) ref.inc();
    });
  }
  go.store(true, std::memory_order_release);
  // Registration (new chunks in every shard) and scrapes race the writers; neither may disturb them.
  for (int i = 0; i < 5000; ++i) {
    reg.gauge("virex_test_filler", "Filler.", {{"i", std::to_string(i)}});
    if (i % 1000 == 0) (void)reg.expose();
  }
  for (auto& t : writers) t.join();
  EXPECT_EQ(line_of(reg.expose(), "virex_test_hits_total "),
            "virex_test_hits_total " + std::to_string(kShards * kIncrements));
}

TEST(Metrics, GaugesAreSignedSums) {
  Registry reg(3);
  SeriesId g = reg.gauge("virex_test_connections", "Open connections.", {{"listener", "main"}});
  reg.shard(0).gauge(g).add(-5);
  reg.shard(1).gauge(g).add(2);
  reg.shard(2).gauge(g).add(-1);
  EXPECT_EQ(line_of(reg.expose(), "virex_test_connections{"), "virex_test_connections{listener=\"main\"} -4");
}

TEST(Metrics, ExposesCountersGaugesAndHistogramsExactly) {
  Registry reg(2);
  SeriesId c = reg.counter("virex_test_requests_total", "Requests served.", {{"route", "api"}});
  SeriesId g = reg.gauge("virex_test_inflight", "In flight.");
  const double bounds[] = {0.001, 0.01, 0.1};
  HistogramId h = reg.histogram("virex_test_latency_seconds", "Latency.", {{"route", "r"}}, bounds, 1e-9);
  reg.shard(0).counter(c).inc(3);
  reg.shard(1).counter(c).inc(4);
  reg.shard(1).gauge(g).add(7);
  reg.shard(0).histogram(h).observe(500'000);        // 0.0005 s
  reg.shard(1).histogram(h).observe(1'000'000);      // exactly 0.001: le is inclusive
  reg.shard(1).histogram(h).observe(5'000'000);      // 0.005 s
  reg.shard(0).histogram(h).observe(2'000'000'000);  // 2 s → +Inf only
  EXPECT_EQ(reg.expose(),
            "# HELP virex_test_requests_total Requests served.\n"
            "# TYPE virex_test_requests_total counter\n"
            "virex_test_requests_total{route=\"api\"} 7\n"
            "# HELP virex_test_inflight In flight.\n"
            "# TYPE virex_test_inflight gauge\n"
            "virex_test_inflight 7\n"
            "# HELP virex_test_latency_seconds Latency.\n"
            "# TYPE virex_test_latency_seconds histogram\n"
            "virex_test_latency_seconds_bucket{route=\"r\",le=\"0.001\"} 2\n"
            "virex_test_latency_seconds_bucket{route=\"r\",le=\"0.01\"} 3\n"
            "virex_test_latency_seconds_bucket{route=\"r\",le=\"0.1\"} 3\n"
            "virex_test_latency_seconds_bucket{route=\"r\",le=\"+Inf\"} 4\n"
            "virex_test_latency_seconds_sum{route=\"r\"} 2.0065\n"
            "virex_test_latency_seconds_count{route=\"r\"} 4\n");
}

TEST(Metrics, DefaultBucketsPrintLikePrometheus) {
  Registry reg(1);
  HistogramId h = reg.histogram("virex_test_seconds", "Latency.", {}, default_latency_buckets(), 1e-9);
  reg.shard(0).histogram(h).observe(1'500'000);  // 1.5 ms
  const std::string text = reg.expose();
  EXPECT_EQ(line_of(text, "virex_test_seconds_bucket{le=\"5e-05\"}"), "virex_test_seconds_bucket{le=\"5e-05\"} 0");
  EXPECT_EQ(line_of(text, "virex_test_seconds_bucket{le=\"0.0025\"}"), "virex_test_seconds_bucket{le=\"0.0025\"} 1");
  EXPECT_EQ(line_of(text, "virex_test_seconds_bucket{le=\"10\"}"), "virex_test_seconds_bucket{le=\"10\"} 1");
  EXPECT_EQ(line_of(text, "virex_test_seconds_sum"), "virex_test_seconds_sum 0.0015");
  EXPECT_EQ(line_of(text, "virex_test_seconds_count"), "virex_test_seconds_count 1");
}

TEST(Metrics, EscapesHelpAndLabelValues) {
  Registry reg(1);
  SeriesId c = reg.counter("virex_test_errors_total", "Errors \\ by \"kind\"\nsecond line.",
                           {{"kind", "a\"b\\c\nd"}});
  reg.shard(0).counter(c).inc();
  EXPECT_EQ(reg.expose(),
            "# HELP virex_test_errors_total Errors \\\\ by \"kind\"\\nsecond line.\n"
            "# TYPE virex_test_errors_total counter\n"
            "virex_test_errors_total{kind=\"a\\\"b\\\\c\\nd\"} 1\n");
}

TEST(Metrics, ManySeriesAcrossChunkBoundaries) {
  constexpr int kSeries = 10'000;
  constexpr unsigned kShards = 3;
  Registry reg(kShards);
  std::vector<SeriesId> ids;
  std::vector<HistogramId> hists;
  for (int i = 0; i < kSeries; ++i) {
    ids.push_back(reg.counter("virex_test_series_total", "Series.", {{"i", std::to_string(i)}}));
    // Histograms interleaved so some would straddle a chunk if the allocator let them.
    if (i % 997 == 0) {
      hists.push_back(reg.histogram("virex_test_h_seconds", "H.", {{"i", std::to_string(i)}},
                                    default_latency_buckets(), 1e-9));
    }
  }
  std::set<const void*> cells;
  for (int i = 0; i < kSeries; ++i) {
    for (unsigned s = 0; s < kShards; ++s) cells.insert(reg.cell(s, ids[i].cell));
    reg.shard(i % kShards).counter(ids[i]).inc(static_cast<std::uint64_t>(i));
  }
  EXPECT_EQ(cells.size(), static_cast<std::size_t>(kSeries) * kShards);
  for (const HistogramId& h : hists) {
    for (unsigned s = 0; s < kShards; ++s) reg.shard(s).histogram(h).observe(20'000'000'000);  // +Inf
  }
  const std::string text = reg.expose();
  for (int i : {0, 4095, 4096, 4097, 8191, 8192, kSeries - 1}) {
    const std::string series = "virex_test_series_total{i=\"" + std::to_string(i) + "\"} ";
    EXPECT_EQ(line_of(text, series), series + std::to_string(i));
  }
  for (std::size_t k = 0; k < hists.size(); ++k) {
    const std::string count = "virex_test_h_seconds_count{i=\"" + std::to_string(k * 997) + "\"} ";
    EXPECT_EQ(line_of(text, count), count + std::to_string(kShards));
  }
}

// Runs the real promtool (format parse + lint) on the exposition; a missing promtool fails the test.
TEST(Metrics, PromtoolAcceptsTheExposition) {
  ASSERT_EQ(access("/usr/bin/promtool", X_OK), 0) << "/usr/bin/promtool is required (Debian package prometheus)";
  Registry reg(2);
  SeriesId req = reg.counter("virex_http_requests_total", "Requests by route and status class.",
                             {{"route", "api \"v1\"\\x"}, {"status", "2xx"}});
  reg.counter("virex_http_requests_total", "Requests by route and status class.",
              {{"route", "line\nbreak"}, {"status", "5xx"}});
  SeriesId conns = reg.gauge("virex_server_connections", "Open downstream connections.");
  HistogramId lat = reg.histogram("virex_http_request_duration_seconds", "Request duration, head to last byte.",
                                  {{"route", "api"}}, default_latency_buckets(), 1e-9);
  const double sizes[] = {256, 1024, 65536};
  HistogramId body = reg.histogram("virex_http_response_size_bytes", "Response body sizes.", {}, sizes, 1);
  reg.shard(0).counter(req).inc(5);
  reg.shard(1).gauge(conns).add(-2);
  reg.shard(0).histogram(lat).observe(1'234'567);
  reg.shard(1).histogram(body).observe(300);

  char out_path[] = "/tmp/virex-promtool-XXXXXX";
  const int fd = mkstemp(out_path);
  ASSERT_GE(fd, 0);
  close(fd);
  const std::string cmd = "/usr/bin/promtool check metrics >" + std::string(out_path) + " 2>&1";
  FILE* p = popen(cmd.c_str(), "w");
  ASSERT_NE(p, nullptr);
  const std::string text = reg.expose();
  ASSERT_EQ(std::fwrite(text.data(), 1, text.size(), p), text.size());
  const int status = pclose(p);
  std::ifstream in(out_path);
  const std::string output((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::remove(out_path);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "promtool said:\n" << output << "\non:\n" << text;
}

}  // namespace
}  // namespace virex::observe
