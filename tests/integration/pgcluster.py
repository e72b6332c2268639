# Real PostgreSQL 15 shards for the shard-router tests and the demo stack: N primaries (initdb + postgres) on free
# ports, optionally one streaming replica of one shard (pg_basebackup -R -c fast), a demo schema (customers,
# orders) and deterministic seed data spread over the shards by customer-id range, plus a "reference" database
# on shard 0's server holding every shard's rows (fan-out merges are checked against one query on it).
# Everything lives in one temp dir (data dirs, unix sockets, logs). As root (CI), the servers run as `nobody`:
# PostgreSQL refuses to run as root. No sleeps: every wait polls with a deadline. Stdlib + psycopg2 (Debian's
# python3-psycopg2, /usr/bin/python3). Used from the unittest main thread, or as a CLI:
#     /usr/bin/python3 tests/integration/pgcluster.py run [--shards 3] [--replica 0] [--per-shard 10000]
# starts the cluster, prints its description as JSON on one line, and tears it down on SIGINT/SIGTERM.
import argparse
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import psycopg2

PG_BIN = os.environ.get("VIREX_PG_BIN", "/usr/lib/postgresql/15/bin")
START_TIMEOUT = 60.0     # seconds; initdb + start of several servers on a busy 2-core machine

SCHEMA = """
CREATE TABLE customers (
  id bigint PRIMARY KEY,
  name text NOT NULL,
  region text NOT NULL,
  vip boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
  id bigserial PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers(id),
  total_cents bigint NOT NULL,
  amount numeric(12,2),
  status text NOT NULL DEFAULT 'new',
  paid boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer ON orders (customer_id, created_at DESC);
"""

REGIONS = ("eu", "us", "ap")


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed_rows(lo, hi, customers):
    """Deterministic demo rows for customer ids lo..lo+customers-1 (within [lo, hi]): (customers, orders).
    Order ids are unique across shards (derived from the customer id), timestamps distinct."""
    cust, orders = [], []
    for k in range(customers):
        cid = lo + k
        if cid > hi:
            break
        cust.append((cid, f"customer {cid}", REGIONS[cid % 3], cid % 5 == 0,
                     f"2025-01-{1 + cid % 28:02d} 10:00:00+00"))
        for j in range(1 + cid % 4):            # 1..4 orders a customer
            oid = cid * 10 + j
            total = (cid * 7919 + j * 104729) % 100000
            orders.append((oid, cid, total, f"{total / 100:.2f}", ("new", "paid", "shipped")[(cid + j) % 3],
                           (cid + j) % 2 == 0,
                           1738368000 + oid))   # created_at (unix seconds): distinct, so ORDER BY it is total
    return cust, orders


class Server:
    """One postgres server (a primary, or a streaming replica) in its own data dir."""

    def __init__(self, cluster, name, port):
        self.cluster = cluster
        self.name = name
        self.port = port
        self.data = os.path.join(cluster.dir, name)
        self.log = os.path.join(cluster.dir, name + ".log")
        self.running = False

    @property
    def dsn(self):
        """A libpq keyword/value connection string (TCP on 127.0.0.1)."""
        return f"host=127.0.0.1 port={self.port} dbname=app user=postgres"

    def connect(self, dbname="app", autocommit=True):
        c = psycopg2.connect(host="127.0.0.1", port=self.port, dbname=dbname, user="postgres", connect_timeout=5)
        c.autocommit = autocommit
        return c

    def query(self, sql, params=None, dbname="app"):
        c = self.connect(dbname)
        try:
            with c.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else None
        finally:
            c.close()

    def start(self):
        self.cluster._run([f"{PG_BIN}/pg_ctl", "-D", self.data, "-l", self.log, "-o", f"-p {self.port}", "-W",
                           "start"])
        self.running = True

    def wait_ready(self, deadline):
        while True:
            r = subprocess.run([f"{PG_BIN}/pg_isready", "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"],
                               capture_output=True)
            if r.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"postgres {self.name} on port {self.port} not ready:\n{self.log_text()}")
            time.sleep(0.05)   # polling interval of a bounded readiness wait, not synchronisation

    def stop(self, mode="fast"):
        if not self.running:
            return
        self.cluster._run([f"{PG_BIN}/pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop"], check=False)
        self.running = False

    def restart(self, timeout=START_TIMEOUT):
        self.start()
        self.wait_ready(time.monotonic() + timeout)

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""


class PgCluster:
    """`shards` primaries with customer ranges [i*per_shard+1, (i+1)*per_shard]; `replica_of` (a shard index or
    None) gets one streaming replica. `customers` customers a shard are seeded (from the range's start).
    Attributes after start(): primaries [Server], replica (Server or None), ranges [(lo, hi)]."""

    def __init__(self, shards=3, replica_of=0, per_shard=1000, customers=12, directory=None):
        self.shards = shards
        self.replica_of = replica_of
        self.per_shard = per_shard
        self.customers = customers
        self.dir = directory or tempfile.mkdtemp(prefix="virex-pg-")
        self.user = None
        if os.geteuid() == 0:
            self.user = pwd.getpwnam("nobody")
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self.ranges = [(i * per_shard + 1, (i + 1) * per_shard) for i in range(shards)]
        self.primaries = [Server(self, f"shard{i}", _free_port()) for i in range(shards)]
        self.replica = Server(self, f"shard{replica_of}-replica", _free_port()) if replica_of is not None else None

    # -- processes as the unprivileged user --
    def _run(self, argv, check=True):
        kw = {}
        if self.user:
            kw = dict(user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[])
        r = subprocess.run(argv, capture_output=True, text=True, cwd=self.dir, timeout=120,
                           env={**os.environ, "HOME": self.dir, "LC_ALL": "C.UTF-8"}, stdin=subprocess.DEVNULL, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def _popen(self, argv):
        kw = {}
        if self.user:
            kw = dict(user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[])
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=self.dir,
                                env={**os.environ, "HOME": self.dir, "LC_ALL": "C.UTF-8"}, stdin=subprocess.DEVNULL,
                                **kw)

    def _settings(self, server):
        return (f"listen_addresses = '127.0.0.1'\nport = {server.port}\nunix_socket_directories = '{self.dir}'\n"
                "fsync = off\nfull_page_writes = off\nshared_buffers = 16MB\n"
                "max_connections = 100\nwal_level = replica\nmax_wal_senders = 4\nhot_standby = on\n"
                "wal_receiver_status_interval = 1s\nlog_min_messages = warning\nlog_connections = off\n"
                "timezone = 'UTC'\n")

    # -- lifecycle --
    def start(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        try:
            inits = [(s, self._popen([f"{PG_BIN}/initdb", "-D", s.data, "-U", "postgres", "--auth=trust",
                                      "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions"]))
                     for s in self.primaries]
            for s, p in inits:
                out, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
                if p.returncode != 0:
                    raise AssertionError(f"initdb {s.name} failed:\n{out}")
                with open(os.path.join(s.data, "postgresql.auto.conf"), "a") as f:
                    f.write(self._settings(s))
            for s in self.primaries:
                s.start()
            for s in self.primaries:
                s.wait_ready(deadline)
            for i, s in enumerate(self.primaries):
                self._init_db(s, [i])
            self._init_reference()
            if self.replica:
                self._start_replica(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _init_db(self, server, shard_indexes, dbname="app"):
        c = server.connect("postgres")
        with c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {dbname}")
        c.close()
        c = server.connect(dbname, autocommit=False)
        with c.cursor() as cur:
            cur.execute(SCHEMA)
            for i in shard_indexes:
                lo, hi = self.ranges[i]
                cust, orders = seed_rows(lo, hi, self.customers)
                cur.executemany("INSERT INTO customers VALUES (%s, %s, %s, %s, %s)", cust)
                cur.executemany("INSERT INTO orders VALUES (%s, %s, %s, %s, %s, %s, to_timestamp(%s))",
                                orders)
            # New orders get ids far above the seeded ones and distinct per shard.
            cur.execute("SELECT setval('orders_id_seq', %s)", ((shard_indexes[0] + 1) * 10**12,))
        c.commit()
        c.close()

    def _init_reference(self):
        """Database `reference` on shard 0's server: every shard's seed rows in one place."""
        self._init_db(self.primaries[0], list(range(self.shards)), dbname="reference")

    def _start_replica(self, deadline):
        p = self.primaries[self.replica_of]
        r = self.replica
        self._run([f"{PG_BIN}/pg_basebackup", "-h", "127.0.0.1", "-p", str(p.port), "-U", "postgres", "-D", r.data,
                   "-R", "-c", "fast", "-X", "stream"])
        with open(os.path.join(r.data, "postgresql.auto.conf"), "a") as f:
            f.write(f"port = {r.port}\n")
        os.chmod(r.data, 0o700)
        r.start()
        r.wait_ready(deadline)
        self.wait_replica_caught_up(deadline - time.monotonic())

    def wait_replica_caught_up(self, timeout=30.0):
        """Waits until the replica has replayed everything the primary has written so far."""
        p = self.primaries[self.replica_of]
        target = p.query("SELECT pg_current_wal_insert_lsn()::text")[0][0]
        deadline = time.monotonic() + timeout
        while True:
            got = self.replica.query("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,))[0][0]
            if got:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"replica did not reach {target}:\n{self.replica.log_text()}")
            time.sleep(0.05)

    def servers(self):
        return self.primaries + ([self.replica] if self.replica else [])

    def stop(self):
        for s in self.servers():
            try:
                s.stop("immediate")
            except Exception:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def logs(self):
        return "\n".join(f"--- {s.name} ---\n{s.log_text()}" for s in self.servers())

    # -- for configs and assertions --
    def shard_of(self, customer_id):
        for i, (lo, hi) in enumerate(self.ranges):
            if lo <= customer_id <= hi:
                return i
        return None

    def reference(self, sql, params=None):
        return self.primaries[0].query(sql, params, dbname="reference")

    def sync_reference(self):
        """Makes the reference database hold exactly the shards' current rows (after tests wrote to them)."""
        rows_c, rows_o = [], []
        for s in self.primaries:
            rows_c += s.query("SELECT id, name, region, vip, created_at FROM customers")
            rows_o += s.query("SELECT id, customer_id, total_cents, amount, status, paid, created_at FROM orders")
        c = self.primaries[0].connect("reference", autocommit=False)
        with c.cursor() as cur:
            cur.execute("TRUNCATE orders, customers")
            cur.executemany("INSERT INTO customers VALUES (%s, %s, %s, %s, %s)", rows_c)
            cur.executemany("INSERT INTO orders VALUES (%s, %s, %s, %s, %s, %s, %s)", rows_o)
        c.commit()
        c.close()

    def databases_yaml(self, pool="{max_per_endpoint: 4, acquire_timeout: 2s, statement_timeout: 5s}",
                       replica=True, extra_shard="", indent=""):
        """The `databases:` section for these shards (the replica listed under its shard when `replica`)."""
        lines = [f"{indent}databases:", f"{indent}  pool: {pool}", f"{indent}  shards:"]
        for i, (s, (lo, hi)) in enumerate(zip(self.primaries, self.ranges)):
            reps = f'["{self.replica.dsn}"]' if replica and self.replica and i == self.replica_of else "[]"
            lines.append(f'{indent}    - {{id: {i}, customers: [{lo}, {hi}], primary: "{s.dsn}", replicas: {reps}, '
                         f'region: r{extra_shard}}}')
        return "\n".join(lines) + "\n"

    def describe(self):
        return {"dir": self.dir, "ranges": self.ranges,
                "primaries": [s.dsn for s in self.primaries],
                "replica": {"shard": self.replica_of, "dsn": self.replica.dsn} if self.replica else None}


def main():
    ap = argparse.ArgumentParser(description="Start demo PostgreSQL shards until SIGINT/SIGTERM")
    ap.add_argument("command", choices=["run"])
    ap.add_argument("--shards", type=int, default=3)
    ap.add_argument("--replica", type=int, default=0, help="shard index given one replica (-1: none)")
    ap.add_argument("--per-shard", type=int, default=10000)
    ap.add_argument("--customers", type=int, default=100, help="customers seeded per shard")
    a = ap.parse_args()
    c = PgCluster(a.shards, None if a.replica < 0 else a.replica, a.per_shard, a.customers)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    c.start()
    try:
        print(json.dumps(c.describe()), flush=True)
        while not stop:
            signal.pause()
    finally:
        c.stop()


if __name__ == "__main__":
    sys.exit(main())
