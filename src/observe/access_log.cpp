// Access log: pure line formatters (combined, json) and the asynchronous file writer behind AccessLog.
// Workers format lines into their own staging buffer (no lock) and hand it over in 64 KiB chunks (and on
// their 250 ms tick); one writer thread writes whole chunks. reopen() (SIGUSR1 after logrotate) is done by
// the writer between chunks.
#include <virex/observe/access_log.hpp>

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <thread>
#include <utility>

#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>

namespace virex::observe {
namespace {

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

// The writer: one thread that owns the file descriptor and writes whole chunks (many lines each) that
// workers hand over. Workers never wait for it: a chunk that would push the queue past kMaxQueuedBytes is
// dropped and its lines counted. reopen() (control thread) is carried out by the writer between chunks.
class FileAccessLog final : public AccessLog {
 public:
  FileAccessLog(config::AccessLogFormat format, std::string path, int fd)
      : format_(format), path_(std::move(path)), fd_(fd), thread_([this] { run(); }) {}

  ~FileAccessLog() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();  // the writer drains the queue before it exits
    if (fd_ != STDOUT_FILENO) ::close(fd_);
  }

  std::uint64_t append(AccessLogBuffer& buf, const AccessRecord& r) override {
    format_ == config::AccessLogFormat::json ? append_json(buf.data, r) : append_combined(buf.data, r);
    buf.data += '\n';
    ++buf.lines;
    return buf.data.size() >= kHandOverBytes ? hand_over(buf) : 0;
  }

  std::uint64_t hand_over(AccessLogBuffer& buf) override {
    if (buf.data.empty()) return 0;
    std::string chunk;
    chunk.reserve(kHandOverBytes + 1024);
    chunk.swap(buf.data);  // the worker keeps a fresh buffer of the same capacity
    const std::uint64_t lines = std::exchange(buf.lines, 0);
    {
      std::lock_guard lock(mu_);
      if (queued_bytes_ + chunk.size() > kMaxQueuedBytes) {
        dropped_.fetch_add(lines, std::memory_order_relaxed);
        return lines;
      }
      queued_bytes_ += chunk.size();
      queue_.push_back(std::move(chunk));
      ++enqueued_;
    }
    cv_.notify_one();
    return 0;
  }

  void write(const AccessRecord& r) override {
    AccessLogBuffer one;
    append(one, r);
    hand_over(one);
  }

  void reopen() override {
    {
      std::lock_guard lock(mu_);
      reopen_ = true;
      reopen_seq_ = enqueued_;  // chunks handed over before the signal still go to the old file
    }
    cv_.notify_one();
  }

  void flush() override {
    std::unique_lock lock(mu_);
    const std::uint64_t target = enqueued_;
    flushed_cv_.wait_for(lock, kFlushWait, [&] { return written_ >= target; });
  }

  std::uint64_t dropped() const override { return dropped_.load(std::memory_order_relaxed); }

 private:
  static constexpr std::size_t kHandOverBytes = 64 * 1024;
  static constexpr std::size_t kMaxQueuedBytes = 16 * 1024 * 1024;

  void run() {
    pthread_setname_np(pthread_self(), "virex-accesslog");
    std::deque<std::string> batch;
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || reopen_ || !queue_.empty(); });
      bool reopen = std::exchange(reopen_, false);
      const std::uint64_t reopen_at = reopen_seq_, first = written_;
      batch.swap(queue_);
      lock.unlock();
      std::size_t bytes = 0;
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (reopen && first + i == reopen_at) {
          do_reopen();
          reopen = false;
        }
        write_all(batch[i]);
        bytes += batch[i].size();
      }
      const std::size_t n = batch.size();
      batch.clear();
      if (reopen) do_reopen();
      lock.lock();
      queued_bytes_ -= bytes;
      written_ += n;
      flushed_cv_.notify_all();
      if (stop_ && queue_.empty()) return;
    }
  }

  void write_all(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        if (!write_error_logged_) spdlog::error("access log {}: {}", path_, std::strerror(errno));
        write_error_logged_ = true;
        return;  // the disk is full or gone: lose this chunk, not the server
      }
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    write_error_logged_ = false;
  }

  void do_reopen() {
    if (fd_ == STDOUT_FILENO) return;
    const int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
      spdlog::error("access log: cannot reopen {}: {}", path_, std::strerror(errno));
      return;  // keep writing to the old file
    }
    ::close(fd_);
    fd_ = fd;
  }

  const config::AccessLogFormat format_;
  const std::string path_;
  int fd_;  // writer thread only (and the destructor after join)
  bool write_error_logged_ = false;
  std::mutex mu_;
  std::condition_variable cv_, flushed_cv_;
  std::deque<std::string> queue_;
  std::size_t queued_bytes_ = 0;
  std::uint64_t enqueued_ = 0, written_ = 0;  // chunks
  std::uint64_t reopen_seq_ = 0;               // the first chunk that goes to the reopened file
  bool stop_ = false, reopen_ = false;
  std::atomic<std::uint64_t> dropped_{0};
  std::thread thread_;  // last: starts after every member above is initialised
};

}  // namespace

std::string format_combined(const AccessRecord& r) {
  std::string out;
  out.reserve(160 + r.target.size() + r.user_agent.size() + r.referer.size());
  append_combined(out, r);
  return out;
}

void append_combined(std::string& out, const AccessRecord& r) {
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
  append_extra(out, "regional", r.regional);
  append_extra(out, "upstream", r.upstream);
  append_extra(out, "shards", r.shards);
  if (r.upstream_time.count() >= 0) {
    out += " urt=";
    append_seconds(out, r.upstream_time);
  }
  append_extra(out, "trace_id", r.trace_id);
  append_extra(out, "error", r.error);
}

std::string format_json(const AccessRecord& r) {
  std::string out;
  out.reserve(256 + r.target.size() + r.user_agent.size() + r.referer.size());
  append_json(out, r);
  return out;
}

void append_json(std::string& out, const AccessRecord& r) {
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
  if (!r.regional.empty()) append_json_field(out, "regional", r.regional);
  if (!r.upstream.empty()) append_json_field(out, "upstream", r.upstream);
  if (!r.shards.empty()) append_json_field(out, "shards", r.shards);
  if (r.upstream_time.count() >= 0) {
    out += ",\"upstream_time_s\":";
    append_seconds(out, r.upstream_time);
  }
  if (!r.trace_id.empty()) append_json_field(out, "trace_id", r.trace_id);
  if (!r.error.empty()) append_json_field(out, "error", r.error);
  out += '}';
}

std::unique_ptr<AccessLog> AccessLog::open(const config::AccessLog& cfg, std::string& error) {
  if (cfg.path.empty()) {
    error = "access log path is empty";
    return nullptr;
  }
  int fd = STDOUT_FILENO;
  if (cfg.path != "-") {
    fd = ::open(cfg.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
      error = "cannot open " + cfg.path + ": " + std::strerror(errno);
      return nullptr;
    }
  }
  try {
    return std::make_unique<FileAccessLog>(cfg.format, cfg.path, fd);
  } catch (const std::exception& e) {  // no thread or no memory: an error for the caller, never a throw
    if (fd != STDOUT_FILENO) ::close(fd);
    error = std::string("access log writer: ") + e.what();
    return nullptr;
  }
}

}  // namespace virex::observe
