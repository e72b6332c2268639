// Readers for a listener's `protocols:` and `tls:` (see tls.hpp). Only shapes and names are checked here; the
// server reads the files and reports unreadable or mismatched ones at the positions recorded below.
#include "tls.hpp"

#include <algorithm>
#include <array>

namespace virex::config::detail {
namespace {
constexpr std::size_t kMaxCertificates = 64;

// A file name: non-empty, no control characters (it is opened as a C string).
std::optional<std::string> read_path(Walker& w, const Field& f) {
  auto text = w.string(f);
  if (!text) return std::nullopt;
  if (text->empty()) {
    w.fail(f, "must not be empty");
    return std::nullopt;
  }
  if (has_control_char(*text)) {
    w.fail(f, "must not contain control characters");
    return std::nullopt;
  }
  return text;
}
}  // namespace

void read_protocols(Walker& w, const Field& field, std::vector<Protocol>& protocols) {
  static constexpr std::array<std::string_view, 3> kNames = {"http1", "h2c", "h2"};
  protocols.clear();
  const bool ok = w.items(field, [&](const Field& item) {
    const auto i = w.choice(item, kNames);
    if (!i) return;
    const auto p = static_cast<Protocol>(*i);
    if (std::find(protocols.begin(), protocols.end(), p) != protocols.end())
      return w.fail(item, "duplicate protocol " + std::string(kNames[*i]));
    protocols.push_back(p);
  });
  if (ok && field.node.size() == 0) w.fail(field, "expected at least one protocol (http1, h2c, h2)");
}

void read_listener_tls(Walker& w, const Field& field, ListenerTls& tls) {
  tls.location = field.at;
  bool has_certificates = false;
  const bool is_map = w.map(field, {
      {"certificates",
       [&](const Field& f) {
         has_certificates = true;
         const bool ok = w.items(f, [&](const Field& item) {
           if (tls.certificates.size() >= kMaxCertificates)
             return w.fail(item, "too many certificates (at most 64)");
           TlsCertificate& c = tls.certificates.emplace_back();
           bool has_cert = false, has_key = false;
           const bool cert_map = w.map(item, {
               {"cert",
                [&](const Field& v) {
                  has_cert = true;
                  if (auto p = read_path(w, v)) c.cert = *p, c.cert_location = v.at;
                }},
               {"key",
                [&](const Field& v) {
                  has_key = true;
                  if (auto p = read_path(w, v)) c.key = *p, c.key_location = v.at;
                }},
               {"ocsp_staple",
                [&](const Field& v) {
                  if (auto p = read_path(w, v)) c.ocsp_staple = *p, c.ocsp_location = v.at;
                }},
           });
           if (!cert_map) return;
           if (!has_cert) w.fail(item.at, join(item.path, "cert"), "is required");
           if (!has_key) w.fail(item.at, join(item.path, "key"), "is required");
         });
         if (ok && f.node.size() == 0) w.fail(f, "at least one certificate is required");
       }},
      {"min_version",
       [&](const Field& f) {
         static constexpr std::array<std::string_view, 2> kVersions = {"1.2", "1.3"};
         if (const auto i = w.choice(f, kVersions)) tls.min_version = *i == 0 ? TlsVersion::tls12 : TlsVersion::tls13;
       }},
      {"session_tickets", w.into(tls.session_tickets)},
      {"ocsp_staple",
       [&](const Field& f) {
         if (auto p = read_path(w, f)) tls.ocsp_staple = *p, tls.ocsp_location = f.at;
       }},
  });
  if (is_map && !has_certificates) w.fail(field.at, join(field.path, "certificates"), "is required");
}

void read_http2_limits(Walker& w, const Field& field, Http2Limits& l) {
  constexpr std::size_t kKiB = 1024;
  const auto count = [&](unsigned& out, std::int64_t min, std::int64_t max) {
    return [&, min, max](const Field& f) {
      if (const auto n = w.integer(f, min, max)) out = static_cast<unsigned>(*n);
    };
  };
  const auto bytes = [&](std::size_t& out, std::size_t min, std::size_t max) {
    return [&, min, max](const Field& f) {
      if (const auto n = w.size(f, min, max)) out = *n;
    };
  };
  w.map(field, {
      {"max_concurrent_streams", count(l.max_concurrent_streams, 1, 10000)},
      {"max_header_list_size", bytes(l.max_header_list_size, kKiB, kKiB * kKiB)},
      {"max_header_count", count(l.max_header_count, 1, 10000)},
      {"hpack_table_size",
       [&](const Field& f) {
         if (f.node.IsScalar() && f.node.Scalar() == "0") l.hpack_table_size = 0;
         else if (const auto n = w.size(f, 1, 64 * kKiB)) l.hpack_table_size = *n;
       }},
      {"max_continuation_frames", count(l.max_continuation_frames, 0, 1000)},
      {"max_stalled_bytes", bytes(l.max_stalled_bytes, 16 * kKiB, kKiB * kKiB * kKiB)},
      {"max_resets_per_second", count(l.max_resets_per_second, 1, 100000)},
      {"max_pings_per_second", count(l.max_pings_per_second, 1, 100000)},
      {"max_settings_per_second", count(l.max_settings_per_second, 1, 100000)},
      {"max_empty_data_per_second", count(l.max_empty_data_per_second, 1, 100000)},
  });
}

void finish_listener_transport(Walker& w, const Field& item, const std::optional<Field>& protocols_field,
                               Listener& listener) {
  if (!protocols_field) {
    // HTTP/2 is opt-in while `upstream` routes are proxied over HTTP/1.1 only (an HTTP/2 stream gets 502 there).
    listener.protocols = {Protocol::http1};
    return;
  }
  const auto has = [&](Protocol p) {
    return std::find(listener.protocols.begin(), listener.protocols.end(), p) != listener.protocols.end();
  };
  if (has(Protocol::h2) && !listener.tls)
    w.fail(*protocols_field, "h2 is HTTP/2 over TLS and needs tls: (use h2c for cleartext HTTP/2)");
  if (has(Protocol::h2c) && listener.tls)
    w.fail(*protocols_field, "h2c is cleartext HTTP/2; a tls: listener offers h2 by ALPN instead");
  if (listener.admin && (has(Protocol::h2) || has(Protocol::h2c)) && !has(Protocol::http1))
    w.fail(*protocols_field, "an admin listener needs http1 (Prometheus and health checks speak HTTP/1.1)");
  (void)item;
}

}  // namespace virex::config::detail
