# Shared helpers of the bench/load scripts (sourced, not run). The sourcing script sets W (its temp dir) and
# PIDS (the process trees to stop on exit) first, and LOCK / LFD / LOCKWAIT when it takes the build lock.
# Every wait here is bounded.
tree_pids() { # root pid -> it and all its descendants
  local all=$1 kids=$1 k
  while [ -n "$kids" ]; do k=$(for p in $kids; do pgrep -P "$p"; done | tr '\n' ' '); all="$all $k"; kids=$k; done
  echo $all
}
stop_tree() { # root pid: TERM, bounded wait (5 s), then KILL whatever of its tree is left
  local all p; all=$(tree_pids "$1")
  kill "$1" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  for p in $all; do kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null; done
  wait "$1" 2>/dev/null  # reap it when it is our child (a restarted server may reuse its port)
}
cleanup() {
  local p; for p in $PIDS; do stop_tree "$p"; done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # port path: bounded wait (10 s) until GET answers 200
  local i
  for i in $(seq 100); do
    [ "$(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1$2")" = 200 ] && return 0; sleep 0.1
  done
  return 1
}
tree_cpu() { # root pid -> user+sys clock ticks of its process tree
  local p; for p in $(tree_pids "$1"); do [ -r /proc/$p/stat ] && awk '{print $14+$15}' /proc/$p/stat; done | awk '{t+=$1} END {print t+0}'
}
lock() { # take the lock (bounded wait) when --lock was given
  [ -n "$LOCK" ] || return 0
  if ! flock -n "$LFD"; then
    echo "# waiting (at most ${LOCKWAIT}s) for $LOCK ..." >&2
    flock -w "$LOCKWAIT" "$LFD" || { echo "lock $LOCK not free after ${LOCKWAIT}s; giving up" >&2; exit 3; }
  fi
}
unlock() { [ -n "$LOCK" ] && flock -u "$LFD"; return 0; }
