// The admin purge API: `POST /cache/purge` with `Authorization: Bearer <admin token>` (RFC 6750 §2.1) and a JSON
// body naming what to purge: {"path": "/exact"} | {"prefix": "/p/"} | {"tag": "t"}, optionally "host" and
// "soft": true (mark stale instead of delete). Answers {"purged": N}. Runs on the connection's worker; the store
// is node-wide (its own locks), so a purge here is seen by every worker at once.
#include "connection.hpp"

#include <virex/http/response.hpp>
#include <virex/http/text.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <spdlog/spdlog.h>

namespace virex::server {
namespace {

// Constant time in the token's length: a timing side channel must not reveal how much of a guess was right.
bool same_secret(std::string_view a, std::string_view b) noexcept {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < b.size(); ++i)
    diff |= static_cast<unsigned char>((i < a.size() ? a[i] : 0) ^ b[i]);
  return diff == 0;
}

std::string_view bearer_token(std::string_view auth) noexcept {
  // RFC 6750 §2.1 / RFC 9110 §11.1: the scheme is case-insensitive, one or more spaces before the token.
  if (auth.size() < 7 || !http::iequals(auth.substr(0, 6), "Bearer") || auth[6] != ' ') return {};
  auth.remove_prefix(7);
  return http::trim_ows(auth);
}

void append_json_response(std::string& out, unsigned status, std::string_view date_line, http::ConnectionHeader conn,
                          std::string_view body, std::string_view extra = {}) {
  http::append_body_response(out, status, "application/json", body, date_line, conn, false, extra);
}

std::string error_body(std::string_view why) {
  std::string b = "{\"error\":\"";
  b.append(why).append("\"}\n");
  return b;
}

}  // namespace

unsigned Connection::answer_purge(std::string& out, std::string_view date, http::ConnectionHeader conn) {
  const Pending& p = pending_;
  if (p.method != http::Method::post) {
    append_json_response(out, 405, date, conn, error_body("use POST"), "Allow: POST\r\n");
    return 405;
  }
  const std::string& token = snapshot_->admin_token;
  if (token.empty() || !same_secret(bearer_token(p.admin_auth), token)) {
    append_json_response(out, 401, date, conn,
                         error_body(token.empty() ? "no admin token is configured (admin.token)" : "a valid bearer token is required"),
                         "WWW-Authenticate: Bearer realm=\"virex-edge\"\r\n");
    return 401;
  }
  if (p.admin_body_too_large) {
    append_json_response(out, 413, date, conn, error_body("the body is over 64 KiB"));
    return 413;
  }
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(p.admin_body, ec);
  const boost::json::object* o = ec ? nullptr : v.if_object();
  auto bad = [&](std::string_view why) {
    append_json_response(out, 400, date, conn, error_body(why));
    return 400u;
  };
  if (!o) return bad("expected a JSON object such as {\\\"prefix\\\": \\\"/p/\\\"}");
  std::string_view kind, what, host;
  bool soft = false;
  for (const auto& kv : *o) {
    const std::string_view k = kv.key();
    if (k == "path" || k == "prefix" || k == "tag") {
      if (!kind.empty()) return bad("name exactly one of path, prefix, tag");
      const auto* s = kv.value().if_string();
      if (!s || s->empty()) return bad("path, prefix and tag take a non-empty string");
      kind = k;
      what = *s;
      if (k != "tag" && what.front() != '/') return bad("path and prefix start with /");
    } else if (k == "host") {
      const auto* s = kv.value().if_string();
      if (!s) return bad("host takes a string");
      host = *s;
    } else if (k == "soft") {
      const auto* b = kv.value().if_bool();
      if (!b) return bad("soft takes true or false");
      soft = *b;
    } else {
      return bad("unknown key (path, prefix, tag, host, soft)");
    }
  }
  if (kind.empty()) return bad("name one of path, prefix, tag");
  std::string lower_host(host);
  for (char& c : lower_host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::size_t n = 0;
  if (cache::Store* store = worker_.edge_cache()) {
    if (kind == "tag") n = store->purge_tag(what, soft);
    else if (kind == "prefix") n = store->purge_prefix(lower_host, what, soft);
    else n = store->purge_path(lower_host, what, soft);
  }
  worker_.count_purge(kind == "path" ? 0 : kind == "prefix" ? 1 : 2, soft, n);
  const std::string_view regional = regional_purge(kind, what, lower_host, soft);  // every node, and Redis
  if (regional == "unavailable")
    spdlog::warn("cache purge: the regional tier is unavailable; other nodes and Redis keep their copies");
  spdlog::info("cache purge: {} {}{}{} → {} entr{}", kind, what, host.empty() ? "" : " host ", host,
               soft ? " (soft)" : "", n, n == 1 ? "y" : "ies");
  std::string body = "{\"purged\":" + std::to_string(n);
  if (!regional.empty()) body.append(",\"regional\":\"").append(regional).append("\"");
  append_json_response(out, 200, date, conn, body + "}\n");
  return 200;
}

}  // namespace virex::server
