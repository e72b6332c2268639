#!/usr/bin/env bash
# HTTP/2 and TLS cost of virex-edge vs nginx and h2o serving the same 1 KiB response, one run on one machine:
# each server has one worker pinned to core 0, the load generator runs on core 1.
#  - h2c (prior knowledge) and h2 over TLS (ALPN, TLS 1.3, ECDSA P-256): h2load -n N -c 10 -m 10;
#    cpu_us/req = user+sys clock ticks of the server's process tree over the run / requests completed.
#  - TLS handshakes: openssl s_time for SECS seconds, full (-new) and resumed (-reuse); handshakes/s and the
#    server's cpu_us per handshake.
# Prints one line per measurement and the virex/nginx ratios (medians over ROUNDS).
# Usage: bench/load/h2_compare.sh [--requests N (200000)] [--rounds N (3)] [--secs N (5)] [--bin PATH] [--lock FILE]
# Needs: nginx (http_v2 module: nginx-light has it), h2o, h2load (nghttp2-client), openssl, curl, taskset.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
N=200000; ROUNDS=3; SECS=5; BIN=$ROOT/build/release/src/virex-edge; LOCK=""; LOCKWAIT=1800
while [ $# -gt 0 ]; do case "$1" in
  --requests) N=$2; shift 2;; --rounds) ROUNDS=$2; shift 2;; --secs) SECS=$2; shift 2;; --bin) BIN=$2; shift 2;;
  --lock) LOCK=$2; shift 2;;
  -h|--help) sed -n '2,11p' "$0"; exit 0;;
  *) echo "unknown arg $1" >&2; exit 2;; esac; done
for t in nginx h2o h2load openssl curl taskset; do command -v $t >/dev/null || { echo "missing tool: $t" >&2; exit 2; }; done
[ -x "$BIN" ] || { echo "not an executable: $BIN (build the release preset first)" >&2; exit 2; }

W=$(mktemp -d /tmp/virex-h2cmp.XXXX); chmod 755 "$W"
PIDS=""
. "$ROOT/bench/load/lib.sh"
if [ -n "$LOCK" ]; then exec {LFD}>"$LOCK"; lock; fi

head -c 1024 /dev/zero | tr '\0' 'x' > "$W/body"; mkdir -p "$W/www"; cp "$W/body" "$W/www/hit"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/k.pem" -out "$W/c.pem" -days 2 \
  -subj /CN=bench.test -addext subjectAltName=DNS:bench.test 2>/dev/null

wait_h2c() { # port: bounded wait (10 s) until an h2c GET /hit answers 200
  local i
  for i in $(seq 100); do
    [ "$(curl -s -m 1 --http2-prior-knowledge -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/hit")" = 200 ] && return 0
    sleep 0.1
  done
  return 1
}

# --- virex-edge: one worker, a `respond` route, h2c and TLS listeners, no access log.
VP=$(free_port); VT=$(free_port)
cat > "$W/edge.yaml" <<Y
node: {name: bench, region: local, workers: 1}
limits: {idle_timeout: 300s}
listeners:
  - {name: h2c, address: "127.0.0.1:$VP", protocols: [http1, h2c]}
  - {name: tls, address: "127.0.0.1:$VT", protocols: [http1, h2], tls: {certificates: [{cert: $W/c.pem, key: $W/k.pem}]}}
routes:
  - name: hit
    match: {path: /hit, method: [GET, HEAD]}
    respond: {status: 200, headers: {Content-Type: application/octet-stream}, body: "$(cat "$W/body")"}
observability: {log_level: warn}
Y
taskset -c 0 "$BIN" run --config "$W/edge.yaml" > "$W/virex.log" 2>&1 &
VPID=$!; PIDS="$PIDS $VPID"
wait_h2c "$VP" || { cat "$W/virex.log" >&2; exit 1; }

# --- nginx: one worker, static file, h2c (listen … http2) and TLS (listen … ssl http2), no access log.
NP=$(free_port); NT=$(free_port)
cat > "$W/nginx.conf" <<C
user root; worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s; open_file_cache max=100;
  http2_max_requests 1000000; default_type application/octet-stream;
  ssl_certificate $W/c.pem; ssl_certificate_key $W/k.pem; ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:S:10m; ssl_session_tickets on;
  server { listen 127.0.0.1:$NP http2; root $W/www; }
  server { listen 127.0.0.1:$NT ssl http2; root $W/www; } }
C
taskset -c 0 nginx -c "$W/nginx.conf" -p "$W" > /dev/null 2>&1 &
NPID=$!; PIDS="$PIDS $NPID"
wait_h2c "$NP" || { cat "$W/nginx.err" >&2; exit 1; }

# --- h2o 2.2: one thread, the same file, h2c and TLS.
HP=$(free_port); HT=$(free_port)
cat > "$W/h2o.conf" <<H
num-threads: 1
user: root
pid-file: $W/h2o.pid
error-log: $W/h2o.err
http2-idle-timeout: 300
listen: {host: 127.0.0.1, port: $HP}
listen:
  host: 127.0.0.1
  port: $HT
  ssl: {certificate-file: $W/c.pem, key-file: $W/k.pem, minimum-version: TLSv1.2}
hosts:
  default:
    paths:
      /: {file.dir: $W/www}
H
taskset -c 0 h2o -c "$W/h2o.conf" > "$W/h2o.out" 2>&1 &
HPID=$!; PIDS="$PIDS $HPID"
wait_h2c "$HP" || { cat "$W/h2o.out" "$W/h2o.err" >&2 2>/dev/null; echo "h2o did not start: left out" >&2; HPID=""; }

for p in "$VP" "$NP" ${HPID:+"$HP"}; do
  [ "$(curl -s --http2-prior-knowledge "http://127.0.0.1:$p/hit" | wc -c)" = 1024 ] || { echo "port $p: body is not 1 KiB" >&2; exit 1; }
done

echo "# $(date -u +%FT%TZ) commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)" \
     "cpu=\"$(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//')\" requests=$N h2load -c 10 -m 10"

run_h2load() { # url label pid -> one line; appends "label cpu_us" to $W/cpu
  local c0 c1
  c0=$(tree_cpu "$3")
  taskset -c 1 h2load -n "$N" -c 10 -m 10 "$1" > "$W/h2load.out" 2>&1
  c1=$(tree_cpu "$3")
  awk -v L="$2" -v ticks=$((c1-c0)) -v hz="$(getconf CLK_TCK)" -v cpuf="$W/cpu" '
    /^finished in/ {rps=$4} /^requests:/ {ok=$8; failed=$10}
    END {cpu=(ok? ticks*1e6/hz/ok : 0)
         printf "%-16s rps=%-10s cpu_us/req=%-7.2f succeeded=%s failed=%s\n", L, rps, cpu, ok, failed
         printf "%s %.4f\n", L, cpu >> cpuf}' "$W/h2load.out"
}

run_stime() { # port label pid s_time-args... -> one line; appends "label cpu_us" to $W/cpu
  local c0 c1 port=$1 label=$2 pid=$3
  shift 3
  c0=$(tree_cpu "$pid")
  taskset -c 1 openssl s_time -connect "127.0.0.1:$port" "$@" -time "$SECS" > "$W/stime.out" 2>&1
  c1=$(tree_cpu "$pid")
  # s_time prints "r" per resumed connection: a "resumed" run that resumed nothing is reported as such.
  grep -q '^Now timing with session id reuse' "$W/stime.out" &&
    ! grep -E '^[*r]+$' "$W/stime.out" | grep -q r && label="$label(NOT-RESUMED)"
  set -- "$port" "$label" "$pid"
  awk -v L="$2" -v ticks=$((c1-c0)) -v hz="$(getconf CLK_TCK)" -v cpuf="$W/cpu" '
    /connections in [0-9.]+ real seconds/ {n=$1; secs=$4}
    END {cpu=(n? ticks*1e6/hz/n : 0)
         printf "%-16s handshakes/s=%-9.0f cpu_us/handshake=%-8.1f handshakes=%s\n", L, (secs? n/secs : 0), cpu, n
         printf "%s %.4f\n", L, cpu >> cpuf}' "$W/stime.out"
}

# warm-up
for p in "$VP" "$NP" ${HPID:+"$HP"}; do taskset -c 1 h2load -n 20000 -c 10 -m 10 "http://127.0.0.1:$p/hit" > /dev/null 2>&1; done
for r in $(seq "$ROUNDS"); do
  run_h2load "http://127.0.0.1:$VP/hit" virex-h2c "$VPID"
  run_h2load "http://127.0.0.1:$NP/hit" nginx-h2c "$NPID"
  [ -n "$HPID" ] && run_h2load "http://127.0.0.1:$HP/hit" h2o-h2c "$HPID"
  run_h2load "https://127.0.0.1:$VT/hit" virex-h2-tls "$VPID"
  run_h2load "https://127.0.0.1:$NT/hit" nginx-h2-tls "$NPID"
  [ -n "$HPID" ] && run_h2load "https://127.0.0.1:$HT/hit" h2o-h2-tls "$HPID"
  # Full: TLS 1.3. Resumed: TLS 1.2 (s_time takes its session before a TLS 1.3 ticket arrives, so it cannot
  # resume TLS 1.3; the TLS 1.2 session is resumed by ticket).
  run_stime "$VT" virex-hs-full "$VPID" -new
  run_stime "$NT" nginx-hs-full "$NPID" -new
  [ -n "$HPID" ] && run_stime "$HT" h2o-hs-full "$HPID" -new
  run_stime "$VT" virex-hs-resumed "$VPID" -tls1_2 -reuse
  run_stime "$NT" nginx-hs-resumed "$NPID" -tls1_2 -reuse
  [ -n "$HPID" ] && run_stime "$HT" h2o-hs-resumed "$HPID" -tls1_2 -reuse
done
awk '{v[$1] = v[$1] " " $2}
     function median(s,   a, n, i, j, t) { n = split(s, a, " ");
       for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
       return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
     END { split("h2c h2-tls hs-full hs-resumed", k, " ");
           for (i = 1; i <= 4; i++) {
             mv = median(v["virex-" k[i]]); mn = median(v["nginx-" k[i]]); mh = median(v["h2o-" k[i]]);
             printf "median cpu_us %-10s virex-edge %.2f nginx %.2f h2o %s; virex/nginx = %.2f\n", k[i], mv, mn,
                    (v["h2o-" k[i]] == "" ? "n/a" : sprintf("%.2f", mh)), (mn > 0 ? mv / mn : 0) } }' "$W/cpu"
unlock
