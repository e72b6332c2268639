// HTTP/1.1 request codec: a pre-scan of the header section for what Beast tolerates but RFC 9112 and
// request-smuggling safety do not (NUL, bare CR/LF, obs-fold, oversized request line), then Beast's
// basic_parser for the grammar, with callbacks that record views into a fixed header array.
#include <virex/http/h1_parser.hpp>

#include "h1_common.hpp"

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

#include <array>
#include <cstring>
#include <optional>
#include <vector>

namespace virex::http {
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using beast::error_code;

namespace {

using detail::iequals;
using detail::kMaxHeaderArray;
using detail::trim;

// The shared pre-scan, with the request line bounded by the target limit (414 before 431).
struct Scan {
  enum Kind { need_more, ok, error } kind;
  std::size_t end = 0;
  ParseError err = ParseError::none;
};

Scan scan_head(std::string_view d, const H1Limits& lim, detail::HeadScanState& st) noexcept {
  using Fault = detail::HeadScan::Fault;
  const std::size_t line_cap = lim.max_uri_bytes + 64;  // method + SP + target + SP + version
  const detail::HeadScan s = detail::scan_head(d, lim.max_header_bytes, line_cap, st);
  switch (s.kind) {
    case detail::HeadScan::ok: return {Scan::ok, s.end};
    case detail::HeadScan::need_more: return {Scan::need_more};
    case detail::HeadScan::error: break;
  }
  switch (s.fault) {
    case Fault::bad_chars: return {Scan::error, 0, ParseError::bad_header_chars};
    case Fault::obs_fold: return {Scan::error, 0, ParseError::obs_fold};
    case Fault::first_line_too_long: return {Scan::error, 0, ParseError::uri_too_long};
    case Fault::too_large:
    case Fault::none: break;
  }
  return {Scan::error, 0, ParseError::header_too_large};
}

// RFC 9110 §7.2 / RFC 3986 §3.2.2: a Host is a reg-name or an IP literal, an optional port, ≤ 255 bytes.
bool valid_host(std::string_view h) noexcept {
  if (h.size() > 255) return false;
  for (const char ch : h) {
    const unsigned char c = static_cast<unsigned char>(ch);
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '.' || c == '_' || c == '~' || c == '%' || c == '!' || c == '$' || c == '&' ||
                    c == '\'' || c == '(' || c == ')' || c == '*' || c == '+' || c == ',' || c == ';' ||
                    c == '=' || c == ':' || c == '[' || c == ']';
    if (!ok) return false;
  }
  return true;
}

bool iequals_prefix(std::string_view s, std::string_view prefix) noexcept {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

// The Beast parser subclass: records views, enforces our rules at the points Beast calls back.
class Parser final : public bhttp::basic_parser<true> {
 public:
  Parser(const H1Limits& lim, RequestHead& head, std::array<Header, kMaxHeaderArray>& fields)
      : lim_(lim), head_(head), fields_(fields) {
    header_limit(static_cast<std::uint32_t>(lim.max_header_bytes));
    body_limit(lim.max_body_bytes);
    eager(false);
  }

  ParseError reason = ParseError::none;
  std::string_view body_view;
  std::size_t nfields = 0;

 private:
  void fail(error_code& ec, ParseError why) {
    reason = why;
    ec = bhttp::error::bad_value;
  }

  void on_request_impl(bhttp::verb, beast::string_view method, beast::string_view target, int version,
                       error_code& ec) override {
    if (target.size() > lim_.max_uri_bytes) return fail(ec, ParseError::uri_too_long);
    if (version != 10 && version != 11) return fail(ec, ParseError::bad_version);
    head_.method_text = {method.data(), method.size()};
    head_.method = method_from_string(head_.method_text);
    head_.target = {target.data(), target.size()};
    head_.version = version;
  }

  void on_response_impl(int, beast::string_view, int, error_code&) override {}

  void on_field_impl(bhttp::field f, beast::string_view name, beast::string_view value,
                     error_code& ec) override {
    if (nfields >= std::min(lim_.max_headers, kMaxHeaderArray)) return fail(ec, ParseError::too_many_headers);
    std::string_view v{value.data(), value.size()};
    fields_[nfields++] = Header{{name.data(), name.size()}, v};
    switch (f) {
      case bhttp::field::host:
        if (seen_host_) return fail(ec, ParseError::duplicate_host);
        seen_host_ = true;
        host_ = v;
        break;
      case bhttp::field::transfer_encoding:
        // We implement only "chunked" (RFC 9112 §6.1); anything else is 501 (RFC 9112 §6.1 ¶ "unknown").
        if (!iequals(trim(v), "chunked")) return fail(ec, ParseError::unknown_transfer_encoding);
        break;
      case bhttp::field::expect:
        if (iequals(trim(v), "100-continue")) head_.expect_continue = true;
        break;
      default:
        break;
    }
  }

  void on_header_impl(error_code& ec) override {
    head_.headers = std::span<const Header>(fields_.data(), nfields);
    if (head_.version == 11 && !seen_host_) return fail(ec, ParseError::missing_host);
    if (!split_target()) return fail(ec, seen_host_ && !valid_host(host_) ? ParseError::bad_host : ParseError::bad_target);
    head_.keep_alive = keep_alive();
    head_.chunked = chunked();
    // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 request means faulty framing (a smuggling vector).
    if (head_.chunked && head_.version == 10) return fail(ec, ParseError::conflicting_framing);
    if (auto cl = content_length()) head_.content_length = *cl;
  }

  void on_body_init_impl(boost::optional<std::uint64_t> const&, error_code&) override {}

  std::size_t on_body_impl(beast::string_view body, error_code&) override {
    body_view = {body.data(), body.size()};
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, error_code&) override {
    body_view = {body.data(), body.size()};
    return body.size();
  }
  void on_finish_impl(error_code&) override {}

  // RFC 9112 §3.2: origin-form "/p?q"; absolute-form "http(s)://host/p?q" (its authority wins over Host,
  // §3.2.2; no userinfo); asterisk-form "*" for OPTIONS only. Authority-form (CONNECT) is not served here.
  bool split_target() {
    std::string_view t = head_.target;
    std::string_view host = host_;
    if (t == "*") {
      if (head_.method != Method::options) return false;
      t = "/";
    } else if (t.empty() || t.front() != '/') {
      std::size_t skip;
      if (iequals_prefix(t, "http://")) skip = 7;
      else if (iequals_prefix(t, "https://")) skip = 8;
      else return false;
      std::string_view rest = t.substr(skip);
      const auto slash = rest.find_first_of("/?");
      host = rest.substr(0, slash);
      if (host.empty() || host.find('@') != std::string_view::npos) return false;
      t = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
    }
    if (!valid_host(host)) return false;
    const auto q = t.find('?');
    head_.path = t.substr(0, q);
    head_.query = q == std::string_view::npos ? std::string_view{} : t.substr(q + 1);
    if (head_.path.empty() || head_.path.front() != '/') {
      if (!head_.path.empty()) return false;
      head_.path = "/";  // "http://h?q"
    }
    // Strip the port: "host:port", "[v6]:port".
    if (!host.empty() && host.front() == '[') {
      const auto close = host.find(']');
      if (close == std::string_view::npos) return false;
      host = host.substr(0, close + 1);
    } else if (const auto colon = host.rfind(':'); colon != std::string_view::npos) {
      host = host.substr(0, colon);
    }
    head_.host = host;
    return true;
  }

  const H1Limits& lim_;
  RequestHead& head_;
  std::array<Header, kMaxHeaderArray>& fields_;
  bool seen_host_ = false;
  std::string_view host_;
};

ParseError from_beast(const error_code& ec) noexcept {
  using E = bhttp::error;
  if (ec == E::header_limit) return ParseError::header_too_large;
  if (ec == E::body_limit) return ParseError::body_too_large;
  if (ec == E::bad_content_length || ec == E::multiple_content_length) return ParseError::bad_content_length;
  if (ec == E::bad_transfer_encoding) return ParseError::conflicting_framing;
  if (ec == E::bad_chunk || ec == E::bad_chunk_extension) return ParseError::bad_chunk;
  if (ec == E::bad_version) return ParseError::bad_version;
  if (ec == E::bad_method || ec == E::bad_target) return ParseError::bad_request_line;
  if (ec == E::bad_line_ending) return ParseError::bad_header_chars;
  return ParseError::bad_header;
}

}  // namespace

struct H1RequestParser::Impl {
  explicit Impl(H1Limits l) : lim(l) {}
  H1Limits lim;
  RequestHead head;
  std::array<Header, kMaxHeaderArray> fields;
  std::optional<Parser> parser;
  ParseError error = ParseError::none;
  std::string_view body;
  std::uint64_t body_bytes = 0;
  detail::HeadScanState scan;
  bool head_done = false;
  bool started = false;
  bool last_chunk_wait = false;  // Beast stalled on the last-chunk line (see is_last_chunk_line)

  void reset() {
    head = RequestHead{};
    parser.emplace(lim, head, fields);
    error = ParseError::none;
    body = {};
    body_bytes = 0;
    scan = detail::HeadScanState{};
    head_done = false;
    started = false;
    last_chunk_wait = false;
  }

  Result fail(ParseError e, std::size_t consumed) {
    error = e;
    return {Event::error, consumed};
  }

  // Thread-local pool: a worker reuses a few hundred of these across all its connections.
  static std::vector<std::unique_ptr<Impl>>& pool() {
    thread_local std::vector<std::unique_ptr<Impl>> p;
    return p;
  }
  static std::unique_ptr<Impl> take(const H1Limits& l) {
    auto& p = pool();
    std::unique_ptr<Impl> m;
    if (p.empty()) {
      m = std::make_unique<Impl>(l);
      m->reset();
    } else {
      m = std::move(p.back());  // given back reset (see give)
      p.pop_back();
      if (m->lim.max_header_bytes != l.max_header_bytes || m->lim.max_uri_bytes != l.max_uri_bytes ||
          m->lim.max_body_bytes != l.max_body_bytes || m->lim.max_headers != l.max_headers) {
        m->lim = l;
        m->reset();
      }
    }
    return m;
  }
  static void give(std::unique_ptr<Impl> m) {
    constexpr std::size_t kMaxPooled = 256;
    if (pool().size() >= kMaxPooled) return;
    if (m->started || m->error != ParseError::none) m->reset();
    pool().push_back(std::move(m));
  }
};

namespace {
const RequestHead kNoHead{};
}

H1RequestParser::H1RequestParser(H1Limits limits) : limits_(limits) {}

H1RequestParser::Impl& H1RequestParser::impl() {
  if (!impl_) impl_ = Impl::take(limits_);
  return *impl_;
}

void H1RequestParser::release_idle() noexcept {
  if (impl_ && !in_message()) Impl::give(std::move(impl_));
}
H1RequestParser::~H1RequestParser() = default;
H1RequestParser::H1RequestParser(H1RequestParser&&) noexcept = default;
H1RequestParser& H1RequestParser::operator=(H1RequestParser&&) noexcept = default;

H1RequestParser::Result H1RequestParser::feed(std::string_view data) {
  if (!impl_ && data.empty()) return {Event::need_more, 0};
  Impl& m = impl();
  if (m.error != ParseError::none) return {Event::error, 0};
  Parser& p = *m.parser;
  if (!m.head_done) {
    if (data.empty()) return {Event::need_more, 0};
    if (!m.started) {
      // RFC 9112 §2.2: ignore empty lines before a request line (e.g. a stray CRLF after a body).
      std::size_t skip = 0;
      while (skip + 1 < data.size() && data[skip] == '\r' && data[skip + 1] == '\n') skip += 2;
      if (skip == data.size() || (skip + 1 == data.size() && data[skip] == '\r')) return {Event::need_more, skip};
      if (skip > 0) return {Event::need_more, skip};
    }
    m.started = true;
    const Scan s = scan_head(data, m.lim, m.scan);
    if (s.kind == Scan::need_more) return {Event::need_more, 0};
    if (s.kind == Scan::error) return m.fail(s.err, 0);
    // Give Beast exactly the header section so that it stops there; the body comes in later feeds.
    error_code ec;
    const std::size_t n = p.put(boost::asio::const_buffer(data.data(), s.end), ec);
    if (ec) return m.fail(p.reason != ParseError::none ? p.reason : from_beast(ec), 0);
    if (!p.is_header_done()) return m.fail(ParseError::bad_header, 0);
    m.head.head_bytes = n;
    m.head_done = true;
    return {Event::head, n};
  }
  // Body: with eager(false) each put() takes one step (a chunk header, or one slice of body), so every
  // slice reaches the caller as its own event.
  std::size_t total = 0;
  for (;;) {
    if (p.is_done()) return {Event::complete, total};
    if (total == data.size()) return {Event::need_more, total};
    if (m.last_chunk_wait && data.size() - total < detail::kMinLastChunk) return {Event::need_more, total};
    p.body_view = {};
    error_code ec;
    const std::size_t n = p.put(boost::asio::const_buffer(data.data() + total, data.size() - total), ec);
    total += n;
    if (ec == bhttp::error::need_more) {
      if (n == 0) {
        // Beast bounds neither a chunk-size line (with extensions) nor the trailer section: we do.
        if (data.size() - total > m.lim.max_header_bytes) return m.fail(ParseError::bad_chunk, total);
        if (!m.last_chunk_wait && m.head.chunked) m.last_chunk_wait = detail::is_last_chunk_line(data.substr(total));
        return {Event::need_more, total};
      }
      ec = {};
    }
    if (ec) return m.fail(p.reason != ParseError::none ? p.reason : from_beast(ec), total);
    if (!p.body_view.empty()) {
      m.body = p.body_view;
      m.body_bytes += m.body.size();
      return {Event::body, total};
    }
    if (n == 0) return {Event::need_more, total};
  }
}

void H1RequestParser::next() {
  if (impl_) impl_->reset();
}
const RequestHead& H1RequestParser::head() const noexcept { return impl_ ? impl_->head : kNoHead; }
std::string_view H1RequestParser::body() const noexcept { return impl_ ? impl_->body : std::string_view{}; }
ParseError H1RequestParser::error() const noexcept { return impl_ ? impl_->error : ParseError::none; }
bool H1RequestParser::in_message() const noexcept {
  return impl_ && impl_->started && !impl_->parser->is_done();
}
std::uint64_t H1RequestParser::body_bytes() const noexcept { return impl_ ? impl_->body_bytes : 0; }

}  // namespace virex::http
