// Daemon log: the spdlog default logger, asynchronous (a full queue drops the oldest message rather than
// blocking a worker) and writing plain lines to stderr for journald. init/shutdown on the main thread;
// set_log_level from the control thread (reload); logging itself from any thread.
#include <virex/observe/access_log.hpp>

#include <spdlog/async.h>
#include <spdlog/async_logger.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <array>
#include <utility>

namespace virex::observe {
namespace {

constexpr std::size_t kQueueMessages = 8192;

// Config level names; anything else means info (config validation reports bad names before this).
spdlog::level::level_enum parse_level(std::string_view name) {
  static constexpr std::array<std::pair<std::string_view, spdlog::level::level_enum>, 8> kLevels{{
      {"trace", spdlog::level::trace},
      {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},
      {"warn", spdlog::level::warn},
      {"warning", spdlog::level::warn},
      {"error", spdlog::level::err},
      {"critical", spdlog::level::critical},
      {"off", spdlog::level::off},
  }};
  for (const auto& [n, level] : kLevels) {
    if (n == name) return level;
  }
  return spdlog::level::info;
}

}  // namespace

void init_logging(std::string_view level) {
  spdlog::init_thread_pool(kQueueMessages, 1);
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();  // no colour: journald stores plain text
  auto logger = std::make_shared<spdlog::async_logger>("virex", std::move(sink), spdlog::thread_pool(),
                                                       spdlog::async_overflow_policy::overrun_oldest);
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l %v");
  logger->set_level(parse_level(level));
  logger->flush_on(spdlog::level::err);
  spdlog::set_default_logger(std::move(logger));
}

void set_log_level(std::string_view level) {
  if (auto* logger = spdlog::default_logger_raw()) logger->set_level(parse_level(level));  // null after shutdown
}

void shutdown_logging() { spdlog::shutdown(); }

}  // namespace virex::observe
