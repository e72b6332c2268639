// libFuzzer target: the HTTP/1.1 response codec fed arbitrary bytes, split at fuzzer-chosen points, with
// fuzzer-chosen limits and HEAD flag, as an upstream connection feeds it; checks the codec's invariants.
#include <virex/http/h1_response_parser.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using virex::http::H1ResponseParser;
  using E = H1ResponseParser::Event;
  if (size < 3) return 0;
  virex::http::H1ResponseLimits lim;
  lim.max_header_bytes = 64 + data[0] * 16;
  lim.max_headers = 1 + data[1] % 32;
  const bool head_request = data[2] & 1;
  const std::size_t step = 1 + (data[2] >> 1);  // bytes added per round after the first split
  const std::string input(reinterpret_cast<const char*>(data + 3), size - 3);
  const std::size_t split = input.empty() ? 0 : data[1] % (input.size() + 1);

  H1ResponseParser p(lim);
  p.set_head_request(head_request);
  std::string buf;
  std::size_t fed = 0;
  std::uint64_t body_bytes = 0;
  bool in_body = false;
  bool head_active = head_request;  // the HEAD flag covers 1xx and the first final response only
  int zero_streak = 0;              // completes in a row that consumed nothing
  for (int round = 0;; ++round) {
    check(round < 1000000);  // no progress-less loop
    const auto r = p.feed(buf);
    check(r.consumed <= buf.size());
    // head and body always consume; a complete may not, but two in a row without a byte is a stall.
    zero_streak = r.consumed > 0 ? 0 : zero_streak + (r.event == E::complete ? 1 : 0);
    check(zero_streak <= 1);
    const auto& h = p.head();
    switch (r.event) {
      case E::head:
        check(r.consumed > 0 && r.consumed == h.head_bytes);
        check(int(h.no_body) + int(h.chunked) + int(h.content_length.has_value()) + int(h.until_close) == 1);
        check(h.status >= 100 && h.status <= 599 && (h.version == 10 || h.version == 11));
        check(!head_active || h.no_body);
        for (const auto& f : h.headers) {  // views inside what was fed (ASan catches dangling ones)
          check(f.name.data() >= buf.data() && f.value.data() + f.value.size() <= buf.data() + r.consumed);
        }
        body_bytes = 0;
        in_body = true;
        break;
      case E::body:
        check(p.trailers().empty());
        check(in_body && !h.no_body && r.consumed > 0 && !p.body().empty());
        check(p.body().data() >= buf.data() && p.body().data() + p.body().size() <= buf.data() + r.consumed);
        body_bytes += p.body().size();
        if (h.content_length) check(body_bytes <= *h.content_length);
        break;
      case E::complete:
        check(in_body && !p.in_message());
        if (h.content_length) check(body_bytes == *h.content_length);
        if (h.no_body) check(body_bytes == 0);
        if (!h.chunked) check(p.trailers().empty());
        {
          std::size_t trailer_bytes = 0;  // the parser's own copies (ASan catches dangling ones), within the limits
          for (const auto& f : p.trailers()) {
            check(!f.name.empty());
            trailer_bytes += f.name.size() + f.value.size();
          }
          check(p.trailers().size() <= lim.max_headers && trailer_bytes <= lim.max_header_bytes);
        }
        in_body = false;
        if (h.status == 101) return 0;  // the rest is the tunnel's
        if (h.status >= 200) head_active = false;
        p.next();
        break;
      case E::error:
        check(p.error() != virex::http::ResponseError::none);
        check(p.feed(buf).event == E::error && p.feed_eof().event == E::error);
        return 0;
      case E::need_more:
        break;
    }
    buf.erase(0, r.consumed);
    if (r.event == E::need_more) {
      if (r.consumed > 0) continue;  // feed the rest again before adding bytes
      if (fed == input.size()) {
        const auto e = p.feed_eof();
        check(e.consumed == 0);
        if (e.event == E::complete) check(in_body && h.until_close);
        if (e.event == E::need_more) check(!p.in_message());
        return 0;
      }
      const std::size_t take = fed == 0 && split > 0 ? split : std::min(step, input.size() - fed);
      buf.append(input, fed, take);
      fed += take;
    }
  }
}
