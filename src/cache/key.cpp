// Primary and Vary keys of the edge cache (key.hpp describes the byte layout). Pure, any thread; the only
// allocations are the caller's output buffer and a small list of query parameters or Vary names.
#include <virex/cache/key.hpp>

#include <virex/http/text.hpp>

#include <algorithm>
#include <cstddef>

namespace virex::cache {
namespace {

using http::iequals;
using http::trim_ows;

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

void append_lower(std::string& out, std::string_view s) {
  for (char c : s) out.push_back(lower(c));
}

void append_value(std::string& out, std::string_view value) {
  out.push_back('=');
  out += std::to_string(value.size());
  out.push_back(':');
  out += value;
}

// RFC 9110 §5.3: the fields of one name, in order, joined with ", "; each trimmed.
std::string joined_fields(std::span<const http::Header> headers, std::string_view name, bool& present) {
  std::string value;
  present = false;
  for (const http::Header& f : headers) {
    if (!iequals(f.name, name)) continue;
    if (present) value += ", ";
    value += trim_ows(f.value);
    present = true;
  }
  return value;
}

// Host without its port ("[v6]:port" keeps the brackets), lower-cased.
void append_host(std::string& out, std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    const std::size_t close = host.find(']');
    if (close != std::string_view::npos) host = host.substr(0, close + 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  append_lower(out, host);
}

void append_query(std::string& out, std::string_view query, const KeySpec& spec) {
  if (spec.ignore_query || query.empty()) return;
  struct Param {
    std::string_view name;
    std::string_view rest;  // "" or "=value"
  };
  std::vector<Param> params;
  while (true) {
    const std::size_t amp = query.find('&');
    const std::string_view param = query.substr(0, amp);
    if (!param.empty()) {
      const std::size_t eq = param.find('=');
      const Param p{param.substr(0, eq), eq == std::string_view::npos ? std::string_view() : param.substr(eq)};
      if (spec.query.empty() || std::find(spec.query.begin(), spec.query.end(), p.name) != spec.query.end()) {
        params.push_back(p);
      }
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  std::sort(params.begin(), params.end(), [](const Param& a, const Param& b) {
    return a.name != b.name ? a.name < b.name : a.rest < b.rest;
  });
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (i > 0) out.push_back('&');
    out += params[i].name;
    out += params[i].rest;
  }
}

// RFC 6265 §4.2.1: cookie-string = cookie-pair *( ";" SP cookie-pair ); several Cookie fields (HTTP/2) are read
// in order. The first pair named `name` (case-sensitive).
bool find_cookie(std::span<const http::Header> headers, std::string_view name, std::string_view& value) {
  for (const http::Header& f : headers) {
    if (!iequals(f.name, "Cookie")) continue;
    std::string_view v = f.value;
    while (!v.empty()) {
      const std::size_t semi = v.find(';');
      const std::string_view pair = trim_ows(v.substr(0, semi));
      const std::size_t eq = pair.find('=');
      if (eq != std::string_view::npos && trim_ows(pair.substr(0, eq)) == name) {
        value = trim_ows(pair.substr(eq + 1));
        return true;
      }
      if (semi == std::string_view::npos) break;
      v.remove_prefix(semi + 1);
    }
  }
  return false;
}

}  // namespace

void build_key(std::string& out, const http::RequestHead& req, const KeySpec& spec) {
  out.clear();
  if (req.method == http::Method::get || req.method == http::Method::head) out.push_back('G');
  else out += req.method_text;
  out.push_back('\0');
  append_host(out, req.host);
  out.push_back('\0');
  out += req.path;
  out.push_back('\0');
  append_query(out, req.query, spec);
  out.push_back('\0');
  for (const std::string& name : spec.headers) {
    append_lower(out, name);
    bool present = false;
    const std::string value = joined_fields(req.headers, name, present);
    if (present) append_value(out, value);
    else out.push_back(';');
  }
  out.push_back('\0');
  for (const std::string& name : spec.cookies) {
    out += name;
    std::string_view value;
    if (find_cookie(req.headers, name, value)) append_value(out, value);
    else out.push_back(';');
  }
}

KeyParts split_key(std::string_view key) noexcept {
  KeyParts parts;
  const std::size_t a = key.find('\0');
  if (a == std::string_view::npos) return parts;
  const std::size_t b = key.find('\0', a + 1);
  if (b == std::string_view::npos) return parts;
  const std::size_t c = key.find('\0', b + 1);
  if (c == std::string_view::npos) return parts;
  return {key.substr(0, a), key.substr(a + 1, b - a - 1), key.substr(b + 1, c - b - 1)};
}

bool vary_key(std::string& out, const http::RequestHead& req, std::span<const http::Header> response_headers) {
  out.clear();
  std::vector<std::string> names;
  for (const http::Header& f : response_headers) {
    if (!iequals(f.name, "Vary")) continue;
    std::string_view v = f.value;
    while (true) {
      const std::size_t comma = v.find(',');
      const std::string_view member = trim_ows(v.substr(0, comma));
      if (member == "*") return false;  // RFC 9111 §4.1: always fails to match
      if (!member.empty()) {
        std::string name;
        append_lower(name, member);
        names.push_back(std::move(name));
      }
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  for (const std::string& name : names) {
    out += name;
    bool present = false;
    std::string value;
    for (const http::Header& f : req.headers) {
      if (!iequals(f.name, name)) continue;
      // Each list member trimmed and the members joined with "," across every field of the name.
      std::string_view v = f.value;
      while (true) {
        const std::size_t comma = v.find(',');
        if (present) value.push_back(',');
        value += trim_ows(v.substr(0, comma));
        present = true;
        if (comma == std::string_view::npos) break;
        v.remove_prefix(comma + 1);
      }
    }
    if (present) append_value(out, value);
    else out.push_back(';');
  }
  return true;
}

}  // namespace virex::cache
