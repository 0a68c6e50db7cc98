"""When the state cannot be written or read.

A state save that fails after the mbox commit (the state directory's file system is
full): the run fails naming the account and the mailbox, and the next run, with room
again, ends with every message once.  A state file that is damaged (cut short, garbage,
an unknown version, a bad field): the account fails with an error naming the file and
the line, downloads nothing, and renames or rewrites nothing.

The full disk is a small tmpfs mounted over the state directory in a mount namespace
of this process's own (mmtest.private_mount_namespace): nothing outside changes."""

import errno
import os
import random
import re
import unittest

import mirror_fakeimap
import mirror_util as mu
import mmtest
from test_daemon_basic import DaemonTestCase, mbox_count


def plain_account(tmp, port, name="test"):
    return {"__name__": name, "host": "127.0.0.1", "port": str(port), "tls": "none",
            "allow_plaintext": "yes", "user": "u", "password": "p",
            "output": os.path.join(tmp, "out", name)}


def fill(directory):
    """Writes a file into directory until its file system has no room left; returns
    its path."""
    path = os.path.join(directory, "filler")
    block = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
    return path


class StateSaveFails(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        # Before any thread starts: the scripted server's threads must see the tmpfs.
        mmtest.private_mount_namespace()

    def test_full_state_disk_after_commit(self):
        rng = random.Random(4242)
        msgs = [mmtest.make_message(f"m{i}", mu.random_text_body(rng, 20000))
                for i in range(3)]
        inbox = [msgs[0]]
        srv = mirror_fakeimap.FakeImap([(b"/", b"INBOX", inbox)]).start()
        self.addCleanup(srv.stop)
        with mmtest.TempDir() as tmp:
            state_dir = os.path.join(tmp, "state")
            os.mkdir(state_dir, 0o700)
            mmtest.mount("-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", state_dir)
            try:
                self.sync_with_full_state_disk(srv, tmp, state_dir, msgs, inbox)
            finally:
                mmtest.umount(state_dir)
        self.assertEqual(srv.errors, [])

    def sync_with_full_state_disk(self, srv, tmp, state_dir, msgs, inbox):
        """Run 1 mirrors inbox; run 2 fails to save the state after its commit; run
        3, with room again, ends with msgs once each."""
        conf = mmtest.write_config(tmp, [plain_account(tmp, srv.port)])
        path = mu.mbox_path(tmp, "test", "INBOX")
        res = mmtest.run_mboxmirror("-c", conf, "--once")
        self.assertEqual(res.returncode, 0, res.stderr)
        mu.assert_mbox_holds(self, path, inbox)

        # New mail; while the server sends it, the state's file system fills up.
        inbox += msgs[1:]
        filled = []

        def fill_then_send(conn, ctx):
            if ctx["body"] and not filled:
                filled.append(fill(state_dir))
            return None
        srv.hooks["UID FETCH"] = fill_then_send
        res = mmtest.run_mboxmirror("-c", conf, "--once")
        self.assertTrue(filled, "the bodies were never fetched")
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertRegex(res.stderr, r"error: account test: mailbox INBOX: .*"
                         + re.escape(state_dir) + r".*No space left on device")
        self.assertRegex(res.stdout, r"^test: FAILED")
        # (The failure came after the mbox commit: the new mail is in the file.)
        self.assertEqual(len(mmtest.read_mbox(path)), len(msgs))
        acct_state = os.path.join(state_dir, "test")
        self.assertNotIn("state.tmp", os.listdir(acct_state))
        # The state still claims only the first message ...
        with open(os.path.join(acct_state, "state")) as f:
            self.assertRegex(f.read(), r"\tlast_uid=1\t")

        # ... and with room again the next run ends with each message once.
        os.unlink(filled[0])
        srv.hooks = {}
        res = mmtest.run_mboxmirror("-c", conf, "--once")
        self.assertEqual(res.returncode, 0, res.stderr)
        mu.assert_mbox_holds(self, path, msgs)
        res = mmtest.run_mboxmirror("-c", conf, "--once")
        self.assertEqual(res.returncode, 0, res.stderr)
        mu.assert_mbox_holds(self, path, msgs)


class DaemonStateErrors(DaemonTestCase):
    # Light and without timings that others could disturb.
    takes_turns = False

    mounted = None

    def tearDown(self):
        # Before the temporary directory goes (with the mount point in it).
        if self.mounted:
            mmtest.umount(self.mounted)
        super().tearDown()

    def test_full_state_disk_retried_until_room(self):
        """The daemon retries an account whose state cannot be saved, with backoff,
        and converges to each message once when there is room again."""
        # Before the scripted server's threads start: they must see the tmpfs.
        mmtest.private_mount_namespace()
        rng = random.Random(99)
        msgs = [mmtest.make_message(f"d{i}", mu.random_text_body(rng, 5000))
                for i in range(3)]
        inbox = [msgs[0]]
        srv = mirror_fakeimap.FakeImap([(b"/", b"INBOX", inbox)]).start()
        self.addCleanup(srv.stop)
        state_dir = os.path.join(self.tmp, "state")
        os.mkdir(state_dir, 0o700)
        mmtest.mount("-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", state_dir)
        self.mounted = state_dir
        acct = plain_account(self.tmp, srv.port)
        acct.update(idle="no", interval="1s")
        conf = mmtest.write_config(self.tmp, [acct], general={"retry_min": "1s",
                                                              "retry_max": "2s"})
        path = mu.mbox_path(self.tmp, "test", "INBOX")
        d = self.daemon(conf)
        mmtest.wait_for(lambda: mbox_count(path) == 1, 20, what="the first sync")

        filled = []

        def fill_then_send(conn, ctx):
            if ctx["body"] and not filled:
                filled.append(fill(state_dir))
            return None
        off = d.log_offset()
        srv.hooks["UID FETCH"] = fill_then_send
        inbox += msgs[1:]
        # Fails, and fails again on the retries while the disk stays full.
        d.wait_log(r"error: account test: mailbox INBOX: write [^\n]*state\.tmp: No space "
                   r"left on device; retrying in \d+s", since=off, count=2, timeout=20)
        os.unlink(filled[0])
        d.wait_log(r"account test: recovered after \d+ failed attempts", since=off,
                   timeout=20)
        mu.assert_mbox_holds(self, path, msgs)
        # Later polls find nothing new: still each message once.
        off = d.log_offset()
        d.wait_log(r"account test: sync logout -> done", since=off, count=2, timeout=10)
        self.assertEqual(d.stop(), 0, d.tail())
        mu.assert_mbox_holds(self, path, msgs)
        self.assertEqual(srv.errors, [])


    def test_corrupt_state_fails_only_its_account(self):
        """A damaged state fails its account (file:line logged, retried with
        backoff, the file left as it is); the other account goes on."""
        msgs = [mmtest.make_message("one"), mmtest.make_message("two")]
        srv = mirror_fakeimap.FakeImap([(b"/", b"INBOX", msgs)]).start()
        self.addCleanup(srv.stop)
        accts = [plain_account(self.tmp, srv.port, name) for name in ("good", "bad")]
        for a in accts:
            a.update(idle="no", interval="1h")
        conf = mmtest.write_config(self.tmp, accts, general={"retry_min": "1s",
                                                             "retry_max": "2s"})
        state = os.path.join(self.tmp, "state", "bad", "state")
        os.makedirs(os.path.dirname(state), 0o700)
        damaged = b"mboxmirror-state 1\nmailbox\tINBOX\tINBOX.mbox\tuidvalidity=zz\n"
        with open(state, "wb") as f:
            f.write(damaged)
        d = self.daemon(conf)
        d.wait_log(rf"error: account bad: {re.escape(state)}:2: mailbox line: wrong "
                   r"number of fields; retrying in \d+s", count=2, timeout=15)
        mmtest.wait_for(lambda: mbox_count(mu.mbox_path(self.tmp, "good", "INBOX")) == 2,
                        10, what="the good account's sync")
        mu.assert_mbox_holds(self, mu.mbox_path(self.tmp, "good", "INBOX"), msgs)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "out", "bad", "INBOX.mbox")))
        with open(state, "rb") as f:
            self.assertEqual(f.read(), damaged)
        # Repaired (here: removed, a fresh start), the next retry mirrors it.
        os.unlink(state)
        d.wait_log(r"account bad: recovered after \d+ failed attempts", timeout=15)
        mu.assert_mbox_holds(self, mu.mbox_path(self.tmp, "bad", "INBOX"), msgs)
        self.assertEqual(d.stop(), 0, d.tail())


class CorruptState(unittest.TestCase):

    def test_corrupt_state_fails_naming_file_and_line(self):
        msgs = [mmtest.make_message("first")]
        srv = mirror_fakeimap.FakeImap([(b"/", b"INBOX", msgs)]).start()
        self.addCleanup(srv.stop)
        with mmtest.TempDir() as tmp:
            conf = mmtest.write_config(tmp, [plain_account(tmp, srv.port)])
            res = mmtest.run_mboxmirror("-c", conf, "--once")
            self.assertEqual(res.returncode, 0, res.stderr)
            state = os.path.join(tmp, "state", "test", "state")
            with open(state, "rb") as f:
                good = f.read()
            lines = good.split(b"\n")
            self.assertEqual(lines[0], b"mboxmirror-state 1")
            self.assertEqual(lines[-2:], [b"end", b""])
            mailbox_line = next(n for n, ln in enumerate(lines, 1)
                                if ln.startswith(b"mailbox\tINBOX\t"))
            # New mail that a run from a damaged state must not fetch into anything.
            msgs.append(mmtest.make_message("second"))
            srv.log.clear()
            cases = {
                "cut mid-line": (good[:len(lines[0]) + 1 + 20], 2, "line cut short"),
                "no end line": (good[:good.rindex(b"end\n")], mailbox_line + 1,
                                "cut short (no end line)"),
                "empty": (b"", 1, "empty file"),
                "garbage": (b"\x00\xff\xfe garbage\n" * 3, 1, "NUL byte"),
                "not ours": (b"hello\nworld\n", 1, "not an mboxmirror state file"),
                "newer version": (good.replace(b"mboxmirror-state 1",
                                               b"mboxmirror-state 7"), 1,
                                  "state version 7 is not supported"),
                "bad number": (re.sub(rb"last_uid=\d+", b"last_uid=1x", good),
                               mailbox_line, "bad number"),
            }
            for what, (damaged, line, text) in cases.items():
                with self.subTest(what):
                    with open(state, "wb") as f:
                        f.write(damaged)
                    before = mu.snapshot(tmp)
                    res = mmtest.run_mboxmirror("-c", conf, "--once")
                    self.assertEqual(res.returncode, 1, res.stderr)
                    m = re.search(rf"error: account test: {re.escape(state)}:(\d+): "
                                  r"(.*)", res.stderr)
                    self.assertIsNotNone(m, res.stderr)
                    self.assertEqual(int(m.group(1)), line, m.group(0))
                    self.assertIn(text, m.group(2))
                    # Nothing written, moved or renamed.
                    self.assertEqual(mu.snapshot(tmp), before)
                    # Not even a login: the state is read before connecting.
                    self.assertEqual(srv.log, [])
                    srv.log.clear()
            # Once a person puts the good state back, the sync goes on from it.
            with open(state, "wb") as f:
                f.write(good)
            res = mmtest.run_mboxmirror("-c", conf, "--once")
            self.assertEqual(res.returncode, 0, res.stderr)
            mu.assert_mbox_holds(self, mu.mbox_path(tmp, "test", "INBOX"), msgs)
        self.assertEqual(srv.errors, [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
