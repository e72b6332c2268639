#include <virex/core/http_date.hpp>
#include <virex/http/response.hpp>

#include <gtest/gtest.h>

namespace virex {
namespace {

TEST(Response, PreparedHeadAndTail) {
  auto r = http::PreparedResponse::make(200, {{"Content-Type", "text/plain"}}, "hi\n");
  EXPECT_EQ(r.head, "HTTP/1.1 200 OK\r\nServer: virex-edge\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n");
  std::string out;
  http::append_tail(out, "Date: x\r\n", http::ConnectionHeader::close);
  EXPECT_EQ(out, "Date: x\r\nConnection: close\r\n\r\n");
}

TEST(Response, NoContentHasNoLength) {
  auto r = http::PreparedResponse::make(204, {}, "ignored");
  EXPECT_EQ(r.head, "HTTP/1.1 204 No Content\r\nServer: virex-edge\r\n");
  EXPECT_TRUE(r.body.empty());
}

TEST(Response, SimpleHeadOmitsBody) {
  std::string out;
  http::append_simple_response(out, 404, "Date: d\r\n", "nope\n", http::ConnectionHeader::none, true);
  EXPECT_EQ(out,
            "HTTP/1.1 404 Not Found\r\nServer: virex-edge\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 5\r\nDate: d\r\n\r\n");
}

TEST(HttpDate, ImfFixdate) {
  char buf[29];
  core::format_imf_fixdate(784111777, buf);  // RFC 9110 §5.6.7's example
  EXPECT_EQ(std::string(buf, 29), "Sun, 06 Nov 1994 08:49:37 GMT");
  core::DateLine d;
  d.refresh(784111777);
  EXPECT_EQ(d.line(), "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
}

}  // namespace
}  // namespace virex
