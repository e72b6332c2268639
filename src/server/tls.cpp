// TLS contexts and streams on OpenSSL 3 (see tls.hpp). Callbacks (SNI, ALPN, OCSP status, ticket keys) are the
// only C edges; none of them throws. Defaults follow the Mozilla "intermediate" profile: TLS 1.2 with ECDHE +
// AEAD suites only, TLS 1.3 with OpenSSL's suites, X25519/P-256/P-384, no renegotiation, no compression.
#include "tls.hpp"

#include <boost/asio/as_tuple.hpp>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>

namespace virex::server {
namespace {

constexpr auto token = asio::as_tuple(core::kUseAwaitable);
constexpr std::size_t kRecord = 16 * 1024;     // a full TLS record's plaintext
constexpr std::size_t kGather = 4 * 1024;      // pieces up to this size are gathered into one record
constexpr long kSessionTimeout = 3600;          // seconds a cached session or a ticket stays resumable
constexpr long kSessionCacheSize = 20 * 1024;   // sessions per listener (LRU)
constexpr const char* kCiphers12 =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr unsigned char kSessionIdContext[] = "virex-edge";

std::string openssl_error() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (!e) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  // "error:0A00...:SSL routines::reason" → the reason is what an operator can act on
  std::string_view s(buf);
  if (const auto p = s.rfind(':'); p != std::string_view::npos && p + 1 < s.size()) return std::string(s.substr(p + 1));
  return std::string(s);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The leaf's DNS names (RFC 6125 §6.4.4: subjectAltName first; the CN only when there is no DNS SAN).
std::vector<std::string> cert_names(X509* x) {
  std::vector<std::string> names;
  if (auto* gens = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr))) {
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); ++i) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(gens, i);
      if (g->type != GEN_DNS) continue;
      const ASN1_STRING* s = g->d.dNSName;
      names.push_back(lower(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                             static_cast<std::size_t>(ASN1_STRING_length(s)))));
    }
    GENERAL_NAMES_free(gens);
  }
  if (names.empty()) {
    char cn[256] = {};
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn - 1) > 0)
      names.push_back(lower(cn));
  }
  return names;
}

const TlsServer* server_of(SSL* ssl) {
  return static_cast<const TlsServer*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
}

// SNI (RFC 6066 §3): switch to the matching certificate's context; unknown names keep the default.
int on_servername(SSL* ssl, int*, void* arg) {
  const auto* srv = static_cast<const TlsServer*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_NOACK;
  if (const TlsServer::Cert* c = srv->match(name); c && c->ctx != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, c->ctx);
  return SSL_TLSEXT_ERR_OK;
}

// ALPN (RFC 7301 §3.2): the server's preference among what the client offers; no overlap is a fatal alert.
int on_alpn(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen, void*) {
  const TlsServer* srv = server_of(ssl);
  if (!srv) return SSL_TLSEXT_ERR_NOACK;
  const auto pref = srv->alpn();
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, pref.data(), static_cast<unsigned>(pref.size()), in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// OCSP stapling (RFC 6066 §8): the configured response of the certificate in use, when the client asks.
int on_status(SSL* ssl, void* arg) {
  const auto* cert = static_cast<const TlsServer::Cert*>(arg);
  if (!cert || cert->ocsp.empty()) return SSL_TLSEXT_ERR_NOACK;
  auto* copy = static_cast<unsigned char*>(OPENSSL_malloc(cert->ocsp.size()));  // OpenSSL frees it
  if (!copy) return SSL_TLSEXT_ERR_NOACK;
  std::memcpy(copy, cert->ocsp.data(), cert->ocsp.size());
  SSL_set_tlsext_status_ocsp_resp(ssl, copy, static_cast<long>(cert->ocsp.size()));
  return SSL_TLSEXT_ERR_OK;
}

// Session tickets (RFC 5077 §4, AES-256-CBC + HMAC-SHA256 as OpenSSL's own): 1 = use, 2 = use and renew
// (issued under the previous key), 0 = unknown key (full handshake), -1 = error.
int on_ticket_key(SSL* ssl, unsigned char name[16], unsigned char iv[EVP_MAX_IV_LENGTH], EVP_CIPHER_CTX* cctx,
                  EVP_MAC_CTX* hctx, int enc) {
  const TlsServer* srv = server_of(ssl);
  if (!srv) return -1;
  TicketKeys::Key key;
  bool is_current = true;
  if (enc) {
    key = srv->keys().current();
    std::memcpy(name, key.name.data(), key.name.size());
    if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1) return -1;
    if (EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), nullptr, key.aes.data(), iv) != 1) return -1;
  } else {
    if (!srv->keys().find(name, key, is_current)) return 0;
    if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), nullptr, key.aes.data(), iv) != 1) return -1;
  }
  char digest[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key.hmac.data(), key.hmac.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end(),
  };
  if (EVP_MAC_CTX_set_params(hctx, params) != 1) return -1;
  return is_current ? 1 : 2;
}

// A PEM bundle in memory: the leaf and its chain.
struct Pem {
  X509* leaf = nullptr;
  STACK_OF(X509)* chain = nullptr;
  ~Pem() {
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
  }
};

bool parse_chain(const std::string& text, Pem& out, std::string& why) {
  BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
  if (!bio) return why = "out of memory", false;
  out.leaf = PEM_read_bio_X509_AUX(bio, nullptr, nullptr, nullptr);
  if (!out.leaf) {
    BIO_free(bio);
    ERR_clear_error();
    why = "no PEM certificate in it";
    return false;
  }
  out.chain = sk_X509_new_null();
  while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) sk_X509_push(out.chain, x);
  ERR_clear_error();  // the end of the bundle reads as "no start line"
  BIO_free(bio);
  return true;
}

EVP_PKEY* parse_key(const std::string& text, std::string& why) {
  BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
  if (!bio) return why = "out of memory", nullptr;
  // No passphrase callback: an encrypted key is refused (a daemon cannot ask for one).
  static pem_password_cb* const no_password = [](char*, int, int, void*) { return -1; };
  EVP_PKEY* k = PEM_read_bio_PrivateKey(bio, nullptr, no_password, nullptr);
  BIO_free(bio);
  if (!k) {
    ERR_clear_error();
    why = "no unencrypted PEM private key in it";
  }
  return k;
}

}  // namespace

// ---- TicketKeys ---------------------------------------------------------------------------------------------

namespace {
TicketKeys::Key random_key() {
  TicketKeys::Key k;
  if (RAND_bytes(k.name.data(), static_cast<int>(k.name.size())) != 1 ||
      RAND_bytes(k.aes.data(), static_cast<int>(k.aes.size())) != 1 ||
      RAND_bytes(k.hmac.data(), static_cast<int>(k.hmac.size())) != 1)
    throw std::runtime_error("RAND_bytes failed: no entropy for TLS ticket keys");
  return k;
}
}  // namespace

TicketKeys::TicketKeys() : current_(random_key()) {}

void TicketKeys::rotate() {
  Key next = random_key();
  std::lock_guard lock(mu_);
  previous_ = current_;
  has_previous_ = true;
  current_ = next;
}

TicketKeys::Key TicketKeys::current() const {
  std::lock_guard lock(mu_);
  return current_;
}

bool TicketKeys::find(const unsigned char* name, Key& out, bool& is_current) const {
  std::lock_guard lock(mu_);
  if (std::memcmp(name, current_.name.data(), current_.name.size()) == 0) {
    out = current_;
    is_current = true;
    return true;
  }
  if (has_previous_ && std::memcmp(name, previous_.name.data(), previous_.name.size()) == 0) {
    out = previous_;
    is_current = false;
    return true;
  }
  return false;
}

// ---- TlsServer ----------------------------------------------------------------------------------------------

std::shared_ptr<const TlsServer> TlsServer::build(const config::ListenerTls& cfg, std::size_t index, bool offer_h2,
                                                  bool offer_http1, const pipeline::FileReader& read,
                                                  std::shared_ptr<TicketKeys> keys,
                                                  std::vector<pipeline::BuildError>& errors) {
  std::shared_ptr<TlsServer> srv(new TlsServer());
  srv->keys_ = std::move(keys);
  srv->offer_h2_ = offer_h2;
  srv->offer_http1_ = offer_http1;
  if (offer_h2) srv->alpn_.insert(srv->alpn_.end(), {2, 'h', '2'});
  if (offer_http1) srv->alpn_.insert(srv->alpn_.end(), {8, 'h', 't', 't', 'p', '/', '1', '.', '1'});
  const std::string base = "listeners[" + std::to_string(index) + "].tls.";
  const std::size_t errors_before = errors.size();
  srv->certs_.reserve(cfg.certificates.size());
  for (std::size_t i = 0; i < cfg.certificates.size(); ++i) {
    const config::TlsCertificate& c = cfg.certificates[i];
    const std::string key_path = base + "certificates[" + std::to_string(i) + "].";
    std::string why;
    const auto cert_text = read(c.cert, why);
    if (!cert_text) {
      errors.push_back({c.cert_location, key_path + "cert", why});
      continue;
    }
    Pem pem;
    if (!parse_chain(*cert_text, pem, why)) {
      errors.push_back({c.cert_location, key_path + "cert", c.cert + ": " + why});
      continue;
    }
    const auto key_text = read(c.key, why);
    if (!key_text) {
      errors.push_back({c.key_location, key_path + "key", why});
      continue;
    }
    EVP_PKEY* pkey = parse_key(*key_text, why);
    if (!pkey) {
      errors.push_back({c.key_location, key_path + "key", c.key + ": " + why});
      continue;
    }
    Cert& out = srv->certs_.emplace_back();
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    out.ctx = ctx;
    if (!ctx) {
      EVP_PKEY_free(pkey);
      errors.push_back({c.cert_location, key_path + "cert", "SSL_CTX_new: " + openssl_error()});
      continue;
    }
    const bool loaded = SSL_CTX_use_certificate(ctx, pem.leaf) == 1 && SSL_CTX_use_PrivateKey(ctx, pkey) == 1;
    EVP_PKEY_free(pkey);
    if (!loaded) {
      errors.push_back({c.key_location, key_path + "key", c.key + ": " + openssl_error()});
      continue;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      ERR_clear_error();
      errors.push_back({c.key_location, key_path + "key", c.key + ": does not match the certificate in " + c.cert});
      continue;
    }
    for (int k = 0; k < sk_X509_num(pem.chain); ++k) {
      X509* x = sk_X509_value(pem.chain, k);
      X509_up_ref(x);
      if (SSL_CTX_add0_chain_cert(ctx, x) != 1) X509_free(x);
    }
    out.names = cert_names(pem.leaf);
    // OCSP: the certificate's own file, else the listener's for the first certificate.
    const std::optional<std::string>& ocsp = c.ocsp_staple ? c.ocsp_staple : (i == 0 ? cfg.ocsp_staple : c.ocsp_staple);
    const config::Location& ocsp_at = c.ocsp_staple ? c.ocsp_location : cfg.ocsp_location;
    const std::string ocsp_key = c.ocsp_staple ? key_path + "ocsp_staple" : base + "ocsp_staple";
    if (ocsp) {
      const auto der = read(*ocsp, why);
      if (!der) {
        errors.push_back({ocsp_at, ocsp_key, why});
        continue;
      }
      const auto* p = reinterpret_cast<const unsigned char*>(der->data());
      OCSP_RESPONSE* resp = d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(der->size()));
      if (!resp) {
        ERR_clear_error();
        errors.push_back({ocsp_at, ocsp_key, *ocsp + ": not a DER OCSP response"});
        continue;
      }
      OCSP_RESPONSE_free(resp);
      out.ocsp = *der;
    }
  }
  if (errors.size() != errors_before) return nullptr;

  const bool ok = [&] {
    for (std::size_t i = 0; i < srv->certs_.size(); ++i) {
      Cert& c = srv->certs_[i];
      SSL_CTX* ctx = c.ctx;
      SSL_CTX_set_app_data(ctx, srv.get());
      if (SSL_CTX_set_min_proto_version(ctx, cfg.min_version == config::TlsVersion::tls13 ? TLS1_3_VERSION
                                                                                          : TLS1_2_VERSION) != 1)
        return false;
      if (SSL_CTX_set_cipher_list(ctx, kCiphers12) != 1) return false;
      if (SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384") != 1) return false;
      SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF
                                   | (cfg.session_tickets ? 0 : SSL_OP_NO_TICKET));
      // Partial writes: write() loops itself; moving buffers: a retry after WANT_WRITE may pass a new pointer.
      // Release buffers: an idle connection does not pin OpenSSL's 2 x 16 KiB record buffers.
      SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                SSL_MODE_RELEASE_BUFFERS);
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
      SSL_CTX_sess_set_cache_size(ctx, kSessionCacheSize);
      SSL_CTX_set_timeout(ctx, kSessionTimeout);
      if (SSL_CTX_set_session_id_context(ctx, kSessionIdContext, sizeof kSessionIdContext - 1) != 1) return false;
      SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key);
      SSL_CTX_set_alpn_select_cb(ctx, on_alpn, nullptr);
      SSL_CTX_set_tlsext_status_cb(ctx, on_status);
      SSL_CTX_set_tlsext_status_arg(ctx, &c);
      // TLS 1.3: one ticket per handshake is enough for a browser's resumption (OpenSSL sends two by default).
      SSL_CTX_set_num_tickets(ctx, 1);
      for (const std::string& n : c.names)
        if (!n.starts_with("*.")) srv->exact_.emplace(n, i);  // the first certificate naming a host wins
    }
    SSL_CTX* def = srv->certs_.front().ctx;
    SSL_CTX_set_tlsext_servername_callback(def, on_servername);
    SSL_CTX_set_tlsext_servername_arg(def, srv.get());
    return true;
  }();
  if (!ok) {
    errors.push_back({cfg.location, base.substr(0, base.size() - 1), "OpenSSL refused the settings: " + openssl_error()});
    return nullptr;
  }
  return srv;
}

TlsServer::~TlsServer() {
  for (Cert& c : certs_) SSL_CTX_free(c.ctx);
}

const TlsServer::Cert* TlsServer::match(std::string_view host) const {
  std::string name = lower(host);
  if (!name.empty() && name.back() == '.') name.pop_back();
  if (auto it = exact_.find(name); it != exact_.end()) return &certs_[it->second];
  // RFC 6125 §6.4.3: "*.example.com" matches exactly one label in front of example.com.
  const auto dot = name.find('.');
  if (dot == std::string::npos || dot == 0) return nullptr;
  const std::string_view suffix = std::string_view(name).substr(dot);
  for (const Cert& c : certs_)
    for (const std::string& n : c.names)
      if (n.starts_with("*.") && std::string_view(n).substr(1) == suffix) return &c;
  return nullptr;
}

ssl_st* TlsServer::new_ssl(int fd) const {
  SSL* ssl = SSL_new(certs_.front().ctx);
  if (!ssl) return nullptr;
  if (SSL_set_fd(ssl, fd) != 1) {
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_accept_state(ssl);
  return ssl;
}

// ---- TlsStream ----------------------------------------------------------------------------------------------

TlsStream::TlsStream(std::shared_ptr<const TlsServer> server, ssl_st* ssl) noexcept
    : server_(std::move(server)), ssl_(ssl) {}

TlsStream::~TlsStream() { SSL_free(ssl_); }

namespace {
// What an SSL_ call's failure means for the caller: wait for the socket (read or write) or give up with `ec`.
enum class Next { read, write, fail };

Next classify(SSL* ssl, int r, boost::system::error_code& ec) {
  const int err = SSL_get_error(ssl, r);
  switch (err) {
    case SSL_ERROR_WANT_READ: return Next::read;
    case SSL_ERROR_WANT_WRITE: return Next::write;
    case SSL_ERROR_ZERO_RETURN: ec = asio::error::eof; break;  // close_notify (or EOF, IGNORE_UNEXPECTED_EOF)
    case SSL_ERROR_SYSCALL:
      ec = errno ? boost::system::error_code(errno, boost::system::system_category())
                 : boost::system::error_code(asio::error::eof);
      break;
    default: ec = asio::error::connection_reset; break;  // a protocol error: the peer gets an alert
  }
  ERR_clear_error();
  return Next::fail;
}
}  // namespace

Awaitable<bool> TlsStream::handshake(Socket& s) {
  for (;;) {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_);
    if (r == 1) co_return true;
    boost::system::error_code ec;
    const Next next = classify(ssl_, r, ec);
    if (next == Next::fail) co_return false;
    auto [wec] = co_await s.async_wait(next == Next::read ? Socket::wait_read : Socket::wait_write, token);
    if (wec) co_return false;
  }
}

Awaitable<IoResult> TlsStream::read_some(Socket& s, asio::mutable_buffer b) {
  for (;;) {
    ERR_clear_error();
    std::size_t n = 0;
    const int r = SSL_read_ex(ssl_, b.data(), b.size(), &n);
    if (r == 1) co_return IoResult{boost::system::error_code{}, n};
    boost::system::error_code ec;
    const Next next = classify(ssl_, r, ec);
    if (next == Next::fail) co_return IoResult{ec, 0};
    auto [wec] = co_await s.async_wait(next == Next::read ? Socket::wait_read : Socket::wait_write, token);
    if (wec) co_return IoResult{wec, 0};
  }
}

std::size_t TlsStream::read_now(asio::mutable_buffer b, boost::system::error_code& ec) {
  ERR_clear_error();
  std::size_t n = 0;
  const int r = SSL_read_ex(ssl_, b.data(), b.size(), &n);
  if (r == 1) {
    ec = {};
    return n;
  }
  if (classify(ssl_, r, ec) != Next::fail) ec = asio::error::would_block;
  return 0;
}

Awaitable<std::tuple<boost::system::error_code>> TlsStream::wait_readable(Socket& s) {
  if (SSL_has_pending(ssl_)) co_return std::tuple<boost::system::error_code>{};
  co_return co_await s.async_wait(Socket::wait_read, token);
}

std::size_t TlsStream::pending() const noexcept { return static_cast<std::size_t>(SSL_pending(ssl_)); }

void TlsStream::close_notify() noexcept {
  ERR_clear_error();
  if (SSL_is_init_finished(ssl_)) SSL_shutdown(ssl_);  // non-blocking: sent now or never
  ERR_clear_error();
}

Awaitable<boost::system::error_code> TlsStream::write_all(Socket& s, const char* p, std::size_t n) {
  while (n > 0) {
    ERR_clear_error();
    std::size_t w = 0;
    const int r = SSL_write_ex(ssl_, p, n, &w);
    if (r == 1) {
      p += w;
      n -= w;
      continue;
    }
    boost::system::error_code ec;
    const Next next = classify(ssl_, r, ec);
    if (next == Next::fail) co_return ec;
    auto [wec] = co_await s.async_wait(next == Next::read ? Socket::wait_read : Socket::wait_write, token);
    if (wec) co_return wec;
  }
  co_return boost::system::error_code{};
}

Awaitable<IoResult> TlsStream::write(Socket& s, std::span<const asio::const_buffer> bufs) {
  // Small pieces (a response head, the Date tail, a small body) are gathered so that a typical response is one
  // record and one send(); large bodies go straight from their buffer.
  std::size_t total = 0;
  staging_.clear();
  for (const asio::const_buffer& b : bufs) {
    const auto* p = static_cast<const char*>(b.data());
    if (b.size() <= kGather && staging_.size() + b.size() <= kRecord) {
      staging_.append(p, b.size());
      continue;
    }
    if (!staging_.empty()) {
      if (auto ec = co_await write_all(s, staging_.data(), staging_.size())) co_return IoResult{ec, total};
      total += staging_.size();
      staging_.clear();
    }
    if (b.size() <= kGather) {
      staging_.append(p, b.size());
      continue;
    }
    if (auto ec = co_await write_all(s, p, b.size())) co_return IoResult{ec, total};
    total += b.size();
  }
  if (!staging_.empty()) {
    if (auto ec = co_await write_all(s, staging_.data(), staging_.size())) co_return IoResult{ec, total};
    total += staging_.size();
    staging_.clear();
  }
  if (staging_.capacity() > 2 * kRecord) std::string().swap(staging_);
  co_return IoResult{boost::system::error_code{}, total};
}

std::string_view TlsStream::alpn() const noexcept {
  const unsigned char* p = nullptr;
  unsigned n = 0;
  SSL_get0_alpn_selected(ssl_, &p, &n);
  return p ? std::string_view(reinterpret_cast<const char*>(p), n) : std::string_view{};
}

std::string_view TlsStream::version() const noexcept { return SSL_get_version(ssl_); }

bool TlsStream::resumed() const noexcept { return SSL_session_reused(ssl_) == 1; }

}  // namespace virex::server
