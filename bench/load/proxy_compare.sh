#!/usr/bin/env bash
# Side-by-side reverse-proxy cost: GET /pass through each proxy to ONE nginx origin (1 KiB static file,
# keep-alive, access_log off), all in one run on one machine (method of /work/shared/tools/anchors.sh).
# Placement: each proxy runs alone with one worker pinned to core 0; the origin (one worker) and wrk
# (-t1 -cCONNS --latency) share core 1. Proxies: nginx proxy_pass (upstream keepalive 64), haproxy (nbthread 1,
# http-reuse always), h2o (num-threads 1, proxy.reverse.url), virex-edge (skipped, with the reason, when the
# binary is missing, `check-config` rejects the `upstreams:` config, or GET /pass does not answer 200 + 1 KiB).
# Per proxy and round: rps, p50, p99, cpu_us/req (user+sys clock ticks of the proxy's process tree only over the
# wrk run / requests completed) and the upstream TCP connections the origin accepted during the run (delta of
# the origin's stub_status "accepts"), with the origin's requests per connection and the proxy's connections open
# to the origin halfway through the run (ss -p). Then medians over rounds and the ratios vs nginx proxy_pass.
# Usage: bench/load/proxy_compare.sh [--secs N (10)] [--conns N (64)] [--rounds N (3)]
#          [--bin PATH (build/release/src/virex-edge)] [--only "nginx haproxy h2o virex-edge"]
#          [--lock FILE [--lock-wait SECS (1800)]]   # hold flock FILE during warm-up and each round
# Needs: nginx haproxy h2o wrk curl taskset ss (scripts/deps.sh bench).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECS=10; CONNS=64; ROUNDS=3; BIN=$ROOT/build/release/src/virex-edge; ONLY="nginx haproxy h2o virex-edge"
LOCK=""; LOCKWAIT=1800
while [ $# -gt 0 ]; do case "$1" in
  --secs) SECS=$2; shift 2;; --conns) CONNS=$2; shift 2;; --rounds) ROUNDS=$2; shift 2;; --bin) BIN=$2; shift 2;;
  --only) ONLY=$2; shift 2;; --lock) LOCK=$2; shift 2;; --lock-wait) LOCKWAIT=$2; shift 2;;
  -h|--help) sed -n '2,15p' "$0"; exit 0;;
  *) echo "unknown arg $1" >&2; exit 2;; esac; done
for t in nginx wrk curl taskset ss python3; do command -v $t >/dev/null || { echo "missing tool: $t (scripts/deps.sh bench)" >&2; exit 2; }; done
[ "$(nproc)" -ge 2 ] || echo "warning: fewer than 2 cores; proxy and wrk share a core" >&2

W=$(mktemp -d /tmp/virex-proxy-compare.XXXX); chmod 755 "$W"
PIDS=""
. "$(dirname "$0")/lib.sh"   # tree_pids stop_tree cleanup (+ traps) free_port wait_http tree_cpu lock unlock

check_pass() { # port: GET /pass answers 200 with a 1 KiB body
  [ "$(curl -s -m 2 -o "$W/check.body" -w '%{http_code}' "http://127.0.0.1:$1/pass")" = 200 ] && [ "$(wc -c < "$W/check.body")" = 1024 ]
}
origin_counters() { # -> "accepts requests" from the origin's stub_status (this request's own connection included)
  curl -s -m 2 "http://127.0.0.1:$SP/status" | awk 'NR==3 {print $1, $3}'
}

head -c 1024 /dev/zero | tr '\0' 'x' > "$W/body"; mkdir -p "$W/www"; cp "$W/body" "$W/www/pass"

# --- origin: nginx, one worker, core 1 (with wrk). keepalive_requests/timeout unbounded so that the origin never
# closes a connection itself: the connection count is the proxy's doing. stub_status on a second port.
OP=$(free_port); SP=$(free_port)
cat > "$W/origin.conf" <<C
user root; worker_processes 1; daemon off; pid $W/origin.pid; error_log $W/origin.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s; open_file_cache max=100;
  default_type application/octet-stream;
  server { listen 127.0.0.1:$OP; root $W/www; }
  server { listen 127.0.0.1:$SP; location = /status { stub_status; } } }
C
taskset -c 1 nginx -c "$W/origin.conf" -p "$W" > /dev/null 2>&1 &
PIDS="$PIDS $!"
wait_http "$OP" /pass || { echo "origin did not start:" >&2; cat "$W/origin.err" >&2; exit 1; }

# --- proxies, each started here and pinned to core 0 (each measured alone: the others are idle).
declare -A PORT PID
NAMES=""
start() { # name port cmd...: start pinned to core 0, wait for GET /pass = 200 + 1 KiB, else skip
  local name=$1 port=$2; shift 2
  taskset -c 0 "$@" > "$W/$name.log" 2>&1 &
  local pid=$!; PIDS="$PIDS $pid"
  if wait_http "$port" /pass && check_pass "$port"; then PORT[$name]=$port; PID[$name]=$pid; NAMES="$NAMES $name"
  else echo "# $name: skipped, GET /pass did not answer 200 with 1 KiB within 10 s:" $(tail -n 5 "$W/$name.log") >&2
       stop_tree "$pid"; fi
}
for s in $ONLY; do case $s in
nginx) P=$(free_port); cat > "$W/nginx.conf" <<C
user root; worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  upstream origin { server 127.0.0.1:$OP; keepalive 64; }
  server { listen 127.0.0.1:$P;
    location /pass { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
C
  start nginx "$P" nginx -c "$W/nginx.conf" -p "$W";;
haproxy) command -v haproxy >/dev/null || { echo "# haproxy: skipped, not installed (scripts/deps.sh bench)" >&2; continue; }
  P=$(free_port); cat > "$W/haproxy.cfg" <<C
global
  nbthread 1
  pidfile $W/haproxy.pid
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  http-reuse always
frontend f
  bind 127.0.0.1:$P
  default_backend origin
backend origin
  server o 127.0.0.1:$OP
C
  start haproxy "$P" haproxy -f "$W/haproxy.cfg";;
h2o) command -v h2o >/dev/null || { echo "# h2o: skipped, not installed (scripts/deps.sh bench)" >&2; continue; }
  P=$(free_port); cat > "$W/h2o.conf" <<C
listen: {host: 127.0.0.1, port: $P}
num-threads: 1
error-log: $W/h2o.err
hosts:
  default:
    paths:
      /pass: {proxy.reverse.url: "http://127.0.0.1:$OP/pass"}
C
  start h2o "$P" h2o -c "$W/h2o.conf";;
virex-edge)
  P=$(free_port); cat > "$W/edge.yaml" <<Y
node: {workers: 1}
limits: {idle_timeout: 300s}
listeners: [{name: bench, address: "127.0.0.1:$P"}]
upstreams:
  origin: {endpoints: ["127.0.0.1:$OP"], pool: {max_idle: 64}}
routes:
  - {name: pass, match: {path: /pass}, upstream: origin}
observability: {log_level: warn}
Y
  if [ ! -x "$BIN" ]; then echo "# virex-edge: skipped, no binary at $BIN (build the release preset or pass --bin)" >&2
  elif ! "$BIN" check-config "$W/edge.yaml" > "$W/check.out" 2>&1; then
    echo "# virex-edge: skipped, check-config rejects the proxy config (upstreams: not supported by this build):" >&2
    sed 's/^/#   /' "$W/check.out" | head -n 5 >&2
  else start virex-edge "$P" "$BIN" run --config "$W/edge.yaml"; fi;;
*) echo "unknown server $s (nginx haproxy h2o virex-edge)" >&2; exit 2;;
esac; done
[ -n "$NAMES" ] || { echo "no proxy to measure" >&2; exit 1; }

run_wrk() { # name round -> one line; appends "name cpu rps p50us p99us conns" to $W/res
  local name=$1 port=${PORT[$1]} pid=${PID[$1]} a0 a1 c0 c1 open
  local pat; pat="pid=($(tree_pids "$pid" | tr ' ' '|')),"
  read -r a0 r0 < <(origin_counters); c0=$(tree_cpu "$pid")
  # halfway through the run, one look at the proxy's ESTABLISHED sockets to the origin (on core 1, with wrk)
  (sleep "$(awk -v s="$SECS" 'BEGIN {print s / 2}')"; taskset -c 1 ss -Htnp state established "( dport = :$OP )" |
     grep -cE "$pat" > "$W/open") &
  local sampler=$!
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "http://127.0.0.1:$port/pass" > "$W/wrk.out" 2>&1
  c1=$(tree_cpu "$pid"); read -r a1 r1 < <(origin_counters)
  wait "$sampler"; open=$(cat "$W/open")
  awk -v L="$name" -v R="$2" -v ticks=$((c1-c0)) -v hz="$(getconf CLK_TCK)" -v conns=$((a1-a0-1)) \
      -v oreq=$((r1-r0-1)) -v open="$open" -v res="$W/res" '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1e6; return v }
    /requests in/ {n=$1} /Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=$NF}
    /Socket errors/ {err=$0}
    END {cpu=(n? ticks*1e6/hz/n : 0)
         printf "round %s %-11s rps=%-10s p50=%-8s p99=%-8s cpu_us/req=%-6.2f requests=%s origin: conns=%s reqs=%s reqs/conn=%s open_midrun=%s %s %s\n",
                R, L, rps, p50, p99, cpu, n, conns, oreq, (conns > 0 ? int(oreq / conns) : "all-reused"), open,
                (bad ? "INVALID non2xx=" bad : ""), (err ? "INVALID " err : "")
         if (!bad && !err && n) printf "%s %.4f %s %s %s %s %s\n", L, cpu, rps, us(p50), us(p99), conns, open >> res}' "$W/wrk.out"
}

[ -n "$LOCK" ] && exec {LFD}>>"$LOCK"
echo "# $(date -u +%FT%TZ) commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)" \
     "cpu=\"$(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//')\" secs=$SECS conns=$CONNS rounds=$ROUNDS" \
     "proxies:$NAMES; $(nginx -v 2>&1 | sed 's/.*: //')$(command -v haproxy >/dev/null && haproxy -v | awk 'NR==1 {print ", haproxy/" $3}')$(command -v h2o >/dev/null && h2o -v | awk 'NR==1 {print ", h2o/" $3}')"
lock
for n in $NAMES; do # warm-up: first-request costs, file cache, pools
  taskset -c 1 wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:${PORT[$n]}/pass" > /dev/null 2>&1
done
# Rounds: every proxy once per round, the starting proxy rotating from round to round (noisy shared VM).
set -- $NAMES; K=$#
for r in $(seq "$ROUNDS"); do
  [ "$r" = 1 ] || lock
  for i in $(seq 0 $((K - 1))); do j=$(( (i + r - 1) % K + 1 )); run_wrk "${!j}" "$r"; done
  unlock
done
[ -s "$W/res" ] || { echo "no valid measurement" >&2; exit 1; }
awk -v order="$NAMES" '
  function median(s,   a, n, i, j, t) { n = split(s, a, " ");
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  { cpu[$1] = cpu[$1] " " $2; rps[$1] = rps[$1] " " $3; p50[$1] = p50[$1] " " $4; p99[$1] = p99[$1] " " $5
    cn[$1] = cn[$1] " " $6; op[$1] = op[$1] " " $7; k[$1]++ }
  END {
    print "\n| proxy | rounds | rps | p50 µs | p99 µs | cpu µs/req | cpu vs nginx | p99 vs nginx | origin conns opened per run | open to origin mid-run |"
    print "|---|---|---|---|---|---|---|---|---|---|"
    n = split(order, o, " "); bc = ("nginx" in k) ? median(cpu["nginx"]) : 0; bp = ("nginx" in k) ? median(p99["nginx"]) : 0
    for (i = 1; i <= n; i++) { s = o[i]; if (!(s in k)) continue
      c = median(cpu[s]); p = median(p99[s])
      printf "| %s | %d | %.0f | %.0f | %.0f | %.2f | %s | %s | %s | %s |\n", s, k[s], median(rps[s]), median(p50[s]), p,
             c, (bc ? sprintf("%.2f", c / bc) : "n/a"), (bp ? sprintf("%.2f", p / bp) : "n/a"), substr(cn[s], 2), substr(op[s], 2) }
    print "(medians over rounds; cpu = proxy process tree only; opened = TCP connections the origin accepted during each run, from its stub_status; open = the proxy'"'"'s ESTABLISHED sockets to the origin halfway through each run, from ss -p)" }' "$W/res"
