// The HTTP/1.1 request codec fed bytes at every split point, for valid and for malformed input.
#include <virex/http/h1_parser.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace virex::http {
namespace {

struct Seen {
  std::vector<std::string> targets, hosts, bodies;
  std::vector<bool> keep_alive, expect;
  ParseError error = ParseError::none;
};

// Feeds `input` the way a connection does: a buffer that gains `step` bytes at a time, consumed bytes
// dropped, the unconsumed rest fed again.
Seen run(const std::string& input, std::size_t first_split, H1Limits lim = {}) {
  Seen s;
  H1RequestParser p(lim);
  std::string buf;
  std::size_t fed = 0;
  std::string body;
  for (int guard = 0; guard < 100000; ++guard) {
    const auto r = p.feed(buf);
    using E = H1RequestParser::Event;
    if (r.event == E::head) {
      s.targets.emplace_back(p.head().target);
      s.hosts.emplace_back(p.head().host);
      s.keep_alive.push_back(p.head().keep_alive);
      s.expect.push_back(p.head().expect_continue);
    } else if (r.event == E::body) {
      body.append(p.body());
    } else if (r.event == E::complete) {
      s.bodies.push_back(body);
      body.clear();
      p.next();
    } else if (r.event == E::error) {
      s.error = p.error();
      return s;
    }
    buf.erase(0, r.consumed);
    if (r.event == E::need_more && r.consumed == 0) {
      if (fed == input.size()) return s;
      const std::size_t take = fed == 0 ? std::max<std::size_t>(first_split, 1) : input.size() - fed;
      buf.append(input, fed, std::min(take, input.size() - fed));
      fed += std::min(take, input.size() - fed);
    }
  }
  ADD_FAILURE() << "parser did not make progress";
  return s;
}

// Every split point gives the same result as feeding the whole input at once.
Seen run_all_splits(const std::string& input, H1Limits lim = {}) {
  const Seen whole = run(input, input.size(), lim);
  for (std::size_t split = 1; split < input.size(); ++split) {
    const Seen s = run(input, split, lim);
    EXPECT_EQ(s.targets, whole.targets) << "split " << split;
    EXPECT_EQ(s.bodies, whole.bodies) << "split " << split;
    EXPECT_EQ(s.error, whole.error) << "split " << split;
  }
  return whole;
}

TEST(H1Parser, SimpleGet) {
  const Seen s = run_all_splits("GET /a?b=1 HTTP/1.1\r\nHost: Example.com:8080\r\n\r\n");
  ASSERT_EQ(s.targets.size(), 1u);
  EXPECT_EQ(s.targets[0], "/a?b=1");
  EXPECT_EQ(s.hosts[0], "Example.com");
  EXPECT_TRUE(s.keep_alive[0]);
  EXPECT_EQ(s.error, ParseError::none);
}

TEST(H1Parser, PathQueryAndAbsoluteForm) {
  H1RequestParser p({});
  const std::string req = "GET http://h.example:81/p/q?x=1 HTTP/1.1\r\nHost: other\r\n\r\n";
  auto r = p.feed(req);
  ASSERT_EQ(r.event, H1RequestParser::Event::head);
  EXPECT_EQ(p.head().path, "/p/q");
  EXPECT_EQ(p.head().query, "x=1");
  EXPECT_EQ(p.head().host, "h.example");  // RFC 9112 §3.2.2: the absolute-form authority wins
  EXPECT_EQ(p.head().method, Method::get);
}

TEST(H1Parser, PipelinedWithBodies) {
  const std::string in =
      "POST /one HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
      "POST /two HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n"
      "GET /three HTTP/1.1\r\nHost: a\r\n\r\n";
  const Seen s = run_all_splits(in);
  ASSERT_EQ(s.targets, (std::vector<std::string>{"/one", "/two", "/three"}));
  EXPECT_EQ(s.bodies, (std::vector<std::string>{"hello", "abcde", ""}));
}

TEST(H1Parser, TargetForms) {
  Seen s = run_all_splits("\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");  // RFC 9112 §2.2: leading CRLFs ignored
  EXPECT_EQ(s.error, ParseError::none);
  EXPECT_EQ(s.targets, std::vector<std::string>{"*"});
  s = run("GET HTTPS://Example.com:8443?q HTTP/1.1\r\nHost: x\r\n\r\n", 1000);
  EXPECT_EQ(s.error, ParseError::none);
  EXPECT_EQ(s.hosts, std::vector<std::string>{"Example.com"});
  s = run("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 1000);
  EXPECT_EQ(s.hosts, std::vector<std::string>{"[::1]"});
}

TEST(H1Parser, KeepAliveRules) {
  Seen s = run("GET / HTTP/1.0\r\n\r\n", 100);
  ASSERT_EQ(s.keep_alive.size(), 1u);
  EXPECT_FALSE(s.keep_alive[0]);  // HTTP/1.0 without Host is fine, and closes
  s = run("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 100);
  EXPECT_TRUE(s.keep_alive[0]);
  s = run("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 100);
  EXPECT_FALSE(s.keep_alive[0]);
}

TEST(H1Parser, ExpectContinue) {
  const Seen s = run("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx", 100);
  ASSERT_EQ(s.expect.size(), 1u);
  EXPECT_TRUE(s.expect[0]);
}

// An empty chunked body dripped byte by byte: Beast 1.81's debug-only assertion in the last-chunk
// resume path (boostorg/beast#2861) must not be reached.
TEST(H1Parser, EmptyChunkedBodyByteByByte) {
  const std::string in = "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n\r\n"
                         "GET /n HTTP/1.1\r\nHost: a\r\n\r\n";
  H1RequestParser p({});
  std::string buf;
  std::vector<std::string> targets;
  for (std::size_t fed = 0; fed < in.size();) {
    buf.push_back(in[fed++]);
    for (;;) {
      const auto r = p.feed(buf);
      buf.erase(0, r.consumed);
      if (r.event == H1RequestParser::Event::head) targets.emplace_back(p.head().target);
      if (r.event == H1RequestParser::Event::complete) p.next();
      ASSERT_NE(r.event, H1RequestParser::Event::error) << to_string(p.error());
      if (r.event == H1RequestParser::Event::need_more && r.consumed == 0) break;
    }
  }
  EXPECT_EQ(targets, (std::vector<std::string>{"/c", "/n"}));
}

struct BadCase {
  const char* name;
  std::string input;
  ParseError error;
  unsigned status;
};

class H1Bad : public ::testing::TestWithParam<BadCase> {};

TEST_P(H1Bad, RejectedAtEverySplit) {
  H1Limits lim;
  lim.max_header_bytes = 1024;
  lim.max_uri_bytes = 128;
  lim.max_body_bytes = 16;
  const Seen s = run_all_splits(GetParam().input, lim);
  EXPECT_EQ(s.error, GetParam().error) << to_string(s.error);
  EXPECT_EQ(status_of(s.error), GetParam().status);
}

INSTANTIATE_TEST_SUITE_P(
    Table, H1Bad,
    ::testing::Values(
        BadCase{"header_too_large", "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(2000, 'a') + "\r\n\r\n",
                ParseError::header_too_large, 431},
        BadCase{"uri_too_long", "GET /" + std::string(300, 'u') + " HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::uri_too_long, 414},
        BadCase{"body_too_large_cl", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n", ParseError::body_too_large, 413},
        BadCase{"body_too_large_chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n1\r\nx\r\n0\r\n\r\n",
                ParseError::body_too_large, 413},
        BadCase{"cl_and_te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                ParseError::conflicting_framing, 400},
        BadCase{"te_and_cl", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                ParseError::bad_content_length, 400},
        BadCase{"differing_cl", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
                ParseError::bad_content_length, 400},
        BadCase{"bad_cl", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3x\r\n\r\nabc", ParseError::bad_content_length, 400},
        BadCase{"bad_chunk_size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
                ParseError::bad_chunk, 400},
        BadCase{"unknown_te", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
                ParseError::unknown_transfer_encoding, 501},
        BadCase{"gzip_chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                ParseError::unknown_transfer_encoding, 501},
        BadCase{"bare_cr", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", ParseError::bad_header_chars, 400},
        BadCase{"bare_lf", "GET / HTTP/1.1\nHost: a\r\n\r\n", ParseError::bad_header_chars, 400},
        BadCase{"nul", std::string("GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n", 29), ParseError::bad_header_chars, 400},
        BadCase{"obs_fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  c\r\n\r\n", ParseError::obs_fold, 400},
        BadCase{"missing_host", "GET / HTTP/1.1\r\nX: y\r\n\r\n", ParseError::missing_host, 400},
        BadCase{"duplicate_host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", ParseError::duplicate_host, 400},
        BadCase{"bad_version", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", ParseError::bad_version, 505},
        BadCase{"http10_chunked", "POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                ParseError::conflicting_framing, 400},
        BadCase{"target_not_origin_form", "GET Xabc HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::bad_target, 400},
        BadCase{"asterisk_without_options", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::bad_target, 400},
        BadCase{"absolute_with_userinfo", "GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", ParseError::bad_target, 400},
        BadCase{"absolute_other_scheme", "GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n", ParseError::bad_target, 400},
        BadCase{"bad_host", "GET / HTTP/1.1\r\nHost: a/b@c\r\n\r\n", ParseError::bad_host, 400},
        BadCase{"host_too_long", "GET / HTTP/1.1\r\nHost: " + std::string(300, 'h') + "\r\n\r\n", ParseError::bad_host, 400},
        BadCase{"endless_chunk_extension", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1;x=" +
                std::string(2000, 'e'), ParseError::bad_chunk, 400},
        BadCase{"endless_trailer", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX: " +
                std::string(2000, 't'), ParseError::bad_chunk, 400},
        BadCase{"garbage", "\x16\x03\x01\x02\x01\x01\x01\x01\xfc\x03\x03\r\n\r\n", ParseError::bad_request_line, 400}),
    [](const auto& info) { return std::string(info.param.name); });

void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

}  // namespace
}  // namespace virex::http
