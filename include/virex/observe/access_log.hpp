// Access log: one line per request in `combined` or `json`, written asynchronously off the workers.
// Each worker formats into its own AccessLogBuffer (append) and hands chunks to the log's writer thread;
// nothing on a worker waits for the disk. reopen() (control thread, on SIGUSR1) reopens the file so
// logrotate can move it.
#pragma once

#include <virex/config/config.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace virex::observe {

struct AccessRecord {
  std::chrono::system_clock::time_point time;  // when the request arrived
  std::string_view client;                     // "ip:port" of the peer
  std::string_view method;
  std::string_view host;
  std::string_view target;                     // request target as received
  std::string_view version;                    // "HTTP/1.1"
  unsigned status = 0;
  std::uint64_t bytes_in = 0;                  // request head + body bytes
  std::uint64_t bytes_out = 0;                 // response bytes queued (head + body)
  std::uint64_t body_bytes = 0;                // response body bytes (combined's $body_bytes_sent)
  std::chrono::nanoseconds duration{0};
  std::string_view route;                      // route name, "" when none matched
  std::string_view referer;
  std::string_view user_agent;
  std::string_view error;                      // reason for a 4xx/5xx produced by the server itself
  // Filled by later tiers; empty = not applicable.
  std::string_view cache;                      // e.g. "edge=hit"
  std::string_view regional;                   // the regional tier's outcome: hit|miss|error|timeout|skipped
  std::string_view upstream;                   // endpoint ("host:port") of the last upstream try
  std::string_view shards;                     // shard statements of a query route: "1:replica", "0:primary,1:…"
  std::chrono::nanoseconds upstream_time{-1};  // request sent upstream → response head; < 0 = none
  std::string_view trace_id;
};

// Formats `r` as one line without the trailing newline (pure; unit-tested).
std::string format_combined(const AccessRecord& r);
std::string format_json(const AccessRecord& r);
void append_combined(std::string& out, const AccessRecord& r);
void append_json(std::string& out, const AccessRecord& r);

// One worker's staging buffer: lines are formatted into it without any lock and handed to the writer in
// chunks. Owned and used by one thread.
struct AccessLogBuffer {
  std::string data;
  std::uint64_t lines = 0;
};

class AccessLog {
 public:
  // Opens the file described by `cfg` ("-" = stdout) and starts its writer thread. Returns nullptr with
  // `error` set on failure.
  static std::unique_ptr<AccessLog> open(const config::AccessLog& cfg, std::string& error);
  virtual ~AccessLog() = default;  // writes what is queued, then stops the writer
  // Formats `r` into `buf` (the caller's own) and hands the buffer over once it holds a chunk (64 KiB).
  // Never blocks on I/O: when the writer is behind by more than 16 MiB the chunk is dropped and counted.
  // Returns the lines dropped by a hand-over it did (0 almost always).
  virtual std::uint64_t append(AccessLogBuffer& buf, const AccessRecord& r) = 0;
  // Hands over whatever `buf` holds (a worker's tick, and before it switches to another log); returns the
  // lines dropped because the writer is too far behind.
  virtual std::uint64_t hand_over(AccessLogBuffer& buf) = 0;
  virtual void write(const AccessRecord& r) = 0;   // one line, handed over at once (tests, rare callers)
  virtual void reopen() = 0;                       // reopen the file (SIGUSR1); done by the writer thread
  virtual void flush() = 0;                        // wait (≤ 5 s) until what was handed over is written
  virtual std::uint64_t dropped() const = 0;       // lines dropped because the writer was too far behind
};

// Daemon log (spdlog default logger, async, to stderr → journald). Level names as in config.
void init_logging(std::string_view level);
void set_log_level(std::string_view level);
void shutdown_logging();

}  // namespace virex::observe
