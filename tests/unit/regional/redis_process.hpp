// Test helper: a real redis-server child process on a free loopback port (redis refuses port 0: a port found
// free is tried, another one if it was taken meanwhile), readiness polled with PING under a deadline, killed with
// SIGKILL to simulate an outage and restarted on the same port; plus a blocking one-command RESP client for the
// test's own checks (CLIENT KILL, PUBLISH, PTTL). Test thread only.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace virex::test {

inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// One command over a fresh blocking connection (2 s socket timeouts); returns the raw reply's first line, or a
// bulk string's payload; "" when the connection failed.
inline std::string redis_command(int port, const std::vector<std::string>& args) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return "";
  }
  std::string req = "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& s : args) req += "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string in;
  char buf[4096];
  for (;;) {
    const auto eol = in.find("\r\n");
    if (eol != std::string::npos) {
      if (in[0] != '$') break;
      const long n = std::strtol(in.c_str() + 1, nullptr, 10);
      if (n < 0 || in.size() >= eol + 2 + static_cast<std::size_t>(n) + 2) {
        ::close(fd);
        return n < 0 ? "(nil)" : in.substr(eol + 2, static_cast<std::size_t>(n));
      }
    }
    const ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r <= 0) break;
    in.append(buf, static_cast<std::size_t>(r));
  }
  ::close(fd);
  const auto eol = in.find("\r\n");
  return eol == std::string::npos ? in : in.substr(0, eol);
}

class RedisProcess {
 public:
  RedisProcess() {
    dir_ = std::filesystem::temp_directory_path() / ("virex-redis-" + std::to_string(::getpid()) + "-" +
                                                     std::to_string(counter()++));
    std::filesystem::create_directories(dir_);
    for (int i = 0; i < 5 && port_ == 0; ++i) {
      const int p = free_port();
      if (spawn(p)) port_ = p;
    }
    if (port_ == 0) throw std::runtime_error("redis-server did not start");
  }
  ~RedisProcess() {
    kill();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  int port() const { return port_; }
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }
  void restart() {
    kill();
    if (!spawn(port_)) throw std::runtime_error("redis-server did not restart on its port");
  }
  std::string operator()(const std::vector<std::string>& args) const { return redis_command(port_, args); }

 private:
  static int& counter() {
    static int n = 0;
    return n;
  }
  bool spawn(int port) {
    const std::string ps = std::to_string(port), d = dir_.string(), log = (dir_ / "redis.log").string();
    std::vector<std::string> args = {"redis-server", "--port", ps, "--bind", "127.0.0.1", "--save", "",
                                     "--appendonly", "no", "--dir", d, "--logfile", log};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    if (::posix_spawnp(&pid, "redis-server", nullptr, nullptr, argv.data(), environ) != 0) return false;
    pid_ = pid;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {  // exited: the port was taken
        pid_ = -1;
        return false;
      }
      if (redis_command(port, {"PING"}) == "+PONG") return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // poll interval; readiness is the PING
    }
    kill();
    return false;
  }
  std::filesystem::path dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace virex::test
