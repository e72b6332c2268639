// Proxy header rewriting, table-driven: hop-by-hop removal (RFC 9110 §7.6.1), X-Forwarded-*, Via, Host,
// traceparent, WebSocket, response framing per client version and status, trusted-proxy ranges.
#include <virex/upstream/forward.hpp>

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <charconv>
#include <string>
#include <vector>

// Cases name only the fields they set (designated initializers); the rest keep their defaults on purpose.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace virex::upstream {
namespace {

// "10.0.0.0/8", "2001:db8::/32", "::1": IPv4 stored mapped with the prefix counted on 128 bits, as config does.
config::Cidr cidr(std::string_view text) {
  config::Cidr c;
  const std::size_t slash = text.find('/');
  const std::string addr(text.substr(0, slash));
  const bool v6 = addr.find(':') != std::string::npos;
  unsigned prefix = v6 ? 128 : 32;
  if (slash != std::string_view::npos) {
    std::from_chars(text.data() + slash + 1, text.data() + text.size(), prefix);
  }
  if (v6) {
    EXPECT_EQ(inet_pton(AF_INET6, addr.c_str(), c.bytes.data()), 1) << text;
    c.prefix = prefix;
  } else {
    EXPECT_EQ(inet_pton(AF_INET, addr.c_str(), c.bytes.data() + 12), 1) << text;
    c.bytes[10] = c.bytes[11] = 0xff;
    c.prefix = prefix + 96;
  }
  return c;
}

// ---- is_trusted ------------------------------------------------------------------------------------------

struct TrustCase {
  std::vector<std::string_view> ranges;
  std::string_view addr;
  bool want;
};

void PrintTo(const TrustCase& c, std::ostream* os) { *os << c.addr; }

class Trusted : public ::testing::TestWithParam<TrustCase> {};

TEST_P(Trusted, Matches) {
  const TrustCase& c = GetParam();
  std::vector<config::Cidr> ranges;
  for (const auto r : c.ranges) ranges.push_back(cidr(r));
  EXPECT_EQ(is_trusted(ranges, c.addr), c.want) << c.addr;
}

INSTANTIATE_TEST_SUITE_P(
    Ranges, Trusted,
    ::testing::Values(
        TrustCase{{}, "10.0.0.1", false},
        TrustCase{{"10.0.0.0/8"}, "10.255.1.2", true},
        TrustCase{{"10.0.0.0/8"}, "11.0.0.1", false},
        TrustCase{{"10.0.0.0/8"}, "9.255.255.255", false},
        TrustCase{{"192.168.1.0/24"}, "192.168.1.255", true},
        TrustCase{{"192.168.1.0/24"}, "192.168.2.0", false},
        TrustCase{{"172.16.0.0/12"}, "172.31.255.255", true},   // prefix inside a byte
        TrustCase{{"172.16.0.0/12"}, "172.32.0.0", false},
        TrustCase{{"172.16.0.0/12"}, "172.15.255.255", false},
        TrustCase{{"203.0.113.7/32"}, "203.0.113.7", true},
        TrustCase{{"203.0.113.7/32"}, "203.0.113.6", false},
        TrustCase{{"203.0.113.7"}, "203.0.113.7", true},         // a single address
        TrustCase{{"0.0.0.0/0"}, "198.51.100.1", true},            // all of IPv4 (prefix 96 on 128 bits)
        TrustCase{{"0.0.0.0/0"}, "2001:db8::1", false},            // ... but not IPv6
        TrustCase{{"::/0"}, "2001:db8::1", true},                  // prefix 0: everything
        TrustCase{{"::/0"}, "198.51.100.1", true},
        TrustCase{{"2001:db8::/32"}, "2001:db8:ffff::1", true},
        TrustCase{{"2001:db8::/32"}, "2001:db9::1", false},
        TrustCase{{"2001:db8::/33"}, "2001:db8:7fff::1", true},
        TrustCase{{"2001:db8::/33"}, "2001:db8:8000::1", false},
        TrustCase{{"2001:db8::1/128"}, "2001:db8::1", true},
        TrustCase{{"2001:db8::1/128"}, "2001:db8::2", false},
        TrustCase{{"::1"}, "::1", true},
        TrustCase{{"::1"}, "::2", false},
        TrustCase{{"fe80::/10"}, "fe80::1%eth0", true},            // a zone id is ignored
        TrustCase{{"10.0.0.0/8"}, "::ffff:10.1.2.3", true},        // IPv4-mapped from a dual-stack socket
        TrustCase{{"10.0.0.0/8"}, "::ffff:11.1.2.3", false},
        TrustCase{{"::ffff:10.0.0.0/104"}, "10.9.9.9", true},      // the same range written in IPv6
        TrustCase{{"10.0.0.0/8"}, "::10.1.2.3", false},            // IPv4-compatible is not mapped
        TrustCase{{"2001:db8::/32", "10.0.0.0/8"}, "10.0.0.1", true},
        TrustCase{{"10.0.0.0/8"}, "", false},
        TrustCase{{"10.0.0.0/8"}, "10.0.0", false},
        TrustCase{{"10.0.0.0/8"}, "10.0.0.1:80", false},
        TrustCase{{"::/0"}, "not an address", false},
        TrustCase{{"::/0"}, "[2001:db8::1]", true},
        TrustCase{{"::/0"}, "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd", false}));

// ---- requests --------------------------------------------------------------------------------------------

struct RequestCase {
  const char* name;
  std::vector<http::Header> headers;
  RequestForward f;
  std::string want;   // the headers after the request line and Host, and the final CRLF
  std::string_view method = "GET";
  bool chunked = false;
  std::optional<std::uint64_t> content_length;
};

void PrintTo(const RequestCase& c, std::ostream* os) { *os << c.name; }

RequestForward fwd(RequestForward f = {}) {
  if (f.path.empty()) f.path = "/p";
  if (f.client_addr.empty()) f.client_addr = "203.0.113.7";
  return f;
}

// The lines the proxy always adds for an untrusted client at 203.0.113.7 with Host h.example.
const std::string kForwarded =
    "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h.example\r\n";

class Request : public ::testing::TestWithParam<RequestCase> {};

TEST_P(Request, Rewritten) {
  const RequestCase& c = GetParam();
  std::vector<http::Header> headers = {{"Host", "h.example"}};
  headers.insert(headers.end(), c.headers.begin(), c.headers.end());
  http::RequestHead head;
  head.method_text = c.method;
  head.method = http::method_from_string(c.method);
  head.target = "/orig?q";
  head.path = "/orig";
  head.query = "q";
  head.host = "h.example";
  head.headers = headers;
  head.chunked = c.chunked;
  head.content_length = c.content_length;
  std::string out;
  append_request_head(out, head, c.f);
  const std::string line = std::string(c.method) + " /p HTTP/1.1\r\nHost: h.example\r\n";
  ASSERT_EQ(out.substr(0, line.size()), line);
  EXPECT_EQ(out.substr(line.size()), c.want);
}

INSTANTIATE_TEST_SUITE_P(
    HopByHop, Request,
    ::testing::Values(
        RequestCase{"end_to_end_kept",
                    {{"Accept", "*/*"}, {"User-Agent", "t"}, {"Cookie", "a=1"}},
                    fwd(),
                    "Accept: */*\r\nUser-Agent: t\r\nCookie: a=1\r\n" + kForwarded + "\r\n"},
        RequestCase{"connection_keep_alive",
                    {{"Connection", "keep-alive"}, {"Keep-Alive", "timeout=5"}, {"Accept", "*/*"}},
                    fwd(), "Accept: */*\r\n" + kForwarded + "\r\n"},
        RequestCase{"all_hop_by_hop",
                    {{"TE", "trailers"}, {"Trailer", "X-Sum"}, {"Upgrade", "h2c"}, {"Proxy-Connection", "keep-alive"},
                     {"Proxy-Authorization", "Basic eA=="}, {"Proxy-Foo", "1"}, {"Keep-Alive", "1"},
                     {"Connection", "close"}, {"Accept", "a"}},
                    fwd(), "Accept: a\r\n" + kForwarded + "\r\n"},
        RequestCase{"case_insensitive_names",
                    {{"CONNECTION", "close"}, {"kEEp-aLIVe", "1"}, {"te", "x"}, {"PROXY-AUTHORIZATION", "x"},
                     {"upgrade", "x"}, {"Accept", "a"}},
                    fwd(), "Accept: a\r\n" + kForwarded + "\r\n"},
        RequestCase{"connection_named_header_removed",
                    {{"Connection", "close, X-Secret"}, {"X-Secret", "s"}, {"X-Public", "p"}},
                    fwd(), "X-Public: p\r\n" + kForwarded + "\r\n"},
        RequestCase{"connection_list_with_whitespace",
                    {{"Connection", " ,x-a ,\tX-B\t, , keep-alive"}, {"X-A", "1"}, {"x-b", "2"}, {"X-C", "3"}},
                    fwd(), "X-C: 3\r\n" + kForwarded + "\r\n"},
        RequestCase{"several_connection_headers",
                    {{"X-A", "1"}, {"Connection", "x-a"}, {"X-B", "2"}, {"connection", "X-B"}, {"X-C", "3"}},
                    fwd(), "X-C: 3\r\n" + kForwarded + "\r\n"},
        RequestCase{"many_connection_headers",
                    {{"Connection", "a"}, {"Connection", "b"}, {"Connection", "c"}, {"Connection", "d"},
                     {"Connection", "e"}, {"Connection", "f"}, {"Connection", "g"}, {"Connection", "h"},
                     {"Connection", "i"}, {"Connection", "X-Late"}, {"X-Late", "1"}, {"Y", "1"}},
                    fwd(), "Y: 1\r\n" + kForwarded + "\r\n"},
        RequestCase{"connection_token_not_prefix",
                    {{"Connection", "X-Sec"}, {"X-Secret", "s"}},
                    fwd(), "X-Secret: s\r\n" + kForwarded + "\r\n"},
        RequestCase{"framing_headers_redecided_length",
                    {{"Content-Length", "5"}, {"Transfer-Encoding", "chunked"}},
                    fwd(), kForwarded + "Content-Length: 5\r\n\r\n", "POST", false, 5},
        RequestCase{"framing_chunked",
                    {{"Transfer-Encoding", "chunked"}}, fwd(),
                    kForwarded + "Transfer-Encoding: chunked\r\n\r\n", "POST", true},
        RequestCase{"framing_none", {{"Content-Length", "0"}}, fwd(), kForwarded + "\r\n"},
        RequestCase{"method_kept",
                    {}, fwd(), kForwarded + "Content-Length: 0\r\n\r\n", "PURGE", false, 0}),
    [](const auto& info) { return std::string(info.param.name); });

INSTANTIATE_TEST_SUITE_P(
    Forwarded, Request,
    ::testing::Values(
        RequestCase{"xff_untrusted_replaced",
                    {{"X-Forwarded-For", "1.2.3.4"}, {"X-Forwarded-Proto", "https"}, {"X-Forwarded-Host", "evil"}},
                    fwd(), kForwarded + "\r\n"},
        RequestCase{"xff_trusted_appended",
                    {{"X-Forwarded-For", "198.51.100.9"}},
                    fwd({.client_trusted = true}),
                    "X-Forwarded-For: 198.51.100.9, 203.0.113.7\r\nX-Forwarded-Proto: http\r\n"
                    "X-Forwarded-Host: h.example\r\n\r\n"},
        RequestCase{"xff_trusted_several_headers_joined",
                    {{"x-forwarded-for", "1.1.1.1, 2.2.2.2"}, {"Accept", "a"}, {"X-Forwarded-For", "3.3.3.3"}},
                    fwd({.client_trusted = true}),
                    "Accept: a\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 203.0.113.7\r\n"
                    "X-Forwarded-Proto: http\r\nX-Forwarded-Host: h.example\r\n\r\n"},
        RequestCase{"xff_trusted_none_yet", {}, fwd({.client_trusted = true}), kForwarded + "\r\n"},
        RequestCase{"xfp_xfh_trusted_kept",
                    {{"X-Forwarded-Proto", "https"}, {"X-Forwarded-Host", "www.example"}},
                    fwd({.client_trusted = true, .proto = "http"}),
                    "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: www.example\r\n\r\n"},
        RequestCase{"xfp_from_listener", {}, fwd({.proto = "https"}),
                    "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: h.example\r\n\r\n"},
        RequestCase{"ipv6_client", {}, fwd({.client_addr = "2001:db8::1"}),
                    "X-Forwarded-For: 2001:db8::1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h.example\r\n\r\n"},
        RequestCase{"via_added", {}, fwd({.via = "1.1 edge"}), kForwarded + "Via: 1.1 edge\r\n\r\n"},
        RequestCase{"via_appended",
                    {{"Via", "1.0 a"}, {"Accept", "x"}, {"via", "1.1 b, 1.1 c"}},
                    fwd({.via = "1.1 edge"}), "Accept: x\r\n" + kForwarded + "Via: 1.0 a, 1.1 b, 1.1 c, 1.1 edge\r\n\r\n"},
        RequestCase{"via_passed_when_off", {{"Via", "1.0 a"}}, fwd(), "Via: 1.0 a\r\n" + kForwarded + "\r\n"},
        RequestCase{"traceparent_replaced",
                    {{"traceparent", "00-aaaa-bbbb-01"}, {"tracestate", "x=1"}},
                    fwd({.traceparent = "00-1111-2222-01"}),
                    "tracestate: x=1\r\n" + kForwarded + "traceparent: 00-1111-2222-01\r\n\r\n"},
        RequestCase{"traceparent_kept_when_none_given", {{"Traceparent", "00-aaaa-bbbb-01"}}, fwd(),
                    "Traceparent: 00-aaaa-bbbb-01\r\n" + kForwarded + "\r\n"},
        RequestCase{"websocket",
                    {{"Connection", "Upgrade"}, {"Upgrade", "websocket"}, {"Sec-WebSocket-Key", "k"},
                     {"Sec-WebSocket-Version", "13"}},
                    fwd({.websocket = true}),
                    "Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n" + kForwarded +
                        "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"},
        RequestCase{"everything",
                    {{"Connection", "X-Hop"}, {"X-Hop", "1"}, {"Via", "1.0 a"}, {"X-Forwarded-For", "1.1.1.1"}},
                    fwd({.client_trusted = true, .proto = "https", .via = "1.1 edge", .traceparent = "00-t-s-01"}),
                    "X-Forwarded-For: 1.1.1.1, 203.0.113.7\r\nX-Forwarded-Proto: https\r\n"
                    "X-Forwarded-Host: h.example\r\nVia: 1.0 a, 1.1 edge\r\ntraceparent: 00-t-s-01\r\n"
                    "Content-Length: 3\r\n\r\n",
                    "POST", false, 3}),
    [](const auto& info) { return std::string(info.param.name); });

http::RequestHead simple_head(std::span<const http::Header> headers) {
  http::RequestHead head;
  head.method = http::Method::get;
  head.method_text = "GET";
  head.target = "/";
  head.path = "/";
  head.headers = headers;
  return head;
}

TEST(RewritePath, StripAndAddPrefixes) {
  struct Case { std::string_view path, strip, add, want; };
  const Case cases[] = {
      {"/api/v1/x", "", "", "/api/v1/x"},     {"/api/v1/x", "/api", "", "/v1/x"},
      {"/api", "/api", "", "/"},              {"/api/x", "/api/", "", "/x"},
      {"/api/x", "/api", "/svc", "/svc/x"},   {"/api/x", "/api", "/svc/", "/svc/x"},
      {"/x", "", "/svc", "/svc/x"},           {"/api", "/api", "/svc", "/svc"},
      {"/other", "/api", "/svc/", "/svc/other"},
  };
  std::string out = "stale";
  for (const Case& c : cases) {
    rewrite_path(out, c.path, c.strip, c.add);
    EXPECT_EQ(out, c.want) << c.path << " strip " << c.strip << " add " << c.add;
  }
}

TEST(RequestLine, PathQueryAndHostOverride) {
  const std::vector<http::Header> headers = {{"host", "h.example:8443"}, {"Host", "second"}};
  auto head = simple_head(headers);
  head.host = "h.example";
  std::string out;
  append_request_head(out, head, fwd({.path = "/api/v1", .query = "a=1&b", .client_addr = "10.0.0.1"}));
  EXPECT_EQ(out,
            "GET /api/v1?a=1&b HTTP/1.1\r\nHost: h.example:8443\r\nX-Forwarded-For: 10.0.0.1\r\n"
            "X-Forwarded-Proto: http\r\nX-Forwarded-Host: h.example:8443\r\n\r\n");
  out.clear();
  append_request_head(out, head, fwd({.client_addr = "10.0.0.1", .host_override = "origin.internal"}));
  EXPECT_EQ(out,
            "GET /p HTTP/1.1\r\nHost: origin.internal\r\nX-Forwarded-For: 10.0.0.1\r\n"
            "X-Forwarded-Proto: http\r\nX-Forwarded-Host: h.example:8443\r\n\r\n");
}

TEST(RequestLine, AbsoluteFormAuthorityIsTheHost) {
  // RFC 9112 §3.2.2: the target's authority replaces a Host field.
  const std::vector<http::Header> headers = {{"Host", "ignored"}};
  auto head = simple_head(headers);
  head.target = "http://user@h.example:8080/x?y";
  head.host = "h.example";
  std::string out;
  append_request_head(out, head, fwd());
  EXPECT_EQ(out.substr(0, out.find("X-Forwarded-For")), "GET /p HTTP/1.1\r\nHost: h.example:8080\r\n");
  EXPECT_NE(out.find("X-Forwarded-Host: h.example:8080\r\n"), std::string::npos);
}

TEST(RequestLine, Http10WithoutHost) {
  auto head = simple_head({});
  head.version = 10;
  std::string out;
  append_request_head(out, head, fwd());
  EXPECT_EQ(out.substr(0, out.find("X-Forwarded-For")), "GET /p HTTP/1.1\r\nHost: \r\n");   // RFC 9112 §3.2
}

TEST(RequestLine, AppendsToExistingOutput) {
  auto head = simple_head({});
  std::string out = "previous";
  append_request_head(out, head, fwd());
  EXPECT_EQ(out.substr(0, 20), "previousGET /p HTTP/");
}

// ---- wants_websocket -------------------------------------------------------------------------------------

struct WsCase {
  const char* name;
  std::string_view method;
  int version;
  std::vector<http::Header> headers;
  bool want;
};

void PrintTo(const WsCase& c, std::ostream* os) { *os << c.name; }

class WantsWebsocket : public ::testing::TestWithParam<WsCase> {};

TEST_P(WantsWebsocket, Detects) {
  const WsCase& c = GetParam();
  auto head = simple_head(c.headers);
  head.method_text = c.method;
  head.method = http::method_from_string(c.method);
  head.version = c.version;
  EXPECT_EQ(wants_websocket(head), c.want);
}

INSTANTIATE_TEST_SUITE_P(
    Handshakes, WantsWebsocket,
    ::testing::Values(
        WsCase{"plain", "GET", 11, {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}}, true},
        WsCase{"case_and_lists", "GET", 11, {{"upgrade", "WebSocket"}, {"connection", "keep-alive, UPGRADE"}}, true},
        WsCase{"second_connection_header", "GET", 11,
               {{"Connection", "keep-alive"}, {"Upgrade", "foo, websocket"}, {"Connection", "upgrade"}}, true},
        WsCase{"versioned_protocol", "GET", 11, {{"Upgrade", "websocket/13"}, {"Connection", "upgrade"}}, true},
        WsCase{"not_get", "POST", 11, {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}}, false},
        WsCase{"http10", "GET", 10, {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}}, false},
        WsCase{"no_connection_token", "GET", 11, {{"Upgrade", "websocket"}, {"Connection", "keep-alive"}}, false},
        WsCase{"no_upgrade", "GET", 11, {{"Connection", "Upgrade"}}, false},
        WsCase{"other_protocol", "GET", 11, {{"Upgrade", "h2c"}, {"Connection", "Upgrade"}}, false},
        WsCase{"token_prefix_only", "GET", 11, {{"Upgrade", "websockets"}, {"Connection", "Upgraded"}}, false}),
    [](const auto& info) { return std::string(info.param.name); });

// ---- responses -------------------------------------------------------------------------------------------

enum class Body { length, chunked, until_close, none };

struct ResponseCase {
  const char* name;
  unsigned status;
  Body body;
  std::vector<http::Header> headers;   // besides the framing ones the upstream sent
  ResponseForward f;
  std::string want;                    // after the status line
  bool want_chunked = false;
  bool want_close = false;
  std::string_view reason = "";
};

void PrintTo(const ResponseCase& c, std::ostream* os) { *os << c.name; }

class Response : public ::testing::TestWithParam<ResponseCase> {};

// The upstream's head as the parser would describe it. HEAD answers and 1xx/204/304 carry no body.
TEST_P(Response, Rewritten) {
  const ResponseCase& c = GetParam();
  std::vector<http::Header> headers = {{"Date", "d"}, {"Server", "origin"}};
  headers.insert(headers.end(), c.headers.begin(), c.headers.end());
  http::ResponseHead head;
  head.status = c.status;
  head.reason = c.reason;
  const bool no_body_status = c.status < 200 || c.status == 204 || c.status == 304;
  switch (c.body) {
    case Body::length:
      headers.push_back({"Content-Length", "42"});
      if (!c.f.head_request && !no_body_status) head.content_length = 42;
      break;
    case Body::chunked:
      headers.push_back({"Transfer-Encoding", "chunked"});
      head.chunked = !c.f.head_request && !no_body_status;
      break;
    case Body::until_close:
      head.until_close = !c.f.head_request && !no_body_status;
      break;
    case Body::none:
      break;
  }
  head.no_body = c.f.head_request || no_body_status;
  head.headers = headers;
  std::string out;
  const ResponseFraming fr = append_response_head(out, head, c.f);
  const std::size_t eol = out.find("\r\n") + 2;
  EXPECT_EQ(out.substr(eol), "Date: d\r\nServer: origin\r\n" + c.want);
  EXPECT_EQ(fr.chunked, c.want_chunked);
  EXPECT_EQ(fr.close_delimited, c.want_close);
}

const ResponseForward k11{};
const ResponseForward k10{.client_version = 10};
const ResponseForward k11Head{.head_request = true};
const ResponseForward k10Head{.client_version = 10, .head_request = true};

INSTANTIATE_TEST_SUITE_P(
    Framing, Response,
    ::testing::Values(
        ResponseCase{"length_11", 200, Body::length, {}, k11, "Content-Length: 42\r\n"},
        ResponseCase{"length_10", 200, Body::length, {}, k10, "Content-Length: 42\r\n"},
        ResponseCase{"chunked_11", 200, Body::chunked, {}, k11, "Transfer-Encoding: chunked\r\n", true},
        ResponseCase{"chunked_10", 200, Body::chunked, {}, k10, "", false, true},
        ResponseCase{"until_close_11", 200, Body::until_close, {}, k11, "Transfer-Encoding: chunked\r\n", true},
        ResponseCase{"until_close_10", 200, Body::until_close, {}, k10, "", false, true},
        ResponseCase{"head_length_11", 200, Body::length, {}, k11Head, "Content-Length: 42\r\n"},
        ResponseCase{"head_length_10", 200, Body::length, {}, k10Head, "Content-Length: 42\r\n"},
        ResponseCase{"head_chunked_11", 200, Body::chunked, {}, k11Head, ""},
        ResponseCase{"head_chunked_10", 200, Body::chunked, {}, k10Head, ""},
        ResponseCase{"head_until_close", 200, Body::until_close, {}, k11Head, ""},
        ResponseCase{"head_bad_length_dropped", 200, Body::none, {{"Content-Length", "4x"}}, k11Head, ""},
        ResponseCase{"204_11", 204, Body::none, {}, k11, ""},
        ResponseCase{"204_10", 204, Body::none, {}, k10, ""},
        ResponseCase{"204_with_length", 204, Body::length, {}, k11, ""},
        ResponseCase{"304_length", 304, Body::length, {}, k11, ""},
        ResponseCase{"304_chunked", 304, Body::chunked, {}, k11, ""},
        ResponseCase{"304_10", 304, Body::none, {}, k10, ""},
        ResponseCase{"304_head", 304, Body::length, {}, k11Head, "Content-Length: 42\r\n"},
        ResponseCase{"103", 103, Body::none, {{"Link", "</s.css>; rel=preload"}}, k11, "Link: </s.css>; rel=preload\r\n"},
        ResponseCase{"404_length", 404, Body::length, {}, k10, "Content-Length: 42\r\n"}),
    [](const auto& info) { return std::string(info.param.name); });

INSTANTIATE_TEST_SUITE_P(
    Headers, Response,
    ::testing::Values(
        ResponseCase{"hop_by_hop_dropped", 200, Body::length,
                     {{"Connection", "keep-alive, X-Internal"}, {"Keep-Alive", "timeout=5"}, {"X-Internal", "1"},
                      {"Upgrade", "h2c"}, {"Trailer", "X"}, {"TE", "x"}, {"Proxy-Authenticate", "Basic"},
                      {"Proxy-Connection", "close"}, {"Cache-Control", "max-age=60"}},
                     k11, "Cache-Control: max-age=60\r\nContent-Length: 42\r\n"},
        ResponseCase{"several_connection_headers", 200, Body::length,
                     {{"connection", "x-a"}, {"X-A", "1"}, {"CONNECTION", " x-b ,"}, {"x-b", "2"}, {"X-C", "3"}},
                     k11, "X-C: 3\r\nContent-Length: 42\r\n"},
        ResponseCase{"via_added", 200, Body::length, {}, {.via = "1.1 edge"},
                     "Content-Length: 42\r\nVia: 1.1 edge\r\n"},
        ResponseCase{"via_appended", 200, Body::length, {{"Via", "1.0 a"}, {"Vary", "Accept"}, {"Via", "1.1 b"}},
                     {.via = "1.1 edge"}, "Vary: Accept\r\nContent-Length: 42\r\nVia: 1.0 a, 1.1 b, 1.1 edge\r\n"},
        ResponseCase{"via_kept_when_off", 200, Body::length, {{"Via", "1.0 a"}}, k11,
                     "Via: 1.0 a\r\nContent-Length: 42\r\n"},
        ResponseCase{"extra_last", 200, Body::chunked, {}, {.via = "1.1 e", .extra = "X-Trace-Id: t\r\n"},
                     "Transfer-Encoding: chunked\r\nVia: 1.1 e\r\nX-Trace-Id: t\r\n", true},
        ResponseCase{"websocket_101", 101, Body::none, {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
                                                        {"Sec-WebSocket-Accept", "abc"}},
                     {.websocket = true}, "Upgrade: websocket\r\nSec-WebSocket-Accept: abc\r\nConnection: Upgrade\r\n"},
        ResponseCase{"101_without_websocket_request", 101, Body::none,
                     {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}}, k11, ""},
        ResponseCase{"websocket_refused", 200, Body::length, {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}},
                     {.websocket = true}, "Content-Length: 42\r\n"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ResponseLine, AlwaysHttp11WithReason) {
  http::ResponseHead head;
  head.version = 10;
  head.status = 200;
  head.reason = "Fine";
  head.content_length = 0;
  std::string out;
  append_response_head(out, head, {});
  EXPECT_EQ(out, "HTTP/1.1 200 Fine\r\nContent-Length: 0\r\n");
  out.clear();
  head.reason = "";
  head.status = 404;
  append_response_head(out, head, {});
  EXPECT_EQ(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n");
  out.clear();
  head.status = 599;
  append_response_head(out, head, {});
  EXPECT_EQ(out, "HTTP/1.1 599 Unknown\r\nContent-Length: 0\r\n");
}

}  // namespace
}  // namespace virex::upstream
