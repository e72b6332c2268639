// Building edge-cache entries from upstream responses, shared by the foreground exchange (proxy.cpp), the
// background refresh of stale-while-revalidate (refresh.cpp) and revalidation with stored validators
// (RFC 9111 §4.3). Pure functions of heads and the route: no I/O, no store access.
#pragma once

#include <virex/cache/freshness.hpp>
#include <virex/cache/store.hpp>
#include <virex/http/h1_response_parser.hpp>
#include <virex/http/request.hpp>
#include <virex/pipeline/snapshot.hpp>

#include <ctime>
#include <memory>
#include <string>
#include <string_view>

namespace virex::server {

// A new entry for the response `rh` to `req` on a caching `route`, which decide() allowed (`d`): the head a hit
// sends (without Date, Age and framing, which every hit writes itself; `via` appended as this hop's Via), the
// variant key (Vary), validators, tags (the route's templates filled from the path captures, then the
// response's Surrogate-Key / Cache-Tag). No body yet: seal() adds it. Null for `Vary: *`.
std::shared_ptr<cache::Entry> make_entry(const http::RequestHead& req, const http::ResponseHead& rh,
                                         const cache::StoreDecision& d, const pipeline::Snapshot& snap,
                                         const pipeline::CompiledRoute& route, std::string_view key,
                                         std::string_view via);

// Completes an entry from make_entry(): its Content-Length and body.
void seal(cache::Entry& e, std::string body);

// RFC 9111 §4.3.4: the stored response `old` freshened by a 304 to a revalidation — `old`'s header fields with
// those the 304 carries replacing them (except framing and Content-Length, §3.2), its body, and the freshness
// decide() gives the merged head at `now`. `d` receives that decision (d.store false: serve it once, do not
// keep it). The result is sealed. Null when the 304 does not select `old` (a different strong ETag, or without
// one a different Last-Modified).
std::shared_ptr<cache::Entry> freshen(const cache::Entry& old, const http::ResponseHead& not_modified,
                                      const http::RequestHead& req, const pipeline::Snapshot& snap,
                                      const pipeline::CompiledRoute& route, std::time_t now,
                                      cache::StoreDecision& d);

// Whether `name` is a precondition field (If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since,
// If-Range), case-insensitively.
bool is_precondition(std::string_view name) noexcept;

// Whether a request may stand for the cache itself when it refreshes or revalidates a stored response: no
// preconditions, no Range, no Authorization and no Cache-Control / Pragma of its own — any of those would make the
// origin's answer (or decide()) say something about this request rather than about the stored response.
bool plain_request(const http::RequestHead& req) noexcept;

// Adds `If-None-Match` / `If-Modified-Since` from the stored validators to an upstream request head (which
// ends in the empty line). False when the entry has none.
bool add_validators(std::string& upstream_head, const cache::Entry& e);

}  // namespace virex::server
