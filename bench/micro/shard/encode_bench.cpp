// Query route answer encoding: JSON (the default) vs protobuf (Accept: application/x-protobuf, hand-encoded),
// for a typical single-shard answer (50 order rows, 6 columns: integers, a numeric, text, a timestamp) and a
// one-row aggregate. Bytes produced are reported as a counter.
#include <virex/shard/value.hpp>

#include <benchmark/benchmark.h>

namespace {

using virex::shard::ResultSet;
using virex::shard::Value;

ResultSet orders(int n) {
  ResultSet rs;
  rs.columns = {"id", "customer_id", "total_cents", "amount", "status", "created_at"};
  for (int i = 0; i < n; ++i) {
    rs.rows.push_back({Value::integer(10000 + i), Value::integer(1042), Value::integer(4242 + i * 13),
                       Value::numeric(std::to_string(42 + i) + ".42"), Value::text(i % 2 ? "paid" : "shipped"),
                       virex::shard::decode(1184, "2025-02-01 00:00:0" + std::to_string(i % 10) + ".123456+00")});
  }
  return rs;
}

void BM_Json(benchmark::State& state) {
  const ResultSet rs = orders(static_cast<int>(state.range(0)));
  std::string out;
  for (auto _ : state) {
    out.clear();
    virex::shard::append_json(out, rs);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes"] = static_cast<double>(out.size());
}

void BM_Protobuf(benchmark::State& state) {
  const ResultSet rs = orders(static_cast<int>(state.range(0)));
  std::string out;
  for (auto _ : state) {
    out.clear();
    virex::shard::append_protobuf(out, rs);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes"] = static_cast<double>(out.size());
}

BENCHMARK(BM_Json)->Arg(1)->Arg(50)->Arg(1000);
BENCHMARK(BM_Protobuf)->Arg(1)->Arg(50)->Arg(1000);

}  // namespace
