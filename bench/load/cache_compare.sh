#!/usr/bin/env bash
# Side-by-side cost of a CACHE HIT: virex-edge edge-cache hit vs nginx static file vs nginx proxy_cache hit vs
# varnish (malloc) hit vs haproxy cache hit, all in one run on one machine (method of
# /work/shared/tools/anchors.sh and bench/load/proxy_compare.sh). 1 KiB body, HTTP/1.1 keep-alive.
# Placement: each server runs alone with one worker/thread pinned to core 0 (varnish: one thread pool, all its
# threads on core 0); ONE shared origin (nginx, one worker, Cache-Control: public, max-age=60) and wrk
# (-t1 -cCONNS --latency) share core 1. Every cache keeps responses for 60 s (origin max-age; virex edge_ttl 60s,
# nginx proxy_cache_valid 60s, haproxy max-age 60).
# Each run uses its own URL /hit?r=ROUND (so no entry can expire inside a run shorter than 60 s): it is filled by
# one GET, then the hit is verified before and after the run — virex `Cache-Status: virex-edge; hit`, nginx
# `X-Cache-Status: HIT`, varnish `X-Varnish` with two ids, haproxy (no header) by the origin alone — and for every
# cache the origin's stub_status request count must not grow during the wrk run (origin_reqs=0); a run failing
# either check is printed INVALID and left out of the medians.
# Per server and round: rps, p50, p99, cpu_us/req (user+sys clock ticks of the server's process tree only over
# the wrk run / requests completed), origin requests during the run. Then medians over rounds and the ratios vs
# nginx static file (cpu and p99).
# Usage: bench/load/cache_compare.sh [--secs N (10, < 60)] [--conns N (64)] [--rounds N (3)]
#          [--bin PATH (build/release/src/virex-edge)] [--only "virex-edge nginx-static nginx-cache varnish haproxy"]
#          [--lock FILE [--lock-wait SECS (1800)]]   # hold flock FILE during warm-up and each round
# Needs: nginx varnish haproxy wrk curl taskset (scripts/deps.sh bench; varnish: apt-get install varnish).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SECS=10; CONNS=64; ROUNDS=3; BIN=$ROOT/build/release/src/virex-edge
ONLY="virex-edge nginx-static nginx-cache varnish haproxy"; LOCK=""; LOCKWAIT=1800
while [ $# -gt 0 ]; do case "$1" in
  --secs) SECS=$2; shift 2;; --conns) CONNS=$2; shift 2;; --rounds) ROUNDS=$2; shift 2;; --bin) BIN=$2; shift 2;;
  --only) ONLY=$2; shift 2;; --lock) LOCK=$2; shift 2;; --lock-wait) LOCKWAIT=$2; shift 2;;
  -h|--help) sed -n '2,21p' "$0"; exit 0;;
  *) echo "unknown arg $1" >&2; exit 2;; esac; done
for t in nginx wrk curl taskset python3; do command -v $t >/dev/null || { echo "missing tool: $t (scripts/deps.sh bench)" >&2; exit 2; }; done
[ "$SECS" -lt 60 ] || { echo "--secs must be < 60 (the caches' lifetime)" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || echo "warning: fewer than 2 cores; server and wrk share a core" >&2

W=$(mktemp -d /tmp/virex-cache-compare.XXXX); chmod 755 "$W"
PIDS=""
. "$(dirname "$0")/lib.sh"   # tree_pids stop_tree cleanup (+ traps) free_port wait_http tree_cpu lock unlock

origin_requests() { # -> the origin's stub_status request count (this request itself included)
  curl -s -m 2 "http://127.0.0.1:$SP/status" | awk 'NR==3 {print $3}'
}
is_hit() { # name url -> 0 when GET url answers 200 + 1 KiB and, where the server says so, from its cache
  local code
  code=$(curl -s -m 2 -D "$W/hdr" -o "$W/check.body" -w '%{http_code}' "$2")
  [ "$code" = 200 ] && [ "$(wc -c < "$W/check.body")" = 1024 ] || return 1
  case $1 in
    virex-edge) grep -qi '^Cache-Status: virex-edge; hit' "$W/hdr";;
    nginx-cache) grep -qi '^X-Cache-Status: HIT' "$W/hdr";;
    varnish) grep -qiE '^X-Varnish: [0-9]+ [0-9]+' "$W/hdr";;
    *) return 0;;  # nginx-static (no cache), haproxy (no hit header: the origin count decides)
  esac
}

head -c 1024 /dev/zero | tr '\0' 'x' > "$W/body"; mkdir -p "$W/www"; cp "$W/body" "$W/www/hit"

# --- origin: nginx, one worker, core 1 (with wrk); stub_status on a second port counts the requests it serves.
OP=$(free_port); SP=$(free_port)
cat > "$W/origin.conf" <<C
user root; worker_processes 1; daemon off; pid $W/origin.pid; error_log $W/origin.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s; open_file_cache max=100;
  default_type application/octet-stream;
  server { listen 127.0.0.1:$OP; root $W/www; location / { add_header Cache-Control "public, max-age=60"; } }
  server { listen 127.0.0.1:$SP; location = /status { stub_status; } } }
C
taskset -c 1 nginx -c "$W/origin.conf" -p "$W" > /dev/null 2>&1 &
PIDS="$PIDS $!"
wait_http "$OP" /hit || { echo "origin did not start:" >&2; cat "$W/origin.err" >&2; exit 1; }

# --- servers, each started here and pinned to core 0 (each measured alone: the others are idle).
declare -A PORT PID
NAMES=""
start() { # name port cmd...: start pinned to core 0, wait until GET /hit?r=0 is a verified hit, else skip
  local name=$1 port=$2; shift 2
  taskset -c 0 "$@" > "$W/$name.log" 2>&1 &
  local pid=$!; PIDS="$PIDS $pid"
  if wait_http "$port" "/hit?r=0" && is_hit "$name" "http://127.0.0.1:$port/hit?r=0"; then
    PORT[$name]=$port; PID[$name]=$pid; NAMES="$NAMES $name"
  else echo "# $name: skipped, GET /hit?r=0 was not a 200 + 1 KiB hit within 10 s:" $(tail -n 5 "$W/$name.log") \
         "$(tr -d '\r' < "$W/hdr" 2>/dev/null | tr '\n' '|')" >&2
       stop_tree "$pid"; fi
}
for s in $ONLY; do case $s in
nginx-static) P=$(free_port); cat > "$W/ns.conf" <<C
user root; worker_processes 1; daemon off; pid $W/ns.pid; error_log $W/ns.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s; open_file_cache max=100;
  default_type application/octet-stream;
  server { listen 127.0.0.1:$P; root $W/www; } }
C
  start nginx-static "$P" nginx -c "$W/ns.conf" -p "$W";;
nginx-cache) P=$(free_port); mkdir -p "$W/nc"; cat > "$W/nginx.conf" <<C
user root; worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  proxy_cache_path $W/nc keys_zone=z:10m;
  upstream origin { server 127.0.0.1:$OP; keepalive 64; }
  server { listen 127.0.0.1:$P;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
                 proxy_cache z; proxy_cache_valid 200 60s; add_header X-Cache-Status \$upstream_cache_status; } } }
C
  start nginx-cache "$P" nginx -c "$W/nginx.conf" -p "$W";;
varnish) command -v varnishd >/dev/null || { echo "# varnish: skipped, not installed (apt-get install varnish)" >&2; continue; }
  P=$(free_port); cat > "$W/v.vcl" <<C
vcl 4.1;
backend origin { .host = "127.0.0.1"; .port = "$OP"; }
C
  start varnish "$P" varnishd -F -a "127.0.0.1:$P" -f "$W/v.vcl" -s malloc,64m -n "$W/vn" -p thread_pools=1;;
haproxy) command -v haproxy >/dev/null || { echo "# haproxy: skipped, not installed (scripts/deps.sh bench)" >&2; continue; }
  P=$(free_port); cat > "$W/haproxy.cfg" <<C
global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  http-reuse always
cache c
  total-max-size 64
  max-age 60
frontend f
  bind 127.0.0.1:$P
  default_backend origin
backend origin
  http-request cache-use c
  http-response cache-store c
  server o 127.0.0.1:$OP
C
  start haproxy "$P" haproxy -f "$W/haproxy.cfg";;
virex-edge)
  P=$(free_port); cat > "$W/edge.yaml" <<Y
node: {workers: 1}
limits: {idle_timeout: 300s}
listeners: [{name: bench, address: "127.0.0.1:$P"}]
upstreams:
  origin: {endpoints: ["127.0.0.1:$OP"], pool: {max_idle: 64}}
routes:
  - {name: hit, match: {prefix: /}, upstream: origin, cache: {edge_ttl: 60s}}
cache: {edge: {max_bytes: 512MiB}}
observability: {log_level: warn}
Y
  if [ ! -x "$BIN" ]; then echo "# virex-edge: skipped, no binary at $BIN (build the release preset or pass --bin)" >&2
  elif ! "$BIN" check-config "$W/edge.yaml" > "$W/check.out" 2>&1; then
    echo "# virex-edge: skipped, check-config rejects the cache config:" >&2; sed 's/^/#   /' "$W/check.out" | head -n 5 >&2
  else start virex-edge "$P" "$BIN" run --config "$W/edge.yaml"; fi;;
*) echo "unknown server $s (virex-edge nginx-static nginx-cache varnish haproxy)" >&2; exit 2;;
esac; done
[ -n "$NAMES" ] || { echo "no server to measure" >&2; exit 1; }

run_wrk() { # name round -> one line; appends "name cpu rps p50us p99us origin_reqs" to $W/res when valid
  local name=$1 port=${PORT[$1]} pid=${PID[$1]} url="http://127.0.0.1:${PORT[$1]}/hit?r=$2" r0 r1 c0 c1 pre post
  curl -s -m 2 -o /dev/null "$url"                       # fill (a miss for the caches)
  is_hit "$name" "$url" && pre=ok || pre=FAIL
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  r0=$(origin_requests); c0=$(tree_cpu "$pid")
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "$url" > "$W/wrk.out" 2>&1
  c1=$(tree_cpu "$pid"); r1=$(origin_requests)
  is_hit "$name" "$url" && post=ok || post=FAIL
  awk -v L="$name" -v R="$2" -v ticks=$((c1-c0)) -v hz="$(getconf CLK_TCK)" -v oreq=$((r1-r0-1)) \
      -v pre="$pre" -v post="$post" -v load="$load" -v res="$W/res" '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1e6; return v }
    /requests in/ {n=$1} /Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=$NF}
    /Socket errors/ {err=$0}
    END {cpu=(n? ticks*1e6/hz/n : 0); hit=(pre == "ok" && post == "ok" && oreq == 0)
         printf "round %s %-12s rps=%-10s p50=%-8s p99=%-8s cpu_us/req=%-6.2f requests=%s origin_reqs=%s hit_check=%s/%s loadavg=%s %s %s %s\n",
                R, L, rps, p50, p99, cpu, n, oreq, pre, post, load, (hit ? "" : "INVALID not-all-hits"),
                (bad ? "INVALID non2xx=" bad : ""), (err ? "INVALID " err : "")
         if (!bad && !err && n && hit) printf "%s %.4f %s %s %s %s %s\n", L, cpu, rps, us(p50), us(p99), oreq, R >> res}' "$W/wrk.out"
}

[ -n "$LOCK" ] && exec {LFD}>>"$LOCK"
echo "# $(date -u +%FT%TZ) commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none) bin=$BIN" \
     "cpu=\"$(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//')\" secs=$SECS conns=$CONNS rounds=$ROUNDS" \
     "servers:$NAMES; $(nginx -v 2>&1 | sed 's/.*: //')$(command -v haproxy >/dev/null && haproxy -v | awk 'NR==1 {print ", haproxy/" $3}')$(command -v varnishd >/dev/null && varnishd -V 2>&1 | awk 'NR==1 {print ", " $2}' | tr -d '()')"
lock
for n in $NAMES; do # warm-up: first-request costs, the entry of /hit?r=0, pools, page cache
  taskset -c 1 wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:${PORT[$n]}/hit?r=0" > /dev/null 2>&1
done
# Rounds: every server once per round, the starting server rotating from round to round (noisy shared VM).
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
    ocpu[$1] = ocpu[$1] sprintf(" %.2f", $2); k[$1]++; rc[$1, $7] = $2; rp[$1, $7] = $5; rounds[$7] = 1 }
  END {
    print "\n| server | valid rounds | rps | p50 µs | p99 µs | cpu µs/req | cpu per round | cpu vs nginx static | p99 vs nginx static | cpu vs nginx static, same round (median) | p99 vs nginx static, same round (median) |"
    print "|---|---|---|---|---|---|---|---|---|---|---|"
    n = split(order, o, " "); B = "nginx-static"
    bc = (B in k) ? median(cpu[B]) : 0; bp = (B in k) ? median(p99[B]) : 0
    for (i = 1; i <= n; i++) { s = o[i]; if (!(s in k)) continue
      c = median(cpu[s]); p = median(p99[s]); pc = ""; pp = ""
      for (r in rounds) if (((s, r) in rc) && ((B, r) in rc)) { pc = pc " " rc[s, r] / rc[B, r]; pp = pp " " rp[s, r] / rp[B, r] }
      printf "| %s | %d | %.0f | %.0f | %.0f | %.2f | %s | %s | %s | %s | %s |\n", s, k[s], median(rps[s]), median(p50[s]), p,
             c, substr(ocpu[s], 2), (bc ? sprintf("%.2f", c / bc) : "n/a"), (bp ? sprintf("%.2f", p / bp) : "n/a"),
             (pc != "" ? sprintf("%.2f", median(pc)) : "n/a"), (pp != "" ? sprintf("%.2f", median(pp)) : "n/a") }
    print "(medians over valid rounds; cpu = the server process tree only; every counted run: hit verified before and after, 0 origin requests during it; same-round ratios pair each run with nginx static in the same round)" }' "$W/res"
