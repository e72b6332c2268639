// HTTP/1.1 response parsing cost on the proxy hot path: what nginx sends for a 1 KiB static file (8 header
// fields), framed by Content-Length and, as a dynamic origin would, chunked (one 1 KiB chunk + last-chunk).
// One iteration = one whole response: head, body, complete, next().
#include <virex/http/h1_response_parser.hpp>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

namespace {
std::string nginx_response(bool chunked) {
  std::string s =
      "HTTP/1.1 200 OK\r\n"
      "Server: nginx/1.22.1\r\n"
      "Date: Mon, 15 Jan 2024 10:20:30 GMT\r\n"
      "Content-Type: application/octet-stream\r\n";
  s += chunked ? "Transfer-Encoding: chunked\r\n" : "Content-Length: 1024\r\n";
  s += "Last-Modified: Mon, 15 Jan 2024 09:00:00 GMT\r\n"
       "Connection: keep-alive\r\n"
       "ETag: \"65a4f4a0-400\"\r\n"
       "Accept-Ranges: bytes\r\n\r\n";
  if (chunked) s += "400\r\n";
  s += std::string(1024, 'x');
  if (chunked) s += "\r\n0\r\n\r\n";
  return s;
}

void parse_loop(benchmark::State& state, const std::string& resp) {
  virex::http::H1ResponseParser p;
  using E = virex::http::H1ResponseParser::Event;
  for (auto _ : state) {
    std::string_view rest = resp;
    for (;;) {
      const auto r = p.feed(rest);
      benchmark::DoNotOptimize(r);
      rest.remove_prefix(r.consumed);
      if (r.event == E::complete) break;
      if (r.event == E::error || (r.event == E::need_more && r.consumed == 0)) std::abort();
    }
    p.next();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * resp.size()));
}

void BM_ParseNginxContentLength(benchmark::State& state) { parse_loop(state, nginx_response(false)); }
BENCHMARK(BM_ParseNginxContentLength);

void BM_ParseNginxChunked(benchmark::State& state) { parse_loop(state, nginx_response(true)); }
BENCHMARK(BM_ParseNginxChunked);
}  // namespace
