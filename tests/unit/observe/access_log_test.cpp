// Access log: exact combined and JSON lines (hostile bytes included), the real file writer with flush and the
// logrotate dance (rename, reopen, write), and the daemon log's level parsing.
#include <virex/observe/access_log.hpp>

#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace virex::observe {
namespace {

using namespace std::chrono;
using namespace std::string_view_literals;

system_clock::time_point when() {
  return sys_days{year{2026} / December / 4} + hours{19} + minutes{49} + seconds{59} + milliseconds{123};
}

AccessRecord basic() {
  AccessRecord r;
  r.time = when();
  r.client = "192.0.2.7:51234";
  r.method = "GET";
  r.host = "example.com";
  r.target = "/path?q=1";
  r.version = "HTTP/1.1";
  r.status = 200;
  r.bytes_in = 78;
  r.bytes_out = 1400;
  r.body_bytes = 1234;
  r.duration = microseconds{123};
  r.route = "api";
  r.referer = "https://example.com/";
  r.user_agent = "curl/8.0";
  return r;
}

AccessRecord with_extras() {
  AccessRecord r = basic();
  r.client = "[::1]:8080";
  r.target = "/";
  r.status = 502;
  r.bytes_out = 0;
  r.body_bytes = 0;
  r.duration = nanoseconds{1'500'000'400};
  r.route = "origin";
  r.referer = "";
  r.user_agent = "";
  r.cache = "edge=miss";
  r.upstream = "10.0.0.1:80";
  r.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  r.error = "upstream_connect";
  return r;
}

// Quotes, backslash, newline, NUL, 0xff, a valid é, an overlong '/', and a UTF-16 surrogate.
constexpr char kTarget[] = "/a\"b\\c\nd\0e\xff\xc3\xa9\xc0\xaf\xed\xa0\x80";
constexpr char kAgent[] = "x\" \"y\r\n1.2.3.4 - - [";
const std::string kHostileTarget(kTarget, sizeof kTarget - 1);
const std::string kHostileAgent(kAgent, sizeof kAgent - 1);

AccessRecord hostile() {
  AccessRecord r = basic();
  r.target = kHostileTarget;
  r.user_agent = kHostileAgent;
  r.referer = "\x7f";
  r.route = "";
  return r;
}

TEST(AccessLogFormat, Combined) {
  EXPECT_EQ(format_combined(basic()),
            "192.0.2.7 - - [04/Dec/2026:19:49:59 +0000] \"GET /path?q=1 HTTP/1.1\" 200 1234 "
            "\"https://example.com/\" \"curl/8.0\" rt=0.000123 route=\"api\"");
  EXPECT_EQ(format_combined(with_extras()),
            "::1 - - [04/Dec/2026:19:49:59 +0000] \"GET / HTTP/1.1\" 502 0 \"-\" \"-\" rt=1.500000 "
            "route=\"origin\" cache=\"edge=miss\" upstream=\"10.0.0.1:80\" "
            "trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\" error=\"upstream_connect\"");
}

TEST(AccessLogFormat, ShardsOfAQueryRoute) {
  AccessRecord r = basic();
  r.shards = "0:primary,1:replica";
  const std::string combined = format_combined(r);
  EXPECT_TRUE(combined.ends_with(" route=\"api\" shards=\"0:primary,1:replica\"")) << combined;
  const std::string json = format_json(r);
  EXPECT_NE(json.find(",\"shards\":\"0:primary,1:replica\""), std::string::npos) << json;
}

TEST(AccessLogFormat, CombinedEscapesHostileBytes) {
  const std::string line = format_combined(hostile());
  EXPECT_EQ(line,
            "192.0.2.7 - - [04/Dec/2026:19:49:59 +0000] "
            "\"GET /a\\\"b\\\\c\\x0ad\\x00e\\xff\\xc3\\xa9\\xc0\\xaf\\xed\\xa0\\x80 HTTP/1.1\" 200 1234 "
            "\"\\x7f\" \"x\\\" \\\"y\\x0d\\x0a1.2.3.4 - - [\" rt=0.000123 route=\"-\"");
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(AccessLogFormat, Json) {
  EXPECT_EQ(format_json(basic()),
            "{\"time\":\"2026-12-04T19:49:59.123Z\",\"client\":\"192.0.2.7:51234\",\"method\":\"GET\","
            "\"host\":\"example.com\",\"target\":\"/path?q=1\",\"version\":\"HTTP/1.1\",\"status\":200,"
            "\"bytes_in\":78,\"bytes_out\":1400,\"body_bytes\":1234,\"duration_s\":0.000123,\"route\":\"api\","
            "\"referer\":\"https://example.com/\",\"user_agent\":\"curl/8.0\"}");
  EXPECT_EQ(format_json(with_extras()),
            "{\"time\":\"2026-12-04T19:49:59.123Z\",\"client\":\"[::1]:8080\",\"method\":\"GET\","
            "\"host\":\"example.com\",\"target\":\"/\",\"version\":\"HTTP/1.1\",\"status\":502,"
            "\"bytes_in\":78,\"bytes_out\":0,\"body_bytes\":0,\"duration_s\":1.500000,\"route\":\"origin\","
            "\"referer\":\"\",\"user_agent\":\"\",\"cache\":\"edge=miss\",\"upstream\":\"10.0.0.1:80\","
            "\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"error\":\"upstream_connect\"}");
}

TEST(AccessLogFormat, JsonOfHostileBytesParses) {
  const std::string line = format_json(hostile());
  EXPECT_NE(line.find(R"("target":"/a\"b\\c\u000ad\u0000e\u00ff)" "\xc3\xa9" R"(\u00c0\u00af\u00ed\u00a0\u0080")"),
            std::string::npos)
      << line;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(line, ec);
  ASSERT_FALSE(ec) << ec.message() << "\n" << line;
  const auto& o = v.as_object();
  // Invalid bytes read as Latin-1 (U+00XX); valid UTF-8 passes through untouched.
  constexpr char kLatin1[] = "/a\"b\\c\nd\0e\xc3\xbf\xc3\xa9\xc3\x80\xc2\xaf\xc3\xad\xc2\xa0\xc2\x80";
  EXPECT_EQ(o.at("target").as_string(), std::string_view(kLatin1, sizeof kLatin1 - 1));
  EXPECT_EQ(o.at("user_agent").as_string(), kHostileAgent);
  EXPECT_EQ(o.at("referer").as_string(), "\x7f"sv);
  EXPECT_EQ(o.at("status").as_int64(), 200);
  EXPECT_DOUBLE_EQ(o.at("duration_s").to_number<double>(), 0.000123);
  EXPECT_FALSE(o.contains("cache"));
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "virex-accesslog-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::filesystem::path operator/(const char* name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

std::vector<std::string> read_lines(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Opens a log at `path` or fails the test.
std::unique_ptr<AccessLog> open_log(const std::filesystem::path& path, config::AccessLogFormat format) {
  std::string error;
  auto log = AccessLog::open({path.string(), format}, error);
  EXPECT_NE(log, nullptr) << error;
  return log;
}

TEST(AccessLogFile, WritesFlushesAndReopensAfterRotation) {
  TempDir dir;
  const auto path = dir / "access.log";
  auto log = open_log(path, config::AccessLogFormat::combined);
  ASSERT_NE(log, nullptr);

  AccessRecord a = basic(), b = with_extras(), c = hostile();
  log->write(a);
  log->write(b);
  log->write(c);
  log->flush();
  EXPECT_EQ(read_lines(path), (std::vector<std::string>{format_combined(a), format_combined(b), format_combined(c)}));

  // logrotate: move the file away, signal, keep writing; new lines land in a fresh file at the old path.
  const auto rotated = dir / "access.log.1";
  std::filesystem::rename(path, rotated);
  log->reopen();
  AccessRecord d = basic();
  d.status = 404;
  log->write(d);
  log->write(b);
  log->flush();
  EXPECT_EQ(read_lines(path), (std::vector<std::string>{format_combined(d), format_combined(b)}));
  EXPECT_EQ(read_lines(rotated).size(), 3u);
  EXPECT_EQ(log->dropped(), 0u);
}

TEST(AccessLogFile, WorkerBuffersAreHandedOverInChunksInOrder) {
  TempDir dir;
  const auto path = dir / "access.log";
  auto log = open_log(path, config::AccessLogFormat::json);
  ASSERT_NE(log, nullptr);
  AccessLogBuffer buf;
  std::vector<std::string> want;
  for (unsigned i = 0; i < 5000; ++i) {  // ~1.5 MB: many 64 KiB chunks handed over by append() itself
    AccessRecord r = basic();
    r.status = 200 + i % 300;
    r.bytes_in = i;
    log->append(buf, r);
    want.push_back(format_json(r));
  }
  EXPECT_LT(buf.data.size(), 64u * 1024) << "append() hands full chunks over";
  log->hand_over(buf);
  EXPECT_TRUE(buf.data.empty());
  EXPECT_EQ(buf.lines, 0u);
  log->flush();
  EXPECT_EQ(read_lines(path), want);
  EXPECT_EQ(log->dropped(), 0u);
}

// The disk stops taking writes (here: a FIFO nobody reads): workers must not wait. Beyond 16 MiB queued,
// hand_over() drops whole chunks and says how many lines; once the reader comes back, what was kept is written.
TEST(AccessLogFile, AStalledWriterDropsChunksInsteadOfBlockingWorkers) {
  TempDir dir;
  const auto path = dir / "stalled.fifo";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  const int reader = ::open(path.c_str(), O_RDONLY | O_NONBLOCK);  // present, so the log's open succeeds
  ASSERT_GE(reader, 0);
  auto log = open_log(path, config::AccessLogFormat::combined);
  ASSERT_NE(log, nullptr);
  AccessLogBuffer buf;
  std::uint64_t appended = 0, dropped = 0;
  const auto t0 = std::chrono::steady_clock::now();
  while (dropped == 0 && appended < 1'000'000) {  // ~200 MB of lines at most; drops start after ~16 MiB
    dropped += log->append(buf, basic());
    ++appended;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20)) << "append() must not wait";
  ASSERT_GT(dropped, 0u) << "nothing dropped after " << appended << " lines";
  EXPECT_EQ(log->dropped(), dropped);
  // Drain the FIFO until the writer closes it (the log's destructor writes the queue, then closes).
  std::thread drain([reader] {
    ::fcntl(reader, F_SETFL, 0);  // blocking reads from here on
    char chunk[1 << 16];
    while (::read(reader, chunk, sizeof chunk) > 0) {
    }
  });
  log.reset();
  drain.join();
  ::close(reader);
}

TEST(AccessLogFile, JsonLinesAppendToAnExistingFile) {
  TempDir dir;
  const auto path = dir / "access.json";
  { std::ofstream(path) << "previous line\n"; }
  auto log = open_log(path, config::AccessLogFormat::json);
  ASSERT_NE(log, nullptr);
  for (int i = 0; i < 100; ++i) log->write(hostile());
  log.reset();  // destruction flushes what is queued
  const auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 101u);
  EXPECT_EQ(lines[0], "previous line");
  for (std::size_t i = 1; i < lines.size(); ++i) {
    boost::system::error_code ec;
    boost::json::parse(lines[i], ec);
    EXPECT_FALSE(ec) << lines[i];
  }
}

TEST(AccessLogFile, OpenFailureSaysWhy) {
  std::string error;
  auto log = AccessLog::open({"/nonexistent-virex-dir/access.log", config::AccessLogFormat::combined}, error);
  EXPECT_EQ(log, nullptr);
  EXPECT_EQ(error, "cannot open /nonexistent-virex-dir/access.log: No such file or directory");
}

TEST(DaemonLog, LevelsByNameUnknownIsInfo) {
  init_logging("debug");
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::debug);
  set_log_level("warn");
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::warn);
  set_log_level("loud");
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::info);
  spdlog::info("observe_test: daemon log works");
  shutdown_logging();
  set_log_level("debug");  // after shutdown: no logger, no crash
}

}  // namespace
}  // namespace virex::observe
