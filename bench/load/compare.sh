#!/usr/bin/env bash
# Side-by-side HTTP/1.1 cost of virex-edge and nginx serving the same 1 KiB static response, in one run on one
# machine (method of /work/shared/tools/anchors.sh): each server has one worker pinned to core 0, wrk runs on
# core 1 (-t1 -cCONNS --latency). cpu_us/req = user+sys clock ticks of the server's process tree over the wrk
# run / requests completed. Prints rps, p50, p99 and cpu_us/req per server, then the virex/nginx CPU ratio.
# Usage: bench/load/compare.sh [--secs N (10)] [--conns N (64)] [--rounds N (3)] [--bin PATH (build/release/src/virex-edge)]
# Needs: nginx wrk curl taskset (Debian packages); a release build of virex-edge.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECS=10; CONNS=64; ROUNDS=3; BIN=$ROOT/build/release/src/virex-edge
while [ $# -gt 0 ]; do case "$1" in
  --secs) SECS=$2; shift 2;; --conns) CONNS=$2; shift 2;; --bin) BIN=$2; shift 2;; --rounds) ROUNDS=$2; shift 2;;
  -h|--help) sed -n '2,8p' "$0"; exit 0;;
  *) echo "unknown arg $1" >&2; exit 2;; esac; done
for t in nginx wrk curl taskset; do command -v $t >/dev/null || { echo "missing tool: $t" >&2; exit 2; }; done
[ -x "$BIN" ] || { echo "not an executable: $BIN (build the release preset first)" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || echo "warning: fewer than 2 cores; server and wrk share a core" >&2

W=$(mktemp -d /tmp/virex-compare.XXXX); chmod 755 "$W"
PIDS=""
cleanup() {
  for p in $PIDS; do kill "$p" 2>/dev/null; done
  for p in $PIDS; do for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; done
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # port: bounded wait until the server answers GET /hit with 200
  local i
  for i in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/hit")" = 200 ] && return 0; sleep 0.1
  done
  echo "server on port $1 did not answer 200 within 10 s" >&2; return 1
}
tree_cpu() { # pid of the server's root process -> user+sys clock ticks of its process tree
  local all=$1 kids=$1 k
  while [ -n "$kids" ]; do k=$(for p in $kids; do pgrep -P "$p"; done | tr '\n' ' '); all="$all $k"; kids=$k; done
  for p in $all; do [ -r /proc/$p/stat ] && awk '{print $14+$15}' /proc/$p/stat; done | awk '{t+=$1} END {print t+0}'
}
run_wrk() { # url label pid -> prints one line, appends "label cpu_us" to $W/cpu
  local c0 c1
  c0=$(tree_cpu "$3")
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "$1" > "$W/wrk.$2.out" 2>&1
  c1=$(tree_cpu "$3")
  awk -v L="$2" -v ticks=$((c1-c0)) -v hz="$(getconf CLK_TCK)" -v cpuf="$W/cpu" '
    /requests in/ {n=$1} /Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=$NF}
    /Socket errors/ {err=$0}
    END {cpu=(n? ticks*1e6/hz/n : 0)
         printf "%-12s rps=%-10s p50=%-8s p99=%-8s cpu_us/req=%-7.2f requests=%s %s %s\n", L, rps, p50, p99, cpu, n,
                (bad?"non2xx="bad:""), err
         printf "%s %.4f\n", L, cpu >> cpuf}' "$W/wrk.$2.out"
}

# The same 1 KiB body for both servers.
head -c 1024 /dev/zero | tr '\0' 'x' > "$W/body"; mkdir -p "$W/www"; cp "$W/body" "$W/www/hit"

# --- virex-edge: one worker, a `respond` route, no access log.
VP=$(free_port); VA=$(free_port)
cat > "$W/edge.yaml" <<Y
node: {name: bench, region: local, workers: 1}
limits: {idle_timeout: 300s}
listeners:
  - {name: public, address: "127.0.0.1:$VP"}
  - {name: admin, address: "127.0.0.1:$VA", admin: true}
routes:
  - name: hit
    match: {path: /hit, method: [GET, HEAD]}
    respond: {status: 200, headers: {Content-Type: application/octet-stream}, body: "$(cat "$W/body")"}
observability: {log_level: warn}
Y
taskset -c 0 "$BIN" run --config "$W/edge.yaml" > "$W/virex.log" 2>&1 &
VPID=$!; PIDS="$PIDS $VPID"
wait_http "$VP" || { cat "$W/virex.log" >&2; exit 1; }
[ "$(curl -s "http://127.0.0.1:$VP/hit" | wc -c)" = 1024 ] || { echo "virex-edge body is not 1 KiB" >&2; exit 1; }

# --- nginx: one worker (master + worker both in the measured tree), static file, no access log.
NP=$(free_port)
cat > "$W/nginx.conf" <<C
user root; worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s; open_file_cache max=100;
  default_type application/octet-stream;
  server { listen 127.0.0.1:$NP; root $W/www; } }
C
taskset -c 0 nginx -c "$W/nginx.conf" -p "$W" > /dev/null 2>&1 &
NPID=$!; PIDS="$PIDS $NPID"
wait_http "$NP" || { cat "$W/nginx.err" >&2; exit 1; }

echo "# $(date -u +%FT%TZ) commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)" \
     "cpu=\"$(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//')\" secs=$SECS conns=$CONNS"
# warm both (first-request costs, file cache), then measure one after the other
taskset -c 1 wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$VP/hit" > /dev/null 2>&1
taskset -c 1 wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$NP/hit" > /dev/null 2>&1
# Alternate the two servers ROUNDS times (this machine is a noisy VM): every line is printed, and the ratio
# is taken of the medians.
for r in $(seq "$ROUNDS"); do
  run_wrk "http://127.0.0.1:$VP/hit" virex-edge "$VPID"
  run_wrk "http://127.0.0.1:$NP/hit" nginx "$NPID"
done
awk '{v[$1] = v[$1] " " $2}
     function median(s,   a, n, i, j, t) { n = split(s, a, " ");
       for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
       return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
     END { if (v["nginx"] == "") { print "cpu ratio: n/a (nginx cpu not measured)"; exit }
           mv = median(v["virex-edge"]); mn = median(v["nginx"]);
           printf "median cpu_us/req: virex-edge %.2f nginx %.2f; cpu ratio virex-edge/nginx = %.2f\n", mv, mn, mv / mn }' "$W/cpu"
