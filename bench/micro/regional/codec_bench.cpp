// Regional entry serialisation: protobuf (what the tier stores) against a JSON encoding of the same entry
// (Boost.JSON, the alternative the seed replaced), encode and decode, for a small and a larger text body.
// Text bodies, so JSON needs no base64 (a binary body would cost JSON more).
#include <virex/regional/codec.hpp>

#include <benchmark/benchmark.h>
#include <boost/json.hpp>

namespace {
using namespace virex;

std::unique_ptr<cache::Entry> make_entry(std::size_t body_bytes) {
  auto p = std::make_unique<cache::Entry>();
  cache::Entry& e = *p;
  e.key = "GET|api.example.com|/v1/customers/42/orders?page=2";
  e.host = "api.example.com";
  e.path = "/v1/customers/42/orders";
  e.head =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nCache-Control: public, max-age=60\r\n"
      "ETag: \"5f2b-1a9c3e\"\r\nLast-Modified: Sat, 05 Dec 2026 00:00:00 GMT\r\nVary: Accept-Encoding\r\n"
      "Surrogate-Key: customer:42 orders\r\nServer: origin\r\nVia: 1.1 edge-1\r\nContent-Length: " +
      std::to_string(body_bytes) + "\r\n";
  e.body.reserve(body_bytes);
  while (e.body.size() < body_bytes) e.body.append("{\"id\":12345,\"sku\":\"A-1\",\"qty\":2,\"note\":\"ok\"},");
  e.body.resize(body_bytes);
  e.status = 200;
  e.initial_age = 0;
  e.ttl = 60;
  e.etag = "\"5f2b-1a9c3e\"";
  e.last_modified = "Sat, 05 Dec 2026 00:00:00 GMT";
  e.tags = {"customer:42", "orders"};
  e.vary = {"accept-encoding"};
  e.variant_key = "gzip";
  return p;
}

std::string json_encode(const cache::Entry& e, std::int64_t stored, std::int64_t expires) {
  boost::json::object o;
  o["version"] = 1;
  o["status"] = e.status;
  o["head"] = e.head;
  o["body"] = e.body;
  o["stored_unix_ms"] = stored;
  o["initial_age_s"] = e.initial_age;
  o["ttl_s"] = e.ttl;
  o["swr_s"] = e.swr;
  o["sie_s"] = e.sie;
  o["expires_unix_ms"] = expires;
  o["etag"] = e.etag;
  o["last_modified"] = e.last_modified;
  boost::json::array tags;
  for (const auto& t : e.tags) tags.emplace_back(t);
  o["tags"] = std::move(tags);
  boost::json::array vary;
  for (const auto& v : e.vary) vary.emplace_back(v);
  o["vary"] = std::move(vary);
  o["variant_key"] = e.variant_key;
  o["key"] = e.key;
  o["host"] = e.host;
  o["path"] = e.path;
  return boost::json::serialize(o);
}

std::shared_ptr<cache::Entry> json_decode(std::string_view s) {
  boost::json::error_code ec;
  boost::json::value v = boost::json::parse(s, ec);
  if (ec || !v.is_object()) return nullptr;
  const auto& o = v.get_object();
  auto e = std::make_shared<cache::Entry>();
  auto str = [&](const char* k) { return std::string(o.at(k).as_string()); };
  e->status = static_cast<std::uint16_t>(o.at("status").as_int64());
  e->head = str("head");
  e->body = str("body");
  e->initial_age = static_cast<std::uint32_t>(o.at("initial_age_s").as_int64());
  e->ttl = static_cast<std::uint32_t>(o.at("ttl_s").as_int64());
  e->swr = static_cast<std::uint32_t>(o.at("swr_s").as_int64());
  e->sie = static_cast<std::uint32_t>(o.at("sie_s").as_int64());
  e->etag = str("etag");
  e->last_modified = str("last_modified");
  for (const auto& t : o.at("tags").as_array()) e->tags.emplace_back(t.as_string());
  for (const auto& t : o.at("vary").as_array()) e->vary.emplace_back(t.as_string());
  e->variant_key = str("variant_key");
  e->key = str("key");
  e->host = str("host");
  e->path = str("path");
  return e;
}

void BM_ProtobufEncode(benchmark::State& st) {
  const auto owned = make_entry(static_cast<std::size_t>(st.range(0)));
  const cache::Entry& e = *owned;
  std::string out;
  for (auto _ : st) {
    regional::encode_entry(out, e, 1733356800000, 1733357400000);
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["bytes"] = static_cast<double>(out.size());
}
void BM_JsonEncode(benchmark::State& st) {
  const auto owned = make_entry(static_cast<std::size_t>(st.range(0)));
  const cache::Entry& e = *owned;
  std::string out;
  for (auto _ : st) {
    out = json_encode(e, 1733356800000, 1733357400000);
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["bytes"] = static_cast<double>(out.size());
}
void BM_ProtobufDecode(benchmark::State& st) {
  std::string bytes;
  regional::encode_entry(bytes, *make_entry(static_cast<std::size_t>(st.range(0))), 1733356800000, 1733357400000);
  const auto now = std::chrono::steady_clock::now();
  for (auto _ : st) {
    auto d = regional::decode_entry(bytes, 1733356801000, now);
    benchmark::DoNotOptimize(d);
  }
}
void BM_JsonDecode(benchmark::State& st) {
  const std::string bytes = json_encode(*make_entry(static_cast<std::size_t>(st.range(0))), 1733356800000, 1733357400000);
  for (auto _ : st) {
    auto d = json_decode(bytes);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_ProtobufEncode)->Arg(1024)->Arg(16384);
BENCHMARK(BM_JsonEncode)->Arg(1024)->Arg(16384);
BENCHMARK(BM_ProtobufDecode)->Arg(1024)->Arg(16384);
BENCHMARK(BM_JsonDecode)->Arg(1024)->Arg(16384);
}  // namespace
