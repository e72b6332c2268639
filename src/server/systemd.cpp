#include "systemd.hpp"

#include <systemd/sd-daemon.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ctime>
#include <string>

namespace virex::server::systemd {

void notify(std::string_view state) { sd_notify(0, std::string(state).c_str()); }

void notify_reloading() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const auto usec = static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL + static_cast<unsigned long long>(ts.tv_nsec) / 1000;
  notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

std::vector<InheritedSocket> listen_fds() {
  std::vector<InheritedSocket> out;
  const int n = sd_listen_fds(1);
  for (int i = 0; i < n; ++i) {
    const int fd = SD_LISTEN_FDS_START + i;
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = {};
    std::string address;
    if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) > 0 && ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      if (ss.ss_family == AF_INET) {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        address = std::string(ip) + ":" + std::to_string(ntohs(a->sin_port));
      } else if (ss.ss_family == AF_INET6) {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        address = "[" + std::string(ip) + "]:" + std::to_string(ntohs(a->sin6_port));
      }
    }
    out.push_back({address, fd});  // address empty: not a listening TCP socket (the caller closes it)
  }
  return out;
}

std::uint64_t watchdog_usec() {
  std::uint64_t usec = 0;
  return sd_watchdog_enabled(1, &usec) > 0 ? usec : 0;
}

}  // namespace virex::server::systemd
