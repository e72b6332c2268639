#!/usr/bin/env bash
# User-space instructions per request of virex-edge (valgrind callgrind): stable on a noisy machine where
# CPU time is not. Starts the daemon (1 worker) under callgrind serving a 1 KiB `respond` route, warms it with
# 1,000 requests, zeroes the counters, sends exactly N requests over C keep-alive connections
# (bench/load/fixed_requests.py), dumps, and prints instructions per request.
# With --nginx, measures nginx (one process, master_process off) serving the same 1 KiB as a static file.
# Usage: bench/load/instructions_per_request.sh [--nginx] [--bin PATH] [--requests N (20000)] [--conns C (16)]
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$ROOT/build/release/src/virex-edge; N=20000; C=16; NGINX=0
while [ $# -gt 0 ]; do case "$1" in
  --bin) BIN=$2; shift 2;; --nginx) NGINX=1; shift;; --requests) N=$2; shift 2;; --conns) C=$2; shift 2;;
  *) echo "unknown arg $1" >&2; exit 2;; esac; done
command -v valgrind callgrind_control >/dev/null || { echo "needs valgrind" >&2; exit 2; }
W=$(mktemp -d /tmp/virex-ipr.XXXX); trap 'kill $VPID 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
head -c 1024 /dev/zero | tr '\0' 'x' > "$W/body"
cat > "$W/edge.yaml" <<Y
node: {workers: 1}
listeners: [{name: public, address: "127.0.0.1:$PORT"}]
routes: [{name: hit, match: {path: /hit}, respond: {headers: {Content-Type: text/plain}, file: $W/body}}]
observability: {log_level: warn}
Y
mkdir -p "$W/www"; cp "$W/body" "$W/www/hit"
cat > "$W/nginx.conf" <<C
master_process off; daemon off; worker_processes 1; user root; pid $W/nginx.pid; error_log $W/nginx.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; open_file_cache max=100; default_type text/plain;
  server { listen 127.0.0.1:$PORT; root $W/www; } }
C
if [ "$NGINX" = 1 ]; then
  valgrind --tool=callgrind --callgrind-out-file="$W/cg.%p" nginx -c "$W/nginx.conf" -p "$W" > "$W/vg.log" 2>&1 &
else
  valgrind --tool=callgrind --callgrind-out-file="$W/cg.%p" "$BIN" run --config "$W/edge.yaml" > "$W/vg.log" 2>&1 &
fi
VPID=$!
for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$PORT/hit" && break; sleep 0.1; done
/usr/bin/python3 "$ROOT/bench/load/fixed_requests.py" "$PORT" 1000 "$C"
callgrind_control -z "$VPID" >/dev/null
/usr/bin/python3 "$ROOT/bench/load/fixed_requests.py" "$PORT" "$N" "$C"
callgrind_control -d "$VPID" >/dev/null
sleep 1
ir=$(awk '/^totals:/ {s+=$2} END {print s+0}' "$W"/cg.*.1)
echo "server=$([ "$NGINX" = 1 ] && echo nginx || echo virex-edge) requests=$N conns=$C instructions=$ir instructions_per_request=$((ir / N))"
