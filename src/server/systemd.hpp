// sd_notify(3) wrapper: READY / RELOADING / STOPPING / STATUS when NOTIFY_SOCKET is set; no-op otherwise.
// Control thread only.
#pragma once

#include <string_view>

namespace virex::server::systemd {

void notify(std::string_view state);
void notify_reloading();   // RELOADING=1 with MONOTONIC_USEC (systemd Type=notify-reload)

}  // namespace virex::server::systemd
