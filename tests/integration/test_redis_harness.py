"""The redis-server harness itself: a free port, PING readiness, RESP round trips (binary values, PX TTLs),
kill + restart on the same port, CLIENT KILL, and two servers side by side on different ports."""
import unittest

from redis_harness import RedisError, RedisServer


class RedisHarnessTest(unittest.TestCase):
    def test_start_use_kill_restart(self):
        with RedisServer() as r:
            self.assertEqual(r("SET", "k", b"\x00\xffbin", "PX", 60000), "OK")
            self.assertEqual(r("GET", "k"), b"\x00\xffbin")
            self.assertTrue(0 < r("PTTL", "k") <= 60000)
            with self.assertRaises(RedisError):
                r("NOSUCHCOMMAND")
            port = r.port
            r.kill()
            with self.assertRaises(OSError):
                r("PING")
            r.restart()
            self.assertEqual(r.port, port)
            self.assertIsNone(r("GET", "k"), "no persistence: a restarted server is empty")

    def test_client_kill_drops_other_connections(self):
        with RedisServer() as r:
            victim = r.client()
            self.assertEqual(victim("CLIENT", "SETNAME", "victim"), "OK")
            self.assertGreaterEqual(r("CLIENT", "KILL", "TYPE", "normal"), 1)
            with self.assertRaises((ConnectionError, OSError)):
                victim("PING")
            victim.close()

    def test_two_servers_get_different_ports(self):
        with RedisServer() as a, RedisServer() as b:
            self.assertNotEqual(a.port, b.port)
            a("SET", "x", "1")
            self.assertIsNone(b("GET", "x"))


if __name__ == "__main__":
    unittest.main()
