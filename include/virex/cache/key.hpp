// Cache keys of the edge cache: the primary key of a request (route key spec: selected headers, query
// parameters, cookies) and the secondary key a response's Vary asks for (RFC 9111 §4.1). Pure functions, any
// thread; they write into a caller-owned string so a worker can reuse its buffer.
#pragma once

#include <virex/http/request.hpp>

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace virex::cache {

// What a route adds to the key beyond method class, host and path (config `cache.key`).
struct KeySpec {
  std::vector<std::string> headers;  // request headers whose values are part of the key (case-insensitive names)
  std::vector<std::string> query;    // query parameters kept (exact names); empty = all of them
  bool ignore_query = false;         // the query is left out of the key altogether
  std::vector<std::string> cookies;  // cookies (exact names, RFC 6265) whose values are part of the key
};

// Writes the primary key of `req` into `out` (replacing its contents). Deterministic bytes:
//   class \0 host \0 path \0 query \0 headers \0 cookies
// class: "G" for GET and HEAD (they share entries), else the method as received. host: lower-cased, port
// stripped. path: as received — no percent-decoding, no dot-segment removal, case kept (/a%2Fb and /a/b are
// different keys). query: the parameters split on "&" (empty ones dropped), only those named in spec.query when
// it is set, sorted by name and then by the rest of the parameter (so the order the client sent does not
// matter), joined with "&"; not decoded either (a+b and a%20b differ); empty when spec.ignore_query. Each
// listed header or cookie, in spec order: `name=<length>:<value>` when present (a header's fields joined with
// ", ", each trimmed of optional whitespace; a cookie's first occurrence), `name;` when absent. The length
// prefixes make the encoding unambiguous whatever the values hold.
void build_key(std::string& out, const http::RequestHead& req, const KeySpec& spec);

// The first three parts of a key written by build_key (for purge by host, path or path prefix).
struct KeyParts {
  std::string_view method_class;
  std::string_view host;
  std::string_view path;
};
// Splits `key`; all parts empty when it is not one build_key wrote.
KeyParts split_key(std::string_view key) noexcept;

// Writes the secondary (variant) key of `req` for a stored response with `response_headers` into `out`
// (replacing its contents): for each field name listed in the response's Vary fields — lower-cased,
// de-duplicated and sorted, so the listing order does not matter — `name=<length>:<value>` with the request's
// fields of that name joined by "," (each list member trimmed of optional whitespace, RFC 9111 §4.1
// normalisation), or `name;` when the request has none. Empty when there is no Vary. Returns false, with `out`
// cleared, for `Vary: *` (never matches: do not store).
bool vary_key(std::string& out, const http::RequestHead& req, std::span<const http::Header> response_headers);

}  // namespace virex::cache
