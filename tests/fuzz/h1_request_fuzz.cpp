// libFuzzer target: the HTTP/1.1 request codec fed arbitrary bytes, split at a fuzzer-chosen point and
// with fuzzer-chosen limits, exactly as a connection feeds it (unconsumed bytes re-fed, then more).
#include <virex/http/h1_parser.hpp>

#include <cstdint>
#include <cstring>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  virex::http::H1Limits lim;
  lim.max_header_bytes = 256 + data[0] * 16;
  lim.max_uri_bytes = 64 + data[0] * 4;
  lim.max_body_bytes = data[1] * 64;
  const std::size_t split = size > 2 ? data[1] % (size - 2) : 0;
  const std::string input(reinterpret_cast<const char*>(data + 2), size - 2);
  virex::http::H1RequestParser p(lim);
  std::string buf;
  std::size_t fed = 0;
  for (int round = 0; round < 10000; ++round) {
    if (fed < input.size()) {
      const std::size_t take = (round == 0 && split > 0) ? split : input.size() - fed;
      buf.append(input, fed, take);
      fed += take;
    }
    const auto r = p.feed(buf);
    buf.erase(0, r.consumed);
    using E = virex::http::H1RequestParser::Event;
    if (r.event == E::error) {
      (void)virex::http::status_of(p.error());
      break;
    }
    if (r.event == E::head) {
      const auto& h = p.head();
      // Views must lie inside what was fed; touching them lets ASan catch dangling ones.
      volatile std::size_t sink = h.path.size() + h.host.size();
      for (const auto& f : h.headers) sink = sink + f.name.size() + (f.value.empty() ? 0 : f.value[0]);
    }
    if (r.event == E::complete) {
      p.next();
      if (data[0] & 1) p.release_idle();  // as an idle keep-alive connection does (pooled state)
    }
    if (r.event == E::need_more && r.consumed == 0 && fed == input.size()) break;
  }
  return 0;
}
