// Access log: pure line formatters (combined, json) and the asynchronous file writer behind AccessLog.
// Workers call write(): it formats on the worker and enqueues into this log's own bounded spdlog queue
// (overrun_oldest: a full queue drops the oldest line, never blocks). One logging thread owns the FILE*;
// reopen() swaps it under the sink mutex (control thread, SIGUSR1 after logrotate).
#include <virex/observe/access_log.hpp>

#include <spdlog/async_logger.h>
#include <spdlog/details/thread_pool.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <pthread.h>

#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>

namespace virex::observe {
namespace {

constexpr std::size_t kQueueLines = 8192;
constexpr auto kFlushWait = std::chrono::seconds(5);
constexpr char kHex[] = "0123456789abcdef";
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void append_uint(std::string& out, std::uint64_t v, int min_digits = 1) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  for (int n = static_cast<int>(r.ptr - buf); n < min_digits; ++n) out += '0';
  out.append(buf, r.ptr);
}

struct Utc {
  std::tm tm{};
  unsigned millis = 0;
};

Utc utc(std::chrono::system_clock::time_point t) {
  auto secs = std::chrono::floor<std::chrono::seconds>(t);
  Utc u;
  u.millis = static_cast<unsigned>(std::chrono::duration_cast<std::chrono::milliseconds>(t - secs).count());
  std::time_t tt = std::chrono::system_clock::to_time_t(secs);
  gmtime_r(&tt, &u.tm);
  return u;
}

// "19:49:59", shared by both formats.
void append_hms(std::string& out, const std::tm& tm) {
  append_uint(out, tm.tm_hour, 2);
  out += ':';
  append_uint(out, tm.tm_min, 2);
  out += ':';
  append_uint(out, tm.tm_sec, 2);
}

// Seconds with microsecond resolution: "0.000123".
void append_seconds(std::string& out, std::chrono::nanoseconds d) {
  std::uint64_t us = d.count() <= 0 ? 0 : (static_cast<std::uint64_t>(d.count()) + 500) / 1000;
  append_uint(out, us / 1000000);
  out += '.';
  append_uint(out, us % 1000000, 6);
}

// The peer's address without the port: "1.2.3.4:5" → "1.2.3.4", "[::1]:5" → "::1".
std::string_view client_ip(std::string_view client) {
  if (client.starts_with('[')) {
    auto end = client.find(']');
    return end == std::string_view::npos ? client.substr(1) : client.substr(1, end - 1);
  }
  auto colon = client.rfind(':');
  return colon == std::string_view::npos ? client : client.substr(0, colon);
}

// Combined-format field escaping (as nginx's escape=default): `"` and `\` backslashed, bytes outside
// printable ASCII as \xHH so a hostile target cannot forge a line or a field.
void append_log_escaped(std::string& out, std::string_view s) {
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
}

void append_quoted_or_dash(std::string& out, std::string_view s) {
  out += '"';
  if (s.empty()) {
    out += '-';
  } else {
    append_log_escaped(out, s);
  }
  out += '"';
}

void append_extra(std::string& out, std::string_view key, std::string_view value) {
  if (value.empty()) return;
  out += ' ';
  out += key;
  out += "=\"";
  append_log_escaped(out, value);
  out += '"';
}

// Length of the well-formed UTF-8 sequence at p (RFC 3629 §4), or 0 when the byte starts none.
std::size_t utf8_len(const unsigned char* p, std::size_t n) {
  auto cont = [&](std::size_t i, unsigned char lo = 0x80, unsigned char hi = 0xbf) {
    return i < n && p[i] >= lo && p[i] <= hi;
  };
  const unsigned char c = p[0];
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c == 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;  // no surrogates
  if (c == 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

// A JSON string (RFC 8259 §7) that is always valid: controls and DEL as \u00XX; a byte that is not part of
// well-formed UTF-8 also becomes \u00XX (its Latin-1 reading), so the line parses whatever the client sent.
void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    if (c >= 0x20 && c < 0x7f) {
      if (c == '"' || c == '\\') out += '\\';
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    std::size_t len = c >= 0x80 ? utf8_len(p + i, n - i) : 0;
    if (len > 0) {
      out.append(s.data() + i, len);
      i += len;
      continue;
    }
    out += "\\u00";
    out += kHex[c >> 4];
    out += kHex[c & 15];
    ++i;
  }
  out += '"';
}

void append_json_field(std::string& out, std::string_view key, std::string_view value) {
  out += ",\"";
  out += key;
  out += "\":";
  append_json_string(out, value);
}

void append_json_number(std::string& out, std::string_view key, std::uint64_t value) {
  out += ",\"";
  out += key;
  out += "\":";
  append_uint(out, value);
}

// Sink over a FILE* that writes each formatted line (pattern "%v"); runs on the log thread only, except
// reopen() and the flush barrier, which the base_sink mutex and flush_mu_ serialise.
class LineSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  LineSink(std::string path, std::FILE* file) : path_(std::move(path)), file_(file) {}
  ~LineSink() override {
    if (file_ != nullptr) {
      std::fflush(file_);
      if (file_ != stdout) std::fclose(file_);
    }
  }

  // Reopens the path (logrotate moved the old file); on failure keeps writing to the old one.
  bool reopen(std::string& error) {
    std::lock_guard lock(mutex_);
    if (file_ == stdout) return true;
    std::FILE* f = std::fopen(path_.c_str(), "ae");
    if (f == nullptr) {
      error = "cannot open " + path_ + ": " + std::strerror(errno);
      return false;
    }
    std::fclose(file_);
    file_ = f;
    return true;
  }

  // Flushes to the OS when the queue is empty: batches under load, yet an idle log is complete on disk.
  void set_pool(spdlog::details::thread_pool* pool) {
    std::lock_guard lock(mutex_);
    pool_ = pool;
  }

  std::uint64_t flush_count() {
    std::lock_guard lock(flush_mu_);
    return flushes_;
  }

  // Waits until a flush issued after `before` was observed; false on timeout.
  bool wait_flush(std::uint64_t before, std::chrono::milliseconds timeout) {
    std::unique_lock lock(flush_mu_);
    return flush_cv_.wait_for(lock, timeout, [&] { return flushes_ > before; });
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    std::fwrite(buf.data(), 1, buf.size(), file_);
    if (pool_ != nullptr && pool_->queue_size() == 0) std::fflush(file_);
  }

  void flush_() override {
    std::fflush(file_);
    {
      std::lock_guard lock(flush_mu_);
      ++flushes_;
    }
    flush_cv_.notify_all();
  }

 private:
  const std::string path_;
  std::FILE* file_;
  spdlog::details::thread_pool* pool_ = nullptr;
  std::mutex flush_mu_;
  std::condition_variable flush_cv_;
  std::uint64_t flushes_ = 0;
};

class SpdlogAccessLog final : public AccessLog {
 public:
  SpdlogAccessLog(config::AccessLogFormat format, std::shared_ptr<LineSink> sink)
      : format_(format), sink_(std::move(sink)) {
    pool_ = std::make_shared<spdlog::details::thread_pool>(kQueueLines, 1, [] {
      pthread_setname_np(pthread_self(), "virex-accesslog");
    });
    sink_->set_pattern("%v");
    sink_->set_pool(pool_.get());
    logger_ = std::make_shared<spdlog::async_logger>("access", sink_, pool_,
                                                     spdlog::async_overflow_policy::overrun_oldest);
    logger_->set_level(spdlog::level::info);
  }

  ~SpdlogAccessLog() override {
    flush();
    sink_->set_pool(nullptr);
    logger_.reset();
    pool_.reset();  // joins the log thread after it wrote what is still queued
  }

  void write(const AccessRecord& r) override {
    std::string line = format_ == config::AccessLogFormat::json ? format_json(r) : format_combined(r);
    logger_->log(spdlog::level::info, spdlog::string_view_t(line.data(), line.size()));
  }

  void reopen() override {
    std::string error;
    if (!sink_->reopen(error)) spdlog::error("access log: {}", error);
  }

  // A flush message queued behind every line written so far; when the log thread has run it, they are all
  // in the file. Re-posted periodically in case overrun_oldest dropped it from a full queue.
  void flush() override {
    const std::uint64_t before = sink_->flush_count();
    const auto deadline = std::chrono::steady_clock::now() + kFlushWait;
    do {
      logger_->flush();
      if (sink_->wait_flush(before, std::chrono::milliseconds(100))) return;
    } while (std::chrono::steady_clock::now() < deadline);
  }

  std::uint64_t dropped() const override { return pool_->overrun_counter(); }

 private:
  const config::AccessLogFormat format_;
  std::shared_ptr<LineSink> sink_;
  std::shared_ptr<spdlog::details::thread_pool> pool_;
  std::shared_ptr<spdlog::async_logger> logger_;
};

}  // namespace

std::string format_combined(const AccessRecord& r) {
  std::string out;
  out.reserve(160 + r.target.size() + r.user_agent.size() + r.referer.size());
  std::string_view ip = client_ip(r.client);
  if (ip.empty()) {
    out += '-';
  } else {
    append_log_escaped(out, ip);
  }
  const Utc t = utc(r.time);
  out += " - - [";
  append_uint(out, t.tm.tm_mday, 2);
  out += '/';
  out += kMonths[t.tm.tm_mon];
  out += '/';
  append_uint(out, t.tm.tm_year + 1900, 4);
  out += ':';
  append_hms(out, t.tm);
  out += " +0000] \"";
  if (r.method.empty() && r.target.empty() && r.version.empty()) {
    out += '-';
  } else {
    append_log_escaped(out, r.method);
    out += ' ';
    append_log_escaped(out, r.target);
    out += ' ';
    append_log_escaped(out, r.version);
  }
  out += "\" ";
  append_uint(out, r.status);
  out += ' ';
  append_uint(out, r.body_bytes);
  out += ' ';
  append_quoted_or_dash(out, r.referer);
  out += ' ';
  append_quoted_or_dash(out, r.user_agent);
  out += " rt=";
  append_seconds(out, r.duration);
  out += " route=";
  append_quoted_or_dash(out, r.route);
  append_extra(out, "cache", r.cache);
  append_extra(out, "upstream", r.upstream);
  append_extra(out, "trace_id", r.trace_id);
  append_extra(out, "error", r.error);
  return out;
}

std::string format_json(const AccessRecord& r) {
  std::string out;
  out.reserve(256 + r.target.size() + r.user_agent.size() + r.referer.size());
  const Utc t = utc(r.time);
  out += "{\"time\":\"";  // RFC 3339: 2026-12-04T19:49:59.123Z
  append_uint(out, t.tm.tm_year + 1900, 4);
  out += '-';
  append_uint(out, t.tm.tm_mon + 1, 2);
  out += '-';
  append_uint(out, t.tm.tm_mday, 2);
  out += 'T';
  append_hms(out, t.tm);
  out += '.';
  append_uint(out, t.millis, 3);
  out += "Z\"";
  append_json_field(out, "client", r.client);
  append_json_field(out, "method", r.method);
  append_json_field(out, "host", r.host);
  append_json_field(out, "target", r.target);
  append_json_field(out, "version", r.version);
  append_json_number(out, "status", r.status);
  append_json_number(out, "bytes_in", r.bytes_in);
  append_json_number(out, "bytes_out", r.bytes_out);
  append_json_number(out, "body_bytes", r.body_bytes);
  out += ",\"duration_s\":";
  append_seconds(out, r.duration);
  append_json_field(out, "route", r.route);
  append_json_field(out, "referer", r.referer);
  append_json_field(out, "user_agent", r.user_agent);
  if (!r.cache.empty()) append_json_field(out, "cache", r.cache);
  if (!r.upstream.empty()) append_json_field(out, "upstream", r.upstream);
  if (!r.trace_id.empty()) append_json_field(out, "trace_id", r.trace_id);
  if (!r.error.empty()) append_json_field(out, "error", r.error);
  out += '}';
  return out;
}

std::unique_ptr<AccessLog> AccessLog::open(const config::AccessLog& cfg, std::string& error) {
  if (cfg.path.empty()) {
    error = "access log path is empty";
    return nullptr;
  }
  std::FILE* file = stdout;
  if (cfg.path != "-") {
    file = std::fopen(cfg.path.c_str(), "ae");
    if (file == nullptr) {
      error = "cannot open " + cfg.path + ": " + std::strerror(errno);
      return nullptr;
    }
  }
  return std::make_unique<SpdlogAccessLog>(cfg.format, std::make_shared<LineSink>(cfg.path, file));
}

}  // namespace virex::observe
