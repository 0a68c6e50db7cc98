"""Exactly once after kill -9 at many points of a large sync, and a prompt, clean stop
on SIGTERM and SIGINT (DESIGN.md section 5)."""

import os
import random
import shutil
import signal
import time
import unittest

import mmtest
import mirror_util as mu
from faultproxy import FaultProxy, Stall

N_MESSAGES = 400
# Where the kill -9 loop holds the server's stream and kills the client: bytes of the
# server's side of the connection (TLS included), from inside the handshake to deep
# into the fetch.  Runs resume in groups of four (see test_kill9_loop); no group pulls
# more than a fraction of the corpus (about 70 MB), so every point lies inside a sync.
KILL_AT_BYTES = [300, 3_000, 30_000, 2_000_000,
                 6_000, 150_000, 700_000, 4_000_000,
                 1_500, 60_000, 1_000_000, 9_000_000,
                 12_000]


def big_corpus(seed=7):
    rng = random.Random(seed)
    msgs = []
    for i in range(N_MESSAGES):
        size = rng.randrange(50 * 1024, 300 * 1024)
        extra = ["Return-Path: <list-%d@example.net>" % i] if i % 3 == 0 else []
        msgs.append(mmtest.make_message(f"bulk {i}", mu.random_text_body(rng, size),
                                        extra_headers=extra))
    return msgs


class Crash(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        fx = cls.fx = mmtest.Fixture()
        cls.user, cls.pw = fx.new_user("crash")
        fx.create_mailbox(cls.user, cls.pw, "Bulk")
        fx.append_many(cls.user, cls.pw, "Bulk", big_corpus(),
                       date='"02-Jan-2024 03:04:05 +0000"')
        fx.append_many(cls.user, cls.pw, "INBOX",
                       [mmtest.make_message(f"inbox {i}", "From x\r\n") for i in range(20)])
        cls.server = {b: mu.server_messages(fx, cls.user, cls.pw, b)
                      for b in ("Bulk", "INBOX")}
        cls.expected = {b: mu.expected_mbox(m) for b, m in cls.server.items()}

    def setUp(self):
        self.tmpctx = mmtest.TempDir()
        self.tmp = self.tmpctx.__enter__()
        acct = self.fx.account(self.tmp, self.user, self.pw)
        self.conf = mmtest.write_config(self.tmp, [acct], general={"log_level": "info"})

    def tearDown(self):
        self.tmpctx.__exit__(None, None, None)

    def reset(self):
        for d in ("out", "state"):
            shutil.rmtree(os.path.join(self.tmp, d), ignore_errors=True)

    def assert_prefix(self, box, when):
        """Whatever a killed run left is a prefix of the complete mirror: it appends
        in order and never writes anything else."""
        try:
            with open(mu.mbox_path(self.tmp, "test", box), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return
        exp = self.expected[box]
        if not exp.startswith(data):
            mu.assert_bytes_equal(self, data, exp[:len(data)], f"{box} after {when}")

    def assert_complete(self, readback=False):
        for box, msgs in self.server.items():
            mu.assert_mirror_exact(self, self.fx, self.user, self.pw, box,
                                   mu.mbox_path(self.tmp, "test", box), messages=msgs,
                                   readback=readback)

    def clean_run(self):
        res = mmtest.run_mboxmirror("-c", self.conf, "--once", timeout=300)
        self.assertEqual(res.returncode, 0, res.stderr)
        return res

    def test_kill9_then_next_run_succeeds(self):
        """Killed while appending (so holding the mbox locks): the very next run
        completes; the dotlock a dead process left does not stop it."""
        proc = mu.start_mboxmirror("-c", self.conf, "--once")
        reached = mu.wait_file_size(mu.mbox_path(self.tmp, "test", "Bulk"), 1 << 20, proc)
        mu.kill(proc)
        self.assertTrue(reached, "the sync ended before the mbox reached 1 MB")
        self.assert_prefix("Bulk", "kill -9")
        self.clean_run()
        self.assert_complete()

    def test_kill9_loop(self):
        """Kill -9 at many points of a sync, each run going on from where the last
        one died; now and then from scratch.  Then one clean run: exactly once.  Each
        run takes over the locks the killed one left.  A proxy holds the server's
        stream at the kill point, so every kill lands in a running sync."""
        for i, at in enumerate(KILL_AT_BYTES):
            if i % 4 == 0:
                self.reset()
            with FaultProxy(self.fx.host, self.fx.imaps_port, [Stall(at_byte=at)]) as proxy:
                acct = self.fx.account(self.tmp, self.user, self.pw, port=proxy.port)
                conf = mmtest.write_config(self.tmp, [acct], filename="stalled.ini",
                                           general={"log_level": "info"})
                proc = mu.start_mboxmirror("-c", conf, "--once")
                stalled = proxy.wait(lambda p: p.faults() or proc.poll() is not None, 60)
                running = proc.poll() is None
                out, err = mu.kill(proc)
                self.assertTrue(stalled and running and proxy.faults(),
                                f"the run ended before byte {at} of the server's "
                                f"stream:\n{out}{err}")
            self.assert_prefix("Bulk", f"kill -9 at byte {at}")
            self.assert_prefix("INBOX", f"kill -9 at byte {at}")
        res = self.clean_run()
        self.assertNotIn("error", res.stderr.lower())
        self.assert_complete(readback=True)
        res = self.clean_run()
        self.assertEqual(mu.count_opened(res.stdout)[1:], (0, 0))
        self.assert_complete()

    def test_kill9_while_a_batch_is_half_written(self):
        """Killed when the mbox has grown past a commit point by some bytes: the next
        run truncates the tail and goes on."""
        for minimum in (1, 3 * 1024 * 1024, 20 * 1024 * 1024):
            self.reset()
            proc = mu.start_mboxmirror("-c", self.conf, "--once")
            reached = mu.wait_file_size(mu.mbox_path(self.tmp, "test", "Bulk"), minimum, proc)
            mu.kill(proc)
            self.assertTrue(reached, "the sync ended before the mbox reached "
                            f"{minimum} bytes")
            self.assert_prefix("Bulk", f"kill -9 at {minimum} bytes")
            self.clean_run()
            self.assert_complete()

    def stop_with(self, sig):
        self.reset()
        proc = mu.start_mboxmirror("-c", self.conf, "--once")
        reached = mu.wait_file_size(mu.mbox_path(self.tmp, "test", "Bulk"), 4 * 1024 * 1024,
                                    proc)
        self.assertTrue(reached, "the sync ended before the signal")
        t0 = time.monotonic()
        proc.send_signal(sig)
        try:
            out, err = proc.communicate(timeout=5)
        except Exception:
            proc.kill()
            proc.communicate()
            self.fail(f"still running 5 s after signal {sig}")
        self.assertLess(time.monotonic() - t0, 5)
        self.assertNotEqual(proc.returncode, 0)
        self.assertGreater(proc.returncode, 0, "died of the signal instead of exiting")
        self.assert_prefix("Bulk", f"signal {sig}")
        res = self.clean_run()
        self.assert_complete()
        self.assertNotIn(self.pw, out.decode(errors="replace") + err.decode(errors="replace"))
        return err.decode(errors="replace"), res

    def test_sigterm_mid_sync(self):
        self.stop_with(signal.SIGTERM)

    def test_sigint_mid_sync(self):
        self.stop_with(signal.SIGINT)


if __name__ == "__main__":
    unittest.main(verbosity=2)
