// HTTP/1.1 response codec: the shared pre-scan of the header section (h1_common.hpp), then Beast's
// basic_parser<false> for the grammar and the body framing (RFC 9112 §6.3), with callbacks that record
// views into a fixed header array and refuse ambiguous framing (response smuggling, RFC 9112 §11.1).
// Body bytes are handed out as views into the fed data; chunked bodies arrive decoded, trailers dropped.
#include <virex/http/h1_response_parser.hpp>

#include "h1_common.hpp"

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>

#include <array>
#include <cassert>
#include <cstdint>
#include <limits>

namespace virex::http {
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using beast::error_code;

namespace {

using detail::iequals;
using detail::kMaxHeaderArray;
using detail::trim;
using HeaderArray = std::array<Header, kMaxHeaderArray>;

// tchar (RFC 9110 §5.6.2).
bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '!' ||
                    c == '#' || c == '$' || c == '%' || c == '&' || c == '\'' || c == '*' || c == '+' ||
                    c == '-' || c == '.' || c == '^' || c == '_' || c == '`' || c == '|' || c == '~';
    if (!ok) return false;
  }
  return true;
}

// The Beast parser subclass: records views, enforces our rules at the points Beast calls back.
class Parser final : public bhttp::basic_parser<false> {
 public:
  Parser(const H1ResponseLimits& lim, ResponseHead& head, HeaderArray& fields)
      : lim_(lim), head_(head), fields_(fields) {
    header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(lim.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
    body_limit(boost::none);  // bodies stream through, unbounded; the caller bounds time and buffering
    eager(false);             // one step per put(): each body slice becomes its own event
  }

  ResponseError reason = ResponseError::none;
  std::string_view body_view;
  bool status_seen = false;   // Beast errors before this are about the status line
  bool te_seen = false;
  bool in_trailers = false;   // set once the header section is done: later fields are trailers

 private:
  void fail(error_code& ec, ResponseError why) {
    reason = why;
    ec = bhttp::error::bad_value;
  }

  void on_request_impl(bhttp::verb, beast::string_view, beast::string_view, int, error_code&) override {}

  void on_response_impl(int code, beast::string_view reason_phrase, int version, error_code& ec) override {
    // RFC 9112 §4: HTTP/1.0 or 1.1 (Beast checks), RFC 9110 §15: status codes 100-599.
    if (code < 100 || code > 599 || (version != 10 && version != 11))
      return fail(ec, ResponseError::bad_status_line);
    head_.status = static_cast<unsigned>(code);
    head_.version = version;
    head_.reason = {reason_phrase.data(), reason_phrase.size()};
    status_seen = true;
  }

  void on_field_impl(bhttp::field f, beast::string_view name, beast::string_view value,
                     error_code& ec) override {
    // RFC 9112 §7.1.2: trailer fields are consumed and dropped (Beast's own framing checks still run on
    // them, so a trailer Content-Length or Transfer-Encoding fails the message as bad_chunk).
    if (in_trailers) return;
    if (nfields_ >= std::min(lim_.max_headers, kMaxHeaderArray)) return fail(ec, ResponseError::too_many_headers);
    const std::string_view v{value.data(), value.size()};
    fields_[nfields_++] = Header{{name.data(), name.size()}, v};
    switch (f) {
      case bhttp::field::content_length:
        // Beast refuses Content-Length after a chunked Transfer-Encoding, and differing values; after a
        // Transfer-Encoding of another coding it would accept it: RFC 9112 §6.1 says that is an attack.
        if (te_seen) return fail(ec, ResponseError::conflicting_framing);
        break;
      case bhttp::field::transfer_encoding:
        te_seen = true;  // Beast has already refused it after a Content-Length
        if (const ResponseError e = note_transfer_coding(trim(v)); e != ResponseError::none) return fail(ec, e);
        break;
      default:
        break;
    }
  }

  // RFC 9112 §6.1: Transfer-Encoding is a list of codings, the last applied last; chunked at most once.
  ResponseError note_transfer_coding(std::string_view v) {
    bool any = false;
    while (!v.empty()) {
      const auto comma = v.find(',');
      const std::string_view elem = trim(v.substr(0, comma));
      v = comma == std::string_view::npos ? std::string_view{} : v.substr(comma + 1);
      if (elem.empty()) continue;  // RFC 9110 §5.6.1: empty list elements are ignored
      const std::string_view coding = trim(elem.substr(0, elem.find(';')));
      if (!is_token(coding)) return ResponseError::unknown_transfer_encoding;
      any = true;
      const bool chunked = iequals(coding, "chunked");
      if (chunked && te_chunked_) return ResponseError::conflicting_framing;
      te_chunked_ = te_chunked_ || chunked;
      te_final_chunked_ = chunked;
    }
    // A Transfer-Encoding naming no coding leaves the framing unknowable: refuse it.
    return any ? ResponseError::none : ResponseError::unknown_transfer_encoding;
  }

  void on_header_impl(error_code& ec) override {
    in_trailers = true;
    head_.headers = std::span<const Header>(fields_.data(), nfields_);
    if (te_seen) {
      // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
      if (head_.version == 10) return fail(ec, ResponseError::conflicting_framing);
      // Beast reads the coding list with its own grammar: where its framing and ours differ, refuse.
      if (te_final_chunked_ != chunked()) return fail(ec, ResponseError::unknown_transfer_encoding);
    }
    const unsigned s = head_.status;
    // RFC 9112 §6.3 rule 1: 1xx, 204, 304 and the answer to HEAD end at the header section (Beast agrees).
    head_.no_body = skip() || s / 100 == 1 || s == 204 || s == 304;
    head_.chunked = !head_.no_body && chunked();
    if (const auto cl = content_length(); cl && !head_.no_body) head_.content_length = *cl;
    // RFC 9112 §6.3 rules 4 and 8: a coding other than chunked last, or neither framing: read until close.
    head_.until_close = !head_.no_body && need_eof();
    // RFC 9112 §9.3 (Beast's keep_alive() also says no when the body runs to EOF). After 101 the
    // connection carries another protocol and never returns to an HTTP pool.
    head_.keep_alive = keep_alive() && s != 101;
  }

  void on_body_init_impl(boost::optional<std::uint64_t> const&, error_code&) override {}

  std::size_t on_body_impl(beast::string_view body, error_code&) override {
    body_view = {body.data(), body.size()};
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, error_code&) override {}  // extensions ignored
  std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, error_code&) override {
    body_view = {body.data(), body.size()};
    return body.size();
  }
  void on_finish_impl(error_code&) override {}

  const H1ResponseLimits& lim_;
  ResponseHead& head_;
  HeaderArray& fields_;
  std::size_t nfields_ = 0;
  bool te_chunked_ = false;        // "chunked" seen in some Transfer-Encoding
  bool te_final_chunked_ = false;  // and it is the last coding
};

ResponseError from_beast(const error_code& ec, const Parser& p, bool in_body) noexcept {
  using E = bhttp::error;
  if (ec == E::header_limit) return ResponseError::header_too_large;
  if (!p.status_seen) return ResponseError::bad_status_line;
  if (in_body) return ResponseError::bad_chunk;  // chunk-size line, extensions or trailer section
  if (ec == E::multiple_content_length || ec == E::bad_transfer_encoding) return ResponseError::conflicting_framing;
  if (ec == E::bad_content_length)  // also Beast's answer to Content-Length after chunked
    return p.te_seen ? ResponseError::conflicting_framing : ResponseError::bad_content_length;
  return ResponseError::bad_header;
}

constexpr std::array<std::string_view, 10> kErrorNames{
    "none",     "header_too_large", "too_many_headers", "bad_status_line",           "bad_header",
    "conflicting_framing", "bad_content_length", "bad_chunk", "unknown_transfer_encoding", "truncated",
};
static_assert(kErrorNames.size() == static_cast<std::size_t>(ResponseError::truncated) + 1);

const ResponseHead kNoHead{};

}  // namespace

std::string_view to_string(ResponseError e) noexcept { return kErrorNames[static_cast<std::size_t>(e)]; }

std::string_view ResponseHead::header(std::string_view name) const noexcept {
  for (const Header& h : headers)
    if (iequals(h.name, name)) return h.value;
  return {};
}

struct H1ResponseParser::Impl {
  explicit Impl(H1ResponseLimits l) : lim(l) {}
  H1ResponseLimits lim;
  ResponseHead head;
  HeaderArray fields;
  std::optional<Parser> parser;
  ResponseError error = ResponseError::none;
  std::string_view body;
  std::uint64_t body_bytes = 0;
  detail::HeadScanState scan;
  bool head_request = false;
  bool head_done = false;
  bool started = false;
  bool last_chunk_wait = false;  // Beast stalled on the last-chunk line (see is_last_chunk_line)

  // Everything in place: no allocation once the Impl exists.
  void reset(bool keep_head_request) {
    head = ResponseHead{};
    parser.emplace(lim, head, fields);
    error = ResponseError::none;
    body = {};
    body_bytes = 0;
    scan = detail::HeadScanState{};
    head_request = keep_head_request && head_request;
    head_done = false;
    started = false;
    last_chunk_wait = false;
  }

  Result fail(ResponseError e, std::size_t consumed) {
    error = e;
    return {Event::error, consumed};
  }
};

H1ResponseParser::H1ResponseParser(H1ResponseLimits limits) : impl_(std::make_unique<Impl>(limits)) {
  impl_->reset(false);
}
H1ResponseParser::~H1ResponseParser() = default;
H1ResponseParser::H1ResponseParser(H1ResponseParser&&) noexcept = default;
H1ResponseParser& H1ResponseParser::operator=(H1ResponseParser&&) noexcept = default;

void H1ResponseParser::set_head_request(bool head) noexcept {
  assert(impl_ && "moved-from parser");
  impl_->head_request = head;
}

H1ResponseParser::Result H1ResponseParser::feed(std::string_view data) {
  assert(impl_ && "moved-from parser");
  Impl& m = *impl_;
  if (m.error != ResponseError::none) return {Event::error, 0};
  Parser& p = *m.parser;
  if (!m.head_done) {
    if (data.empty()) return {Event::need_more, 0};
    m.started = true;
    const detail::HeadScan s = detail::scan_head(data, m.lim.max_header_bytes, m.lim.max_header_bytes, m.scan);
    if (s.kind == detail::HeadScan::need_more) return {Event::need_more, 0};
    if (s.kind == detail::HeadScan::error)
      return m.fail(s.fault == detail::HeadScan::Fault::too_large ? ResponseError::header_too_large
                                                                   : ResponseError::bad_header, 0);
    // RFC 9110 §9.3.2: the answer to HEAD has no body whatever its framing fields say.
    p.skip(m.head_request);
    // Give Beast exactly the header section so that it stops there: the body, or after a 1xx the next
    // response, or after a 101 the tunnelled bytes, stay unconsumed.
    error_code ec;
    const std::size_t n = p.put(boost::asio::const_buffer(data.data(), s.end), ec);
    if (ec) return m.fail(p.reason != ResponseError::none ? p.reason : from_beast(ec, p, false), 0);
    if (!p.is_header_done()) return m.fail(ResponseError::bad_header, 0);
    m.head.head_bytes = n;
    m.head_done = true;
    return {Event::head, n};
  }
  // Body: with eager(false) each put() takes one step (a chunk-size line, or one slice of body), so every
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
        if (data.size() - total > m.lim.max_header_bytes) return m.fail(ResponseError::bad_chunk, total);
        if (!m.last_chunk_wait && m.head.chunked) m.last_chunk_wait = detail::is_last_chunk_line(data.substr(total));
        return {Event::need_more, total};
      }
      ec = {};
    }
    if (ec) return m.fail(p.reason != ResponseError::none ? p.reason : from_beast(ec, p, true), total);
    if (!p.body_view.empty()) {
      m.body = p.body_view;
      m.body_bytes += m.body.size();
      return {Event::body, total};
    }
    if (n == 0) return {Event::need_more, total};
  }
}

H1ResponseParser::Result H1ResponseParser::feed_eof() {
  assert(impl_ && "moved-from parser");
  Impl& m = *impl_;
  if (m.error != ResponseError::none) return {Event::error, 0};
  Parser& p = *m.parser;
  // Nothing in progress (no byte of a response fed, or the last one complete): a clean close.
  if (!m.started || p.is_done()) return {Event::need_more, 0};
  if (!m.head_done) return m.fail(ResponseError::truncated, 0);
  // RFC 9112 §6.3 rule 8: EOF ends a close-delimited body; Beast refuses it for Content-Length/chunked
  // (RFC 9112 §8: an incomplete message).
  error_code ec;
  p.put_eof(ec);
  if (ec || !p.is_done()) return m.fail(ResponseError::truncated, 0);
  return {Event::complete, 0};
}

void H1ResponseParser::next() {
  assert(impl_ && "moved-from parser");
  // RFC 9110 §15.2: after a 1xx interim response the final response answers the same request.
  const unsigned s = impl_->head_done ? impl_->head.status : 0;
  impl_->reset(s / 100 == 1 && s != 101);
}

const ResponseHead& H1ResponseParser::head() const noexcept { return impl_ ? impl_->head : kNoHead; }
std::string_view H1ResponseParser::body() const noexcept { return impl_ ? impl_->body : std::string_view{}; }
ResponseError H1ResponseParser::error() const noexcept { return impl_ ? impl_->error : ResponseError::none; }
bool H1ResponseParser::in_message() const noexcept {
  return impl_ && impl_->started && !impl_->parser->is_done();
}
bool H1ResponseParser::body_started() const noexcept { return impl_ && impl_->body_bytes > 0; }

}  // namespace virex::http
