// The HTTP/1.1 response codec, table-driven: every response is fed whole, one byte at a time and at every
// 2-way split point, and must give the same events, heads, decoded bodies and unconsumed remainder.
#include <virex/http/h1_response_parser.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <optional>
#include <string>
#include <vector>

// Counts heap allocations so that a test can show none happen per response once the parser is warm.
namespace {
std::atomic<std::size_t> g_allocations{0};
}
void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc{};
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace virex::http {
namespace {

using Event = H1ResponseParser::Event;

struct Options {
  H1ResponseLimits limits{};
  std::vector<bool> head_requests;  // per final response: was the request HEAD (default: no)
  bool eof = true;                  // the upstream closes once all input is fed
};

// One canonical line per outcome: "<status> <framing> <ka|close> [<body>] <complete|open>" per response (then
// " {Name=value|…}" when it had trailer fields),
// joined by "; ", then " error=<reason>" and " left=<unconsumed bytes>" when there are any.
struct Outcome {
  std::vector<std::string> messages;
  std::string trace;   // H head, B body (runs collapsed), C complete, E error
  std::string error;
  std::size_t left = 0;

  std::string str() const {
    std::string s;
    for (const auto& m : messages) s += (s.empty() ? "" : "; ") + m;
    if (!error.empty()) return s + " error=" + error;  // what is left after an error means nothing
    if (left > 0) s += " left=" + std::to_string(left);
    return s;
  }
};

std::string framing(const ResponseHead& h) {
  const int kinds = int(h.no_body) + int(h.chunked) + int(h.content_length.has_value()) + int(h.until_close);
  EXPECT_EQ(kinds, 1) << "exactly one framing per response";
  if (h.no_body) return "no-body";
  if (h.chunked) return "chunked";
  if (h.until_close) return "close-delimited";
  return "cl=" + std::to_string(*h.content_length);
}

bool within(std::string_view inner, const std::string& buf, std::size_t n) {
  return inner.empty() || (inner.data() >= buf.data() && inner.data() + inner.size() <= buf.data() + n);
}

// Feeds `input` the way an upstream connection does: the buffer grows to the next cut whenever the
// parser needs more, consumed bytes are dropped, the unconsumed rest is fed again.
Outcome run(const std::string& input, const std::vector<std::size_t>& cuts, const Options& opt) {
  Outcome out;
  H1ResponseParser p(opt.limits);
  std::size_t finals = 0;
  auto set_head = [&] { p.set_head_request(finals < opt.head_requests.size() && opt.head_requests[finals]); };
  set_head();
  std::string buf, head_line, body, trailers;
  std::size_t fed = 0, next_cut = 0, body_bytes = 0;
  bool tunnel = false;
  auto finish_message = [&](bool complete) {
    out.messages.push_back(head_line + " [" + body + "] " + (complete ? "complete" : "open") + trailers);
    head_line.clear();
    body.clear();
    trailers.clear();
  };
  for (int guard = 0; guard < 1000000; ++guard) {
    const auto r = p.feed(buf);
    EXPECT_LE(r.consumed, buf.size());
    if (r.event == Event::head) {
      const ResponseHead& h = p.head();
      EXPECT_EQ(r.consumed, h.head_bytes);
      EXPECT_TRUE(within(h.reason, buf, r.consumed));
      for (const Header& f : h.headers) EXPECT_TRUE(within(f.name, buf, r.consumed) && within(f.value, buf, r.consumed));
      head_line = std::to_string(h.status) + " " + framing(h) + " " + (h.keep_alive ? "ka" : "close");
      body_bytes = 0;
      out.trace += 'H';
    } else if (r.event == Event::body) {
      EXPECT_FALSE(p.body().empty());
      EXPECT_TRUE(within(p.body(), buf, r.consumed)) << "body is a view into the fed data";
      EXPECT_TRUE(p.body_started());
      body.append(p.body());
      body_bytes += p.body().size();
      if (const auto& cl = p.head().content_length) { EXPECT_LE(body_bytes, *cl); }
      if (out.trace.empty() || out.trace.back() != 'B') out.trace += 'B';
    } else if (r.event == Event::complete) {
      out.trace += 'C';
      const unsigned status = p.head().status;
      if (const auto& cl = p.head().content_length) { EXPECT_EQ(body_bytes, *cl); }
      if (!p.head().chunked) { EXPECT_TRUE(p.trailers().empty()); }
      for (const Header& f : p.trailers()) {
        EXPECT_FALSE(within(f.name, buf, buf.size())) << "trailers are the parser's copies";
        trailers += (trailers.empty() ? " {" : "|") + std::string(f.name) + "=" + std::string(f.value);
      }
      if (!trailers.empty()) trailers += "}";
      finish_message(true);
      p.next();
      EXPECT_TRUE(p.trailers().empty()) << "next() forgets the trailers";
      if (status == 101) tunnel = true;  // the rest belongs to the tunnel
      if (status / 100 != 1) ++finals;
      if (status / 100 != 1) set_head();
    } else if (r.event == Event::error) {
      out.trace += 'E';
      out.error = std::string(to_string(p.error()));
      EXPECT_EQ(p.feed(buf).event, Event::error) << "errors are sticky";
      if (!head_line.empty()) finish_message(false);
      break;
    }
    buf.erase(0, r.consumed);
    if (tunnel) break;
    if (r.event == Event::need_more && r.consumed == 0) {
      if (fed == input.size()) {
        if (!opt.eof) {
          if (!head_line.empty()) finish_message(false);
          break;
        }
        const auto e = p.feed_eof();
        EXPECT_EQ(e.consumed, 0u);
        if (e.event == Event::complete) {
          out.trace += 'C';
          finish_message(true);
        } else if (e.event == Event::error) {
          out.trace += 'E';
          out.error = std::string(to_string(p.error()));
          if (!head_line.empty()) finish_message(false);
        } else {
          EXPECT_EQ(e.event, Event::need_more);
          EXPECT_FALSE(p.in_message());
        }
        break;
      }
      const std::size_t to = next_cut < cuts.size() ? std::min(cuts[next_cut++], input.size()) : input.size();
      buf.append(input, fed, to - fed);
      fed = to;
    }
  }
  out.left = buf.size() + (input.size() - fed);
  return out;
}

// Whole, byte by byte, and every 2-way split must agree; returns the whole-input outcome.
Outcome run_all_splits(const std::string& input, const Options& opt = {}) {
  const Outcome whole = run(input, {input.size()}, opt);
  std::vector<std::size_t> bytes;
  for (std::size_t i = 1; i <= input.size(); ++i) bytes.push_back(i);
  const Outcome dripped = run(input, bytes, opt);
  EXPECT_EQ(dripped.str(), whole.str()) << "byte by byte";
  EXPECT_EQ(dripped.trace, whole.trace) << "byte by byte";
  for (std::size_t split = 1; split < input.size(); ++split) {
    const Outcome s = run(input, {split, input.size()}, opt);
    EXPECT_EQ(s.str(), whole.str()) << "split at " << split;
    EXPECT_EQ(s.trace, whole.trace) << "split at " << split;
  }
  return whole;
}

struct Case {
  const char* name;
  std::string input;
  std::string expect;   // Outcome::str()
  Options opt = {};
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

Options limits(std::size_t header_bytes, std::size_t headers) {
  Options o;
  o.limits.max_header_bytes = header_bytes;
  o.limits.max_headers = headers;
  return o;
}
Options head_requests(std::vector<bool> h) {
  Options o;
  o.head_requests = std::move(h);
  return o;
}
Options no_eof() {
  Options o;
  o.eof = false;
  return o;
}

const std::string kChunked =
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    "4;a=b\r\nWiki\r\n5;q=\"x y\";flag\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0;last\r\nExpires: never\r\nX-T: y\r\n\r\n";

const std::vector<Case> kValid = {
    {"content_length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "200 cl=5 ka [hello] complete"},
    {"content_length_zero", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "200 cl=0 ka [] complete"},
    {"identical_duplicate_cl", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok",
     "200 cl=2 ka [ok] complete"},
    {"chunked_ext_trailers", kChunked,
     "200 chunked ka [Wiki" "pedia in\r\n\r\nchunks.] complete {Expires=never|X-T=y}"},
    // Trailer fields are kept as sent (OWS trimmed, names not folded), in order, duplicates included, and
    // belong to their own message only.
    {"trailers_kept_per_message",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\ngrpc-status: 0\r\nGrpc-Message:\t a b \r\n"
     "X: 1\r\nx: 2\r\nConnection: close\r\n\r\n"
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
     "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz",
     "200 chunked ka [ok] complete {grpc-status=0|Grpc-Message=a b|X=1|x=2|Connection=close}; "
     "200 chunked ka [] complete; 200 cl=1 ka [z] complete"},
    {"trailers_at_max_headers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\nB: 2\r\n\r\n",
     "200 chunked ka [] complete {A=1|B=2}", limits(1024, 2)},
    {"chunked_then_next", kChunked + "HTTP/1.1 204 No Content\r\n\r\n",
     "200 chunked ka [Wikipedia in\r\n\r\nchunks.] complete {Expires=never|X-T=y}; 204 no-body ka [] complete"},
    {"gzip_then_chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nzz\r\n0\r\n\r\n",
     "200 chunked ka [zz] complete"},
    {"until_close", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nstreamed until close",
     "200 close-delimited close [streamed until close] complete"},
    {"until_close_empty", "HTTP/1.1 200 OK\r\n\r\n", "200 close-delimited close [] complete"},
    {"http10_until_close", "HTTP/1.0 200 OK\r\n\r\nold", "200 close-delimited close [old] complete"},
    // RFC 9112 §6.3 rule 4: a response whose last coding is not chunked is read until close.
    {"te_not_chunked_until_close", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b raw",
     "200 close-delimited close [\x1f\x8b raw] complete"},
    {"te_chunked_not_last_until_close", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n3\r\nabc",
     "200 close-delimited close [3\r\nabc] complete"},
    {"head_with_content_length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "200 no-body ka [] complete",
     head_requests({true})},
    {"head_with_chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "200 no-body ka [] complete",
     head_requests({true})},
    {"head_then_get", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
     "200 no-body ka [] complete; 200 cl=2 ka [hi] complete", head_requests({true, false})},
    {"204_ignores_content_length", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
     "204 no-body ka [] complete; 200 cl=1 ka [x] complete"},
    {"304_ignores_content_length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nETag: \"a\"\r\n\r\n",
     "304 no-body ka [] complete"},
    {"100_then_200", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
     "100 no-body ka [] complete; 200 cl=2 ka [ok] complete"},
    {"103_then_200", "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n",
     "103 no-body ka [] complete; 200 chunked ka [a] complete"},
    // RFC 9110 §15.2: the final response after a 1xx still answers the HEAD request.
    {"head_100_then_200", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
     "100 no-body ka [] complete; 200 no-body ka [] complete", head_requests({true})},
    {"101_leaves_tunnel_bytes",
     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello",
     "101 no-body close [] complete left=7"},
    {"keep_alive_10", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx",
     "200 cl=1 ka [x] complete"},
    {"close_10", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", "200 cl=1 close [x] complete"},
    {"close_11", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", "200 cl=1 close [x] complete"},
    {"keep_alive_11_other_tokens", "HTTP/1.1 200 OK\r\nConnection: X-Foo, keep-alive\r\nContent-Length: 0\r\n\r\n",
     "200 cl=0 ka [] complete"},
    {"pipelined", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"
                  "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nConnection: close\r\n\r\ntwo",
     "200 cl=3 ka [one] complete; 404 cl=3 close [two] complete"},
    {"pipelined_leftover_without_eof", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 2",
     "200 cl=1 ka [x] complete left=10", no_eof()},
    {"empty_reason", "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", "200 cl=0 ka [] complete"},
    {"status_599", "HTTP/1.1 599 Odd\r\nContent-Length: 0\r\n\r\n", "599 cl=0 ka [] complete"},
    {"te_two_lines_chunked_last", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n",
     "200 chunked ka [z] complete"},
    {"head_without_framing", "HTTP/1.1 200 OK\r\n\r\n", "200 no-body ka [] complete", head_requests({true})},
    {"keep_alive_10_without_length", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nx",
     "200 close-delimited close [x] complete"},
    {"header_fits_limit_exactly", "HTTP/1.1 204 No Content\r\nA: b\r\n\r\n", "204 no-body ka [] complete", limits(33, 1)},
    {"te_chunked_with_parameter", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;x=1\r\n\r\n0\r\n\r\n",
     "200 chunked ka [] complete"},
    {"nothing_then_eof", "", ""},
    {"value_ows_htab_obs_text", "HTTP/1.1 200 \x80\tOK\r\nX:\t a\tb \xff\t \r\nY:\r\nContent-Length: 0\r\n\r\n",
     "200 cl=0 ka [] complete"},
    {"cl_list_same_value", "HTTP/1.1 200 OK\r\nContent-Length: 2 ,2\r\n\r\nok", "200 cl=2 ka [ok] complete"},
    {"proxy_connection_close", "HTTP/1.1 200 OK\r\nProxy-Connection: close\r\nContent-Length: 0\r\n\r\n",
     "200 cl=0 close [] complete"},
    {"connection_empty_elements", "HTTP/1.1 200 OK\r\nConnection: , close,\r\nContent-Length: 0\r\n\r\n",
     "200 cl=0 close [] complete"},
    {"chunk_size_leading_zeros_ext_bws",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000000001 ; a = \"q\\\"\\\\\" ;b\r\nz\r\n0\r\n\r\n",
     "200 chunked ka [z] complete"},
    // The last-chunk line and the trailer section share max_header_bytes, whatever the reads.
    {"trailers_within_limit", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + std::string(80, 't') + "\r\n\r\n",
     "200 chunked ka [] complete {X=" + std::string(80, 't') + "}", limits(128, 100)},
    {"te_parameter_on_last_coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked;x=1\r\n\r\n0\r\n\r\n",
     "200 chunked ka [] complete"},
};

const std::vector<Case> kErrors = {
    {"header_too_large", "HTTP/1.1 200 OK\r\nX-Big: " + std::string(200, 'a') + "\r\n\r\n", " error=header_too_large",
     limits(128, 100)},
    {"header_exactly_at_limit", "HTTP/1.1 200 OK\r\nA: b\r\n\r\n", " error=header_too_large", limits(24, 100)},
    {"too_many_headers", "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", " error=too_many_headers",
     limits(1024, 3)},
    {"version_20", "HTTP/2.0 200 OK\r\n\r\n", " error=bad_status_line"},
    {"version_12", "HTTP/1.2 200 OK\r\n\r\n", " error=bad_status_line"},
    {"status_600", "HTTP/1.1 600 Nope\r\n\r\n", " error=bad_status_line"},
    {"status_099", "HTTP/1.1 099 Nope\r\n\r\n", " error=bad_status_line"},
    {"status_two_digits", "HTTP/1.1 20 OK\r\n\r\n", " error=bad_status_line"},
    {"status_no_space", "HTTP/1.1 200\r\n\r\n", " error=bad_status_line"},  // Beast requires the SP (RFC 9112 §4)
    {"not_http", "ICY 200 OK\r\n\r\n", " error=bad_status_line"},
    {"leading_crlf", "\r\nHTTP/1.1 200 OK\r\n\r\n", " error=bad_status_line"},
    {"nul_in_header", std::string("HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n", 27), " error=bad_header"},
    {"bare_lf", "HTTP/1.1 200 OK\r\nX: a\nY: b\r\n\r\n", " error=bad_header"},
    {"bare_cr", "HTTP/1.1 200 OK\r\nX: a\rY: b\r\n\r\n", " error=bad_header"},
    {"obs_fold", "HTTP/1.1 200 OK\r\nX: a\r\n  b\r\n\r\n", " error=bad_header"},
    {"space_before_first_header", "HTTP/1.1 200 OK\r\n X: a\r\n\r\n", " error=bad_header"},
    {"no_colon", "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", " error=bad_header"},
    {"space_in_name", "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", " error=bad_header"},
    {"cl_and_chunked", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
     " error=conflicting_framing"},
    {"chunked_and_cl", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
     " error=conflicting_framing"},
    {"gzip_and_cl", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc",
     " error=conflicting_framing"},
    {"cl_and_gzip", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: gzip\r\n\r\nabc",
     " error=conflicting_framing"},
    {"differing_cl", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
     " error=conflicting_framing"},
    {"differing_cl_list", "HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd", " error=conflicting_framing"},
    {"chunked_twice_one_line", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
     " error=conflicting_framing"},
    {"chunked_twice_two_lines", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
     " error=conflicting_framing"},
    {"te_in_http10", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", " error=conflicting_framing"},
    {"cl_not_a_number", "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", " error=bad_content_length"},
    {"cl_negative", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", " error=bad_content_length"},
    {"cl_overflow", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n", " error=bad_content_length"},
    {"bad_chunk_size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "200 chunked ka [] open error=bad_chunk"},
    {"chunk_missing_crlf", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY\r\n0\r\n\r\n",
     "200 chunked ka [abc] open error=bad_chunk"},
    {"bad_chunk_extension", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;=\r\nabc\r\n",
     "200 chunked ka [] open error=bad_chunk"},
    {"chunk_line_too_long", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;" + std::string(200, 'e'),
     "200 chunked ka [] open error=bad_chunk", limits(128, 100)},
    {"trailer_content_length", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 1\r\n\r\n",
     "200 chunked ka [] open error=bad_chunk"},
    // Beast refuses a Transfer-Encoding line after one ending in chunked, even though "chunked, gzip" on
    // one line is close-delimited (RFC 9112 §6.3 rule 4): we report it as ambiguous framing.
    {"te_two_lines_chunked_first", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
     " error=conflicting_framing"},
    {"te_empty_list", "HTTP/1.1 200 OK\r\nTransfer-Encoding: ,\r\n\r\n", " error=unknown_transfer_encoding"},
    {"te_not_a_token", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gz/ip\r\n\r\n", " error=unknown_transfer_encoding"},
    {"truncated_cl", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "200 cl=10 ka [abc] open error=truncated"},
    {"truncated_chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
     "200 chunked ka [ab] open error=truncated"},
    {"truncated_trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n",
     "200 chunked ka [] open error=truncated"},
    {"truncated_head", "HTTP/1.1 200 OK\r\nContent-Le", " error=truncated"},
    {"truncated_second_response", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n",
     "200 cl=1 ka [x] complete error=truncated"},
    // RFC 9110 §5.5: a field value holds no control other than HTAB, nor DEL; nor does the reason phrase.
    {"del_in_value", "HTTP/1.1 200 OK\r\nX: a\x7f\r\n\r\n", " error=bad_header"},
    {"ctl_in_value", "HTTP/1.1 200 OK\r\nX: a\x01-b\r\n\r\n", " error=bad_header"},
    {"ctl_in_reason", "HTTP/1.1 200 O\x1bK\r\n\r\n", " error=bad_status_line"},
    {"space_before_colon", "HTTP/1.1 200 OK\r\nX : a\r\n\r\n", " error=bad_header"},
    {"connection_not_a_list", "HTTP/1.1 200 OK\r\nConnection: keep alive\r\n\r\n", " error=bad_header"},
    {"cl_list_empty_element", "HTTP/1.1 200 OK\r\nContent-Length: 3,,3\r\n\r\nabc", " error=bad_content_length"},
    {"cl_empty", "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", " error=bad_content_length"},
    {"te_then_bad_cl", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: x\r\n\r\n", " error=conflicting_framing"},
    // Codings read up to the first parameter and read whole disagree on chunked being last: ambiguous.
    {"te_parameter_then_chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip;q=1, chunked\r\n\r\n0\r\n\r\n",
     " error=unknown_transfer_encoding"},
    {"te_chunked_parameter_not_last", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;q=1, gzip\r\n\r\nabc",
     " error=unknown_transfer_encoding"},
    {"chunk_size_overflow", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
     "200 chunked ka [] open error=bad_chunk"},
    {"chunk_size_trailing_space", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\nz\r\n0\r\n\r\n",
     "200 chunked ka [] open error=bad_chunk"},
    // A bare LF or another control inside a quoted chunk extension: a known smuggling vector.
    {"lf_in_quoted_chunk_ext", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;a=\"\n\"\r\nz\r\n0\r\n\r\n",
     "200 chunked ka [] open error=bad_chunk"},
    {"ctl_in_quoted_chunk_ext", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;a=\"\x01\"\r\nz\r\n0\r\n\r\n",
     "200 chunked ka [] open error=bad_chunk"},
    {"unterminated_quoted_chunk_ext", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;a=\"x\r\nz\"\r\n0\r\n\r\n",
     "200 chunked ka [] open error=bad_chunk"},
    {"bare_cr_after_chunk_data", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\rX0\r\n\r\n",
     "200 chunked ka [z] open error=bad_chunk"},
    {"trailer_obs_fold", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n",
     "200 chunked ka [] open error=bad_chunk"},
    {"trailer_transfer_encoding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nTransfer-Encoding: gzip\r\n\r\n",
     "200 chunked ka [] open error=bad_chunk"},
    {"trailer_bad_connection", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nConnection: a b\r\n\r\n",
     "200 chunked ka [] open error=bad_chunk"},
    {"too_many_trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
     "200 chunked ka [] open error=too_many_headers", limits(1024, 2)},
    {"trailers_over_limit", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + std::string(130, 't') + "\r\n\r\n",
     "200 chunked ka [] open error=bad_chunk", limits(128, 100)},
};

class Valid : public ::testing::TestWithParam<Case> {};
TEST_P(Valid, SameAtEverySplit) {
  const Case& c = GetParam();
  const Outcome o = run_all_splits(c.input, c.opt);
  EXPECT_EQ(o.str(), c.expect);
  EXPECT_TRUE(o.error.empty());
}
INSTANTIATE_TEST_SUITE_P(H1Response, Valid, ::testing::ValuesIn(kValid),
                         [](const auto& info) { return std::string(info.param.name); });

class Invalid : public ::testing::TestWithParam<Case> {};
TEST_P(Invalid, SameErrorAtEverySplit) {
  const Case& c = GetParam();
  const Outcome o = run_all_splits(c.input, c.opt);
  EXPECT_EQ(o.str(), c.expect);
  EXPECT_FALSE(o.error.empty());
}
INSTANTIATE_TEST_SUITE_P(H1Response, Invalid, ::testing::ValuesIn(kErrors),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(H1Response, HeadViewsAndLookup) {
  const std::string in = "HTTP/1.1 201 Created Now\r\nLocation: /x\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 1\r\n\r\n";
  H1ResponseParser p;
  const auto r = p.feed(in);
  ASSERT_EQ(r.event, Event::head);
  const ResponseHead& h = p.head();
  EXPECT_EQ(r.consumed, in.size());
  EXPECT_EQ(h.head_bytes, in.size());
  EXPECT_EQ(h.status, 201u);
  EXPECT_EQ(h.version, 11);
  EXPECT_EQ(h.reason, "Created Now");
  ASSERT_EQ(h.headers.size(), 4u);
  EXPECT_EQ(h.headers[2].name, "x-a");
  EXPECT_EQ(h.header("X-a"), "1");  // the first, case-insensitive
  EXPECT_EQ(h.header("location"), "/x");
  EXPECT_EQ(h.header("missing"), "");
  EXPECT_EQ(h.headers[0].value.data(), in.data() + in.find("/x"));  // a view, not a copy
  EXPECT_TRUE(p.in_message());
  EXPECT_FALSE(p.body_started());
  EXPECT_EQ(p.feed("x").event, Event::body);
  EXPECT_TRUE(p.body_started());
  EXPECT_EQ(p.feed({}).event, Event::complete);
  EXPECT_FALSE(p.in_message());
}

TEST(H1Response, EofStates) {
  H1ResponseParser p;
  auto r = p.feed_eof();  // nothing in progress: a clean close, not an error
  EXPECT_EQ(r.event, Event::need_more);
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_EQ(p.error(), ResponseError::none);

  const std::string in = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  ASSERT_EQ(p.feed(in).event, Event::head);
  EXPECT_FALSE(p.body_started());
  ASSERT_EQ(p.feed(std::string_view(in).substr(in.size() - 2)).event, Event::body);
  EXPECT_TRUE(p.body_started());
  ASSERT_EQ(p.feed({}).event, Event::complete);
  EXPECT_EQ(p.feed_eof().event, Event::need_more);  // complete, next() not yet called
  p.next();
  EXPECT_EQ(p.feed_eof().event, Event::need_more);

  ASSERT_EQ(p.feed("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n").event, Event::head);
  EXPECT_EQ(p.feed_eof().event, Event::error);
  EXPECT_EQ(p.error(), ResponseError::truncated);
  EXPECT_EQ(p.feed_eof().event, Event::error);
  EXPECT_EQ(to_string(p.error()), "truncated");
}

TEST(H1Response, HeadFlagClearedAfterFinalResponse) {
  H1ResponseParser p;
  p.set_head_request(true);
  ASSERT_EQ(p.feed("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n").event, Event::head);
  EXPECT_TRUE(p.head().no_body);
  EXPECT_FALSE(p.head().content_length.has_value());
  ASSERT_EQ(p.feed({}).event, Event::complete);
  p.next();
  const std::string in = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody";
  const auto r = p.feed(in);
  ASSERT_EQ(r.event, Event::head);
  EXPECT_FALSE(p.head().no_body);
  EXPECT_EQ(p.head().content_length, 4u);
}

TEST(H1Response, MoveKeepsState) {
  H1ResponseParser a;
  const std::string in = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody";
  const auto r = a.feed(in);
  ASSERT_EQ(r.event, Event::head);
  H1ResponseParser b(std::move(a));
  EXPECT_EQ(b.head().status, 200u);
  const auto r2 = b.feed(std::string_view(in).substr(r.consumed));
  ASSERT_EQ(r2.event, Event::body);
  EXPECT_EQ(b.body(), "body");
}

TEST(H1Response, NoAllocationPerResponseOnceWarm) {
  const std::string in = kChunked + "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\nA: b\r\n\r\nabc";
  H1ResponseParser p;
  auto parse_all = [&] {
    std::string_view rest = in;
    for (int i = 0; i < 100 && !rest.empty(); ++i) {
      const auto r = p.feed(rest);
      rest.remove_prefix(r.consumed);
      if (r.event == Event::complete) p.next();
      if (r.event == Event::error) return false;
    }
    return rest.empty();
  };
  ASSERT_TRUE(parse_all());
  const std::size_t before = g_allocations.load();
  bool ok = true;
  for (int i = 0; i < 50; ++i) ok = parse_all() && ok;
  const std::size_t after = g_allocations.load();
  ASSERT_TRUE(ok);
  EXPECT_EQ(after, before);
}

TEST(H1Response, ErrorNames) {
  EXPECT_EQ(to_string(ResponseError::none), "none");
  EXPECT_EQ(to_string(ResponseError::conflicting_framing), "conflicting_framing");
  EXPECT_EQ(to_string(ResponseError::unknown_transfer_encoding), "unknown_transfer_encoding");
}

}  // namespace
}  // namespace virex::http
