// Section readers for a listener's transport: `protocols:` and `tls:` (certificates, minimum version, session
// tickets, OCSP staple). Called by loader.cpp's listener reader; private to src/config; main thread only. The
// files named here are read (and the key checked against its certificate) by the server when it builds the TLS
// contexts, so that errors name the file at the key's position.
#pragma once

#include "walker.hpp"

#include <virex/config/config.hpp>

namespace virex::config::detail {

// `protocols: [http1, h2c, h2]`: at least one, no repeats.
void read_protocols(Walker& w, const Field& field, std::vector<Protocol>& protocols);

// `tls: {certificates: [{cert, key, ocsp_staple}], min_version, session_tickets, ocsp_staple}`.
void read_listener_tls(Walker& w, const Field& field, ListenerTls& tls);

// `limits.http2: {...}` (see config::Http2Limits).
void read_http2_limits(Walker& w, const Field& field, Http2Limits& limits);

// Defaults and cross-checks once both keys of `listener` are read: protocols default to [http1] ([http1, h2]
// with TLS); h2 needs tls, h2c needs its absence. `protocols_field` is where protocols stood, if given.
void finish_listener_transport(Walker& w, const Field& item, const std::optional<Field>& protocols_field,
                               Listener& listener);

}  // namespace virex::config::detail
