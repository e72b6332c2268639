// sd_notify(3) wrapper: READY / RELOADING / STOPPING / STATUS when NOTIFY_SOCKET is set; no-op otherwise.
// Control thread only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace virex::server::systemd {

void notify(std::string_view state);

// Listening sockets passed by systemd socket activation (LISTEN_FDS/LISTEN_PID), keyed by their local
// address as "ip:port" ("[v6]:port"); the environment variables are unset. Empty without activation.
struct InheritedSocket {
  std::string address;
  int fd = -1;
};
std::vector<InheritedSocket> listen_fds();

// The watchdog interval systemd asked for (WATCHDOG_USEC), or 0 when there is none.
std::uint64_t watchdog_usec();
void notify_reloading();   // RELOADING=1 with MONOTONIC_USEC (systemd Type=notify-reload)

}  // namespace virex::server::systemd
