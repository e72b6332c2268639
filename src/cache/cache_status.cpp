// RFC 9211 Cache-Status serialisation (RFC 8941 list member with parameters). Pure, any thread.
#include <virex/cache/cache_status.hpp>

#include <string>

namespace virex::cache {
namespace {

bool is_alpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// RFC 8941 §3.3.4: sf-token = ( ALPHA / "*" ) *( tchar / ":" / "/" ).
bool is_sf_token(std::string_view s) noexcept {
  if (s.empty() || !(is_alpha(s.front()) || s.front() == '*')) return false;
  for (char c : s) {
    const bool digit = c >= '0' && c <= '9';
    if (!is_alpha(c) && !digit && std::string_view("!#$%&'*+-.^_`|~:/").find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

// sf-token when possible, else sf-string (§3.3.3: printable ASCII, `"` and `\` escaped).
void append_item(std::string& out, std::string_view s) {
  if (is_sf_token(s)) {
    out += s;
    return;
  }
  out.push_back('"');
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(u >= 0x20 && u <= 0x7e ? c : '?');
  }
  out.push_back('"');
}

}  // namespace

std::string_view to_string(Forward f) noexcept {
  switch (f) {
    case Forward::none: return "";
    case Forward::bypass: return "bypass";
    case Forward::method: return "method";
    case Forward::uri_miss: return "uri-miss";
    case Forward::vary_miss: return "vary-miss";
    case Forward::miss: return "miss";
    case Forward::request: return "request";
    case Forward::stale: return "stale";
    case Forward::partial: return "partial";
  }
  return "";
}

void append_cache_status(std::string& out, const CacheStatus& s, std::string_view cache_name) {
  append_item(out, cache_name);
  if (s.hit) {
    out += "; hit";
  } else if (s.fwd != Forward::none) {
    out += "; fwd=";
    out += to_string(s.fwd);
  }
  if (!s.hit && s.fwd_status != 0) {
    out += "; fwd-status=";
    out += std::to_string(s.fwd_status);
  }
  if (s.stored) out += "; stored";
  if (s.collapsed) out += "; collapsed";
  if (s.ttl) {
    out += "; ttl=";
    out += std::to_string(*s.ttl);
  }
  if (!s.detail.empty()) {
    out += "; detail=";
    append_item(out, s.detail);
  }
}

}  // namespace virex::cache
