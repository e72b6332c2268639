// Edge-cache entries from upstream responses (see cache_fill.hpp).
#include "cache_fill.hpp"

#include <virex/cache/key.hpp>
#include <virex/http/text.hpp>
#include <virex/upstream/forward.hpp>

#include <cctype>
#include <vector>

namespace virex::server {
namespace {

void lower(std::string& s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

// Fields a 304 must not replace in the stored response (RFC 9111 §3.2: framing and Content-Length describe the
// stored body, not the 304's; Via is this hop's and was written when the entry was stored).
bool keeps_stored(std::string_view name) noexcept {
  return http::iequals(name, "Content-Length") || http::iequals(name, "Transfer-Encoding") ||
         http::iequals(name, "Content-Encoding") || http::iequals(name, "Connection") ||
         http::iequals(name, "Keep-Alive") || http::iequals(name, "Via");
}

}  // namespace

std::shared_ptr<cache::Entry> make_entry(const http::RequestHead& req, const http::ResponseHead& rh,
                                         const cache::StoreDecision& d, const pipeline::Snapshot& snap,
                                         const pipeline::CompiledRoute& route, std::string_view key,
                                         std::string_view via) {
  auto e = std::make_shared<cache::Entry>();
  e->key.assign(key);
  if (!rh.header("Vary").empty()) {
    if (!cache::vary_key(e->variant_key, req, rh.headers)) return nullptr;  // Vary: * (decide() refuses it too)
    for (const http::Header& f : rh.headers) {
      if (!http::iequals(f.name, "Vary")) continue;
      std::string_view list = f.value;
      while (!list.empty()) {
        const auto comma = list.find(',');
        std::string name(http::trim_ows(list.substr(0, comma)));
        lower(name);
        if (!name.empty()) e->vary.push_back(std::move(name));
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
      }
    }
    // The variant key from the same normalised names a lookup uses (Connection::cache_lookup), so they agree.
    std::vector<http::Header> vary;
    for (const std::string& name : e->vary) vary.push_back({"Vary", name});
    cache::vary_key(e->variant_key, req, vary);
  }
  std::vector<http::Header> kept;
  kept.reserve(rh.headers.size());
  for (const http::Header& f : rh.headers)
    if (!http::iequals(f.name, "Date") && !http::iequals(f.name, "Age")) kept.push_back(f);
  http::ResponseHead copy = rh;
  copy.headers = kept;
  copy.no_body = true;  // no framing field: seal() adds Content-Length for the stored body
  copy.content_length.reset();
  copy.chunked = false;
  upstream::ResponseForward fw;
  fw.via = via;
  upstream::append_response_head(e->head, copy, fw);
  e->host.assign(req.host);
  lower(e->host);
  e->path.assign(req.path);
  e->status = static_cast<std::uint16_t>(rh.status);
  e->stored_at = std::chrono::steady_clock::now();
  e->initial_age = static_cast<std::uint32_t>(d.initial_age.count());
  e->ttl = static_cast<std::uint32_t>(d.ttl.count());
  e->swr = static_cast<std::uint32_t>(d.swr.count());
  e->sie = static_cast<std::uint32_t>(d.sie.count());
  e->etag.assign(rh.header("ETag"));
  e->last_modified.assign(rh.header("Last-Modified"));
  // Purge tags: the route's fixed ones and the response's Surrogate-Key / Cache-Tag (space or comma lists).
  // Templates take the route's path captures ("customer:{customer_id}"); the loader checked every name exists.
  const pipeline::Match m = snap.routes.match(req.host, req.path, req.method, req.method_text);
  for (const std::string& tag : route.cache->tags) {
    if (tag.find('{') == std::string::npos) {
      e->tags.push_back(tag);
      continue;
    }
    std::string out;
    http::expand_template(out, tag, [&](std::string_view name) {
      for (std::size_t i = 0; i < m.ncaptures; ++i)
        if (m.captures[i].name == name) out.append(m.captures[i].value);
    });
    e->tags.push_back(std::move(out));
  }
  for (const http::Header& f : rh.headers) {
    if (!http::iequals(f.name, "Surrogate-Key") && !http::iequals(f.name, "Cache-Tag")) continue;
    std::string_view list = f.value;
    while (!list.empty()) {
      const auto sep = list.find_first_of(", ");
      const std::string_view tag = list.substr(0, sep);
      if (!tag.empty() && e->tags.size() < 32) e->tags.emplace_back(tag);
      if (sep == std::string_view::npos) break;
      list.remove_prefix(sep + 1);
    }
  }
  return e;
}

void seal(cache::Entry& e, std::string body) {
  e.head.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  e.body = std::move(body);
}

std::shared_ptr<cache::Entry> freshen(const cache::Entry& old, const http::ResponseHead& not_modified,
                                      const http::RequestHead& req, const pipeline::Snapshot& snap,
                                      const pipeline::CompiledRoute& route, std::time_t now,
                                      cache::StoreDecision& d) {
  // The stored head is a complete status line and field section without the final empty line.
  // RFC 9111 §4.3.4: the 304 must select the stored response. A strong ETag of its own that differs (or, without
  // one, a different Last-Modified) means it validated something else.
  const std::string_view etag = not_modified.header("ETag");
  const std::string_view lm = not_modified.header("Last-Modified");
  if ((!etag.empty() && !old.etag.empty() && !etag.starts_with("W/") && etag != old.etag) ||
      (etag.empty() && !lm.empty() && !old.last_modified.empty() && lm != old.last_modified)) {
    d = {};
    return nullptr;
  }
  std::string stored = old.head;
  stored.append("\r\n");
  // The stored head gained Via and Content-Length over the upstream's: parse it with room to spare.
  http::H1ResponseParser parser(http::H1ResponseLimits{.max_header_bytes = 256 * 1024, .max_headers = 128});
  const auto r = parser.feed(stored);
  if (r.event != http::H1ResponseParser::Event::head) {
    d = {};
    return nullptr;  // cannot happen: the head was written by make_entry()
  }
  const http::ResponseHead& sh = parser.head();
  std::vector<http::Header> merged;
  merged.reserve(sh.headers.size() + not_modified.headers.size());
  // Fields the 304's Connection names are hop-by-hop for that hop (RFC 9110 §7.6.1): never stored.
  const auto connection_option = [&](std::string_view name) {
    for (const http::Header& c : not_modified.headers) {
      if (!http::iequals(c.name, "Connection")) continue;
      std::string_view list = c.value;
      while (!list.empty()) {
        const auto comma = list.find(',');
        if (http::iequals(http::trim_ows(list.substr(0, comma)), name)) return true;
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
      }
    }
    return false;
  };
  for (const http::Header& f : sh.headers) {
    bool replaced = false;
    if (!keeps_stored(f.name))
      for (const http::Header& n : not_modified.headers)
        replaced = replaced || (http::iequals(n.name, f.name) && !connection_option(n.name));
    if (!replaced) merged.push_back(f);
  }
  for (const http::Header& n : not_modified.headers)
    if (!keeps_stored(n.name) && !connection_option(n.name)) merged.push_back(n);
  http::ResponseHead head = sh;
  head.headers = merged;
  head.no_body = false;
  head.content_length = old.body.size();
  d = cache::decide(req, head, route.cache_policy, now);
  cache::StoreDecision entry_d = d;
  if (!d.store) entry_d = {};  // served once with no lifetime
  auto e = make_entry(req, head, entry_d, snap, route, old.key, {});
  if (!e) return nullptr;
  seal(*e, old.body);
  return e;
}

bool is_precondition(std::string_view name) noexcept {
  return http::iequals(name, "If-None-Match") || http::iequals(name, "If-Modified-Since") ||
         http::iequals(name, "If-Match") || http::iequals(name, "If-Unmodified-Since") ||
         http::iequals(name, "If-Range");
}

bool plain_request(const http::RequestHead& req) noexcept {
  for (const http::Header& f : req.headers)
    if (is_precondition(f.name) || http::iequals(f.name, "Range") || http::iequals(f.name, "Authorization") ||
        http::iequals(f.name, "Cache-Control") || http::iequals(f.name, "Pragma"))
      return false;
  return true;
}

bool add_validators(std::string& upstream_head, const cache::Entry& e) {
  if (e.etag.empty() && e.last_modified.empty()) return false;
  std::string lines;
  if (!e.etag.empty()) lines.append("If-None-Match: ").append(e.etag).append("\r\n");
  if (!e.last_modified.empty()) lines.append("If-Modified-Since: ").append(e.last_modified).append("\r\n");
  upstream_head.insert(upstream_head.size() - 2, lines);  // before the empty line that ends the head
  return true;
}

}  // namespace virex::server
