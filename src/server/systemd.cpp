#include "systemd.hpp"

#include <systemd/sd-daemon.h>

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

}  // namespace virex::server::systemd
