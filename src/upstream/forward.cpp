// Proxy header rewriting (RFC 9110 §7.6): what crosses the proxy end to end, what is hop-by-hop and dropped,
// what the proxy adds (Host, X-Forwarded-*, Via, traceparent) and how each side's body is framed. Pure
// functions over views of a parsed head, appending to the caller's string; any worker thread may call them.
#include <virex/http/response.hpp>
#include <virex/http/text.hpp>
#include <virex/upstream/forward.hpp>

#include <arpa/inet.h>

#include <array>
#include <charconv>
#include <cstring>

namespace virex::upstream {
namespace {

using http::iequals;
using http::trim_ows;

// Calls f(token) for each element of a comma-separated list (RFC 9110 §5.6.1: OWS around commas, empty
// elements ignored); stops early when f returns true, and returns whether it did.
template <class F>
bool any_list_element(std::string_view list, F&& f) noexcept {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    const std::string_view item = trim_ows(list.substr(0, comma));
    list.remove_prefix(comma == std::string_view::npos ? list.size() : comma + 1);
    if (!item.empty() && f(item)) return true;
  }
  return false;
}

// How the proxy treats a received field. Switching on the length first keeps the common case (an ordinary
// end-to-end field) to one or two comparisons.
enum class Kind : std::uint8_t {
  end_to_end,
  hop_by_hop,        // RFC 9110 §7.6.1 (Connection, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*)
  content_length,    // framing is decided again for the next hop (RFC 9112 §6.3)
  host,
  x_forwarded_for,
  x_forwarded_proto,
  x_forwarded_host,
  via,
  traceparent,
};

Kind classify(std::string_view name) noexcept {
  // Proxy-Connection (a pre-standard Connection), Proxy-Authorization, Proxy-Authenticate and any other
  // Proxy-* field are meant for one hop only.
  if (name.size() >= 6 && iequals(name.substr(0, 6), "proxy-")) return Kind::hop_by_hop;
  switch (name.size()) {
    case 2:
      if (iequals(name, "te")) return Kind::hop_by_hop;
      break;
    case 3:
      if (iequals(name, "via")) return Kind::via;
      break;
    case 4:
      if (iequals(name, "host")) return Kind::host;
      break;
    case 7:
      if (iequals(name, "trailer") || iequals(name, "upgrade")) return Kind::hop_by_hop;
      break;
    case 10:
      if (iequals(name, "connection") || iequals(name, "keep-alive")) return Kind::hop_by_hop;
      break;
    case 11:
      if (iequals(name, "traceparent")) return Kind::traceparent;
      break;
    case 14:
      if (iequals(name, "content-length")) return Kind::content_length;
      break;
    case 15:
      if (iequals(name, "x-forwarded-for")) return Kind::x_forwarded_for;
      break;
    case 16:
      if (iequals(name, "x-forwarded-host")) return Kind::x_forwarded_host;
      break;
    case 17:
      if (iequals(name, "transfer-encoding")) return Kind::hop_by_hop;
      if (iequals(name, "x-forwarded-proto")) return Kind::x_forwarded_proto;
      break;
  }
  return Kind::end_to_end;
}

// The Connection field values of a head, gathered once. RFC 9110 §7.6.1: a proxy removes every field that a
// Connection option names, across all Connection fields. Options like "close" or "keep-alive" name no field
// that is still present, so the usual check is a handful of short comparisons.
class ConnectionOptions {
 public:
  explicit ConnectionOptions(std::span<const http::Header> headers) noexcept : headers_(headers) {
    for (const http::Header& h : headers) {
      if (!iequals(h.name, "connection")) continue;
      if (count_ < values_.size()) {
        values_[count_++] = h.value;
      } else {
        overflow_ = true;
      }
    }
  }

  bool names(std::string_view field) const noexcept {
    const auto eq = [field](std::string_view option) { return iequals(option, field); };
    for (std::size_t i = 0; i < count_; ++i) {
      if (any_list_element(values_[i], eq)) return true;
    }
    if (!overflow_) return false;
    std::size_t seen = 0;   // more Connection fields than we kept: look at the rest in place
    for (const http::Header& h : headers_) {
      if (iequals(h.name, "connection") && ++seen > values_.size() && any_list_element(h.value, eq)) return true;
    }
    return false;
  }

 private:
  std::span<const http::Header> headers_;
  std::array<std::string_view, 8> values_{};
  std::size_t count_ = 0;
  bool overflow_ = false;
};

// One resize and three copies rather than four appends (this runs for every header both ways).
void append_header(std::string& out, std::string_view name, std::string_view value) {
  const std::size_t at = out.size();
  out.resize(at + name.size() + value.size() + 4);
  char* p = out.data() + at;
  if (!name.empty()) std::memcpy(p, name.data(), name.size());  // an empty view may have a null data()
  p += name.size();
  *p++ = ':';
  *p++ = ' ';
  if (!value.empty()) std::memcpy(p, value.data(), value.size());
  p += value.size();
  *p++ = '\r';
  *p = '\n';
}

void append_number(std::string& out, std::uint64_t n) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, r.ptr);
}

// RFC 9110 §7.6.3: each recipient appends its entry to the received Via list; several Via fields are one list.
void append_via(std::string& out, std::span<const http::Header> headers, std::string_view via) {
  out += "Via: ";
  for (const http::Header& h : headers) {
    if (classify(h.name) != Kind::via || trim_ows(h.value).empty()) continue;
    out += trim_ows(h.value);
    out += ", ";
  }
  out += via;
  out += "\r\n";
}

// The authority of an absolute-form target (RFC 9112 §3.2.2: it replaces any Host field), with its port and
// without userinfo; empty for the other forms.
std::string_view absolute_form_authority(std::string_view target) noexcept {
  const std::size_t scheme_end = target.find("://");
  if (target.empty() || target.front() == '/' || scheme_end == std::string_view::npos) return {};
  std::string_view rest = target.substr(scheme_end + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (const std::size_t at = rest.rfind('@'); at != std::string_view::npos) rest.remove_prefix(at + 1);
  return rest;
}

bool is_digits(std::string_view s) noexcept {
  if (s.empty() || s.size() > 19) return false;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool no_body_status(unsigned status) noexcept { return status < 200 || status == 204 || status == 304; }

}  // namespace

bool is_trusted(std::span<const config::Cidr> ranges, std::string_view addr) noexcept {
  if (ranges.empty()) return false;
  if (addr.size() >= 2 && addr.front() == '[' && addr.back() == ']') addr = addr.substr(1, addr.size() - 2);
  if (const std::size_t zone = addr.find('%'); zone != std::string_view::npos) addr = addr.substr(0, zone);
  char text[INET6_ADDRSTRLEN];
  if (addr.empty() || addr.size() >= sizeof text) return false;
  std::memcpy(text, addr.data(), addr.size());
  text[addr.size()] = '\0';

  std::array<std::uint8_t, 16> bytes{};
  if (addr.find(':') != std::string_view::npos) {
    if (inet_pton(AF_INET6, text, bytes.data()) != 1) return false;
  } else {
    // IPv4 is compared as the IPv4-mapped IPv6 address ::ffff:a.b.c.d (RFC 4291 §2.5.5.2), as config::Cidr
    // stores it, so "10.0.0.0/8" (prefix 104) also covers a dual-stack socket's ::ffff:10.1.2.3.
    if (inet_pton(AF_INET, text, bytes.data() + 12) != 1) return false;
    bytes[10] = bytes[11] = 0xff;
  }
  for (const config::Cidr& r : ranges) {
    const unsigned prefix = r.prefix > 128 ? 128 : r.prefix;
    const unsigned full = prefix / 8, bits = prefix % 8;
    if (std::memcmp(bytes.data(), r.bytes.data(), full) != 0) continue;
    if (bits != 0) {
      const auto mask = static_cast<std::uint8_t>(0xff << (8 - bits));
      if ((bytes[full] & mask) != (r.bytes[full] & mask)) continue;
    }
    return true;
  }
  return false;
}

void append_request_head(std::string& out, const http::RequestHead& head, const RequestForward& f) {
  const ConnectionOptions connection(head.headers);

  // Request line (RFC 9112 §3): always origin-form and HTTP/1.1 towards the upstream.
  out += head.method_text;
  out += ' ';
  out += f.path;
  if (!f.query.empty()) {
    out += '?';
    out += f.query;
  }
  out += " HTTP/1.1\r\n";

  // RFC 9110 §7.2: Host first. The original one keeps its port; an absolute-form target's authority wins.
  std::string_view original_host = absolute_form_authority(head.target);
  if (original_host.empty()) original_host = head.header("host");
  if (original_host.empty()) original_host = head.host;
  append_header(out, "Host", f.host_override.empty() ? original_host : f.host_override);

  std::string_view their_proto, their_host;
  bool has_via = false;
  for (const http::Header& h : head.headers) {
    switch (classify(h.name)) {
      case Kind::end_to_end:
        break;
      case Kind::traceparent:
        if (!f.traceparent.empty()) continue;   // ours replaces it (W3C Trace Context §3.2)
        break;
      case Kind::via:
        if (!f.via.empty()) {
          has_via = true;
          continue;   // re-emitted below with our entry appended
        }
        break;
      case Kind::x_forwarded_proto:
        if (their_proto.empty()) their_proto = trim_ows(h.value);
        continue;
      case Kind::x_forwarded_host:
        if (their_host.empty()) their_host = trim_ows(h.value);
        continue;
      case Kind::hop_by_hop:
      case Kind::content_length:
      case Kind::host:
      case Kind::x_forwarded_for:
        continue;
    }
    if (connection.names(h.name)) continue;
    append_header(out, h.name, h.value);
  }

  // X-Forwarded-For: a client we do not trust could write anything there, so its list is replaced by its
  // own address; a trusted proxy's list is kept (all fields, in order) and the peer appended.
  out += "X-Forwarded-For: ";
  if (f.client_trusted) {
    for (const http::Header& h : head.headers) {
      if (classify(h.name) != Kind::x_forwarded_for) continue;
      const std::string_view v = trim_ows(h.value);
      if (v.empty()) continue;
      out += v;
      out += ", ";
    }
  }
  out += f.client_addr;
  out += "\r\n";
  append_header(out, "X-Forwarded-Proto", f.client_trusted && !their_proto.empty() ? their_proto : f.proto);
  append_header(out, "X-Forwarded-Host", f.client_trusted && !their_host.empty() ? their_host : original_host);
  if (!f.via.empty()) {
    if (has_via) {
      append_via(out, head.headers, f.via);
    } else {
      append_header(out, "Via", f.via);
    }
  }
  if (!f.traceparent.empty()) append_header(out, "traceparent", f.traceparent);
  if (f.websocket) out += "Connection: Upgrade\r\nUpgrade: websocket\r\n";   // RFC 6455 §4.1, RFC 9110 §7.8

  // Framing for the next hop (RFC 9112 §6.1–6.2): the caller relays the decoded body re-chunked or as is.
  if (head.chunked) {
    out += "Transfer-Encoding: chunked\r\n";
  } else if (head.content_length) {
    out += "Content-Length: ";
    append_number(out, *head.content_length);
    out += "\r\n";
  }
  out += "\r\n";
}

ResponseFraming append_response_head(std::string& out, const http::ResponseHead& head, const ResponseForward& f) {
  const ConnectionOptions connection(head.headers);
  // A 101 to a WebSocket handshake switches the client connection to the tunnel: its Upgrade field survives.
  const bool switching = f.websocket && head.status == 101;

  // RFC 9110 §6.2: we speak HTTP/1.1 to the client whatever the upstream spoke; the reason phrase is advisory.
  out += "HTTP/1.1 ";
  append_number(out, head.status);
  out += ' ';
  out += head.reason.empty() ? http::reason_phrase(head.status) : head.reason;
  out += "\r\n";

  std::string_view content_length;
  bool has_via = false;
  for (const http::Header& h : head.headers) {
    switch (classify(h.name)) {
      case Kind::content_length:
        if (content_length.empty()) content_length = trim_ows(h.value);
        continue;
      case Kind::hop_by_hop:
        if (switching && iequals(h.name, "upgrade")) break;
        continue;
      case Kind::via:
        if (!f.via.empty()) {
          has_via = true;
          continue;
        }
        break;
      default:
        break;
    }
    if (connection.names(h.name) && !(switching && iequals(h.name, "upgrade"))) continue;
    append_header(out, h.name, h.value);
  }
  if (switching) out += "Connection: Upgrade\r\n";

  // Framing to the client (RFC 9112 §6.3). The upstream's Content-Length / Transfer-Encoding described its
  // hop; we decide again from what the parser found.
  ResponseFraming framing;
  if (f.head_request) {
    // RFC 9110 §9.3.2 / §8.6: the answer to HEAD may carry the length a GET would have had; no body follows.
    if (is_digits(content_length)) {
      append_header(out, "Content-Length", content_length);
    } else if (head.content_length) {
      out += "Content-Length: ";
      append_number(out, *head.content_length);
      out += "\r\n";
    }
  } else if (no_body_status(head.status)) {
    // RFC 9110 §15.2, §15.3.5, §15.4.5: 1xx, 204 and 304 end at the header section.
  } else if (head.content_length) {
    out += "Content-Length: ";
    append_number(out, *head.content_length);
    out += "\r\n";
  } else if (head.no_body) {
    // Nothing follows (the parser saw a bodiless message); no framing needed.
  } else if (f.client_version >= 11) {
    out += "Transfer-Encoding: chunked\r\n";
    framing.chunked = true;
  } else {
    framing.close_delimited = true;   // RFC 9112 §6.3 item 8: an HTTP/1.0 client reads to the close
  }

  if (!f.via.empty()) {
    if (has_via) {
      append_via(out, head.headers, f.via);
    } else {
      append_header(out, "Via", f.via);
    }
  }
  out += f.extra;
  return framing;
}

void rewrite_path(std::string& out, std::string_view path, std::string_view strip_prefix, std::string_view add_prefix) {
  out.clear();
  std::string_view rest = path;
  if (!strip_prefix.empty() && rest.starts_with(strip_prefix)) rest.remove_prefix(strip_prefix.size());
  if (!add_prefix.empty()) {
    out = add_prefix;
    if (out.back() == '/' && rest.starts_with('/')) rest.remove_prefix(1);
  }
  if (out.empty() && !rest.starts_with('/')) out = "/";
  else if (!out.empty() && out.back() != '/' && !rest.empty() && !rest.starts_with('/')) out.push_back('/');
  out.append(rest);
}

bool wants_websocket(const http::RequestHead& head) noexcept {
  // RFC 6455 §4.1 (client handshake items 2, 5, 6) and §4.2.1: GET, HTTP/1.1 or later, an Upgrade field
  // listing "websocket" and a Connection field listing "Upgrade", both case-insensitive.
  if (head.method != http::Method::get || head.version < 11) return false;
  bool upgrade = false;
  for (const http::Header& h : head.headers) {
    if (!iequals(h.name, "upgrade")) continue;
    upgrade = any_list_element(h.value, [](std::string_view t) {
      // An Upgrade element is protocol-name ["/" protocol-version] (RFC 9110 §7.8).
      return iequals(t.substr(0, t.find('/')), "websocket");
    });
    if (upgrade) break;
  }
  return upgrade && ConnectionOptions(head.headers).names("upgrade");
}

}  // namespace virex::upstream
