"""One process at a time syncs an account: a second mboxmirror (a manual --once while
the daemon or a timer's run is in progress) finds the account's lock held, ends at once
with exit 1 and a message naming the holder's pid, and writes nothing: not the state
(not even its last-error fields), not the mbox.  The run that holds the lock completes
as if alone, every message exactly once.

The scripted server (mirror_fakeimap) holds the first run's body fetch until the test
releases it, so that run is certainly in progress while the second one starts."""

import hashlib
import os
import re
import subprocess
import threading
import time
import unittest

import mmtest
import test_mirror_hostile as th

# The refused run must end long before the held one could: it never connects.
QUICK = 15


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class AccountLock(unittest.TestCase):
    def setUp(self):
        self.tmpdir = mmtest.TempDir()
        self.tmp = self.tmpdir.__enter__()
        self.env = None
        self.first = None

    def tearDown(self):
        if self.first is not None and self.first.poll() is None:
            self.first.kill()
            self.first.communicate()
        if self.env is not None:
            self.env.srv.stop()
        self.tmpdir.__exit__(None, None, None)

    @staticmethod
    def server_errors(env):
        return env.srv.errors

    def test_second_process_is_refused_and_writes_nothing(self):
        e = self.env = th.Env(self, self.tmp, counts={b"INBOX": 2})
        res, _ = e.run()
        e.assert_ok(res, messages=2)
        e.add(b"INBOX", 3)

        entered = threading.Event()
        release = threading.Event()

        def hold(conn, ctx):
            entered.set()
            release.wait(120)
            return None         # then answer as usual
        e.srv.hooks["UID FETCH"] = th.on_body_fetch(hold)

        self.first = subprocess.Popen(
            [os.environ["MBOXMIRROR"], "-c", e.conf, "--once", "-v"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            errors="replace", stdin=subprocess.DEVNULL)
        self.assertTrue(entered.wait(60), "the first run never asked for the bodies")
        self.assertIsNone(self.first.poll())

        state_dir = os.path.join(self.tmp, "state", th.ACCOUNT)
        state = os.path.join(state_dir, "state")
        before = (digest(state), os.stat(state).st_mtime_ns)
        mbox_before = e.mbox(b"INBOX")
        fetches = sum(1 for v, _ in e.srv.log if v == b"UID FETCH")

        t0 = time.monotonic()
        res, _ = e.run(bound=QUICK)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertLess(time.monotonic() - t0, QUICK)
        self.assertIn(f"{th.ACCOUNT}: FAILED", res.stdout)
        self.assertRegex(res.stderr, rf"account {th.ACCOUNT}: another mboxmirror process "
                         rf"\(pid {self.first.pid}\) is syncing this account; skipped")
        # It did not even log in: nothing asked of the server, nothing written.
        self.assertEqual(sum(1 for v, _ in e.srv.log if v == b"UID FETCH"), fetches)
        self.assertEqual((digest(state), os.stat(state).st_mtime_ns), before)
        self.assertFalse(os.path.exists(os.path.join(state_dir, "state.tmp")))
        self.assertEqual(e.mbox(b"INBOX"), mbox_before)
        self.assertIsNone(self.first.poll(), "the first run did not wait for the test")

        release.set()
        out, err = self.first.communicate(timeout=th.BOUND)
        self.assertEqual(self.first.returncode, 0, err[-4000:])
        self.assertIsNone(th.SANITIZER.search(err), err[-4000:])
        self.assertRegex(out, rf"{th.ACCOUNT}: ok: .* 3 messages")
        e.assert_exact(b"INBOX")
        # And the lock is free again: a later run proceeds and adds nothing.
        e.follow_up()


if __name__ == "__main__":
    unittest.main(verbosity=2)
