"""The PostgreSQL test harness itself (pgcluster.py): three shard primaries and a streaming replica start on free
ports as an unprivileged user, each primary holds exactly its customer range's seed rows, the reference database
holds all of them, and the replica replays a write made on its primary."""
import os
import unittest

from pgcluster import PgCluster


class PgClusterTest(unittest.TestCase):
    def test_shards_replica_and_reference(self):
        c = PgCluster(shards=3, replica_of=1, per_shard=100, customers=5)
        self.addCleanup(c.stop)
        c.start()
        total = 0
        for i, (lo, hi) in enumerate(c.ranges):
            n, cmin, cmax = c.primaries[i].query("SELECT count(*), min(customer_id), max(customer_id) FROM orders")[0]
            self.assertGreater(n, 0)
            self.assertTrue(lo <= cmin <= cmax <= hi, (i, cmin, cmax))
            total += n
            # Never the superuser's uid: the server runs as an ordinary user.
            if os.geteuid() == 0:
                owner = os.stat(c.primaries[i].data).st_uid
                self.assertNotEqual(owner, 0)
        self.assertEqual(c.reference("SELECT count(*) FROM orders")[0][0], total)
        self.assertTrue(c.replica.query("SELECT pg_is_in_recovery()")[0][0])
        new_id = c.primaries[1].query("INSERT INTO orders (customer_id, total_cents) VALUES (101, 1) RETURNING id")[0][0]
        c.wait_replica_caught_up()
        self.assertEqual(c.replica.query("SELECT total_cents FROM orders WHERE id = %s", (new_id,)), [(1,)])


if __name__ == "__main__":
    unittest.main()
