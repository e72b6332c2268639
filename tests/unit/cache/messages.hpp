// Test helpers: request and response heads built from owned strings (the heads' views point into them).
#pragma once

#include <virex/core/http_date.hpp>
#include <virex/http/h1_response_parser.hpp>
#include <virex/http/request.hpp>

#include <ctime>
#include <string>
#include <utility>
#include <vector>

namespace virex::cache::test {

using Fields = std::vector<std::pair<std::string, std::string>>;

// 2023-11-14 22:13:20 GMT: "now" in every policy test.
inline constexpr std::time_t kNow = 1700000000;

// An IMF-fixdate `offset` seconds from kNow.
inline std::string date(std::time_t offset = 0) {
  char buf[29];
  core::format_imf_fixdate(kNow + offset, buf);
  return std::string(buf, sizeof buf);
}

class Headers {
 public:
  explicit Headers(Fields fields) : fields_(std::move(fields)) {
    for (const auto& [name, value] : fields_) views_.push_back({name, value});
  }
  Headers(const Headers&) = delete;
  Headers& operator=(const Headers&) = delete;
  std::span<const http::Header> span() const { return views_; }

 private:
  Fields fields_;
  std::vector<http::Header> views_;
};

class Request {
 public:
  Request(http::Method method, Fields fields, std::string host = "example.com", std::string path = "/",
          std::string query = "")
      : headers_(std::move(fields)), host_(std::move(host)), path_(std::move(path)), query_(std::move(query)) {
    static constexpr std::string_view kNames[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT",
                                                  "OPTIONS", "TRACE", "PATCH", "PURGE"};
    head_.method = method;
    head_.method_text = kNames[static_cast<int>(method)];
    head_.host = host_;
    head_.path = path_;
    head_.query = query_;
    head_.headers = headers_.span();
  }
  const http::RequestHead& head() const { return head_; }

 private:
  Headers headers_;
  std::string host_, path_, query_;
  http::RequestHead head_;
};

class Response {
 public:
  Response(unsigned status, Fields fields) : headers_(std::move(fields)) {
    head_.status = status;
    head_.headers = headers_.span();
  }
  const http::ResponseHead& head() const { return head_; }

 private:
  Headers headers_;
  http::ResponseHead head_;
};

}  // namespace virex::cache::test
