"""A sync over a slow link (a scripted server that paces its FETCH answers): commits
every couple of seconds within one batch, a progress line every 5 s with the mailbox's and the account's totals, the rate
and the time left ("info" for a first sync, "debug" for a small incremental one), and a
kill -9 in the middle that keeps every message committed before it: the next run asks
only for what comes after them and ends with every message exactly once."""

import os
import re
import threading
import time
import unittest

import mirror_fakeimap as fi
import mirror_util as mu
import mmtest

ACCOUNT = "test"
MESSAGES = 500
BODY_BYTES = 10_000
# The paced link: this many bytes, then a pause (about 100 kB/s).
CHUNK = 4096
PAUSE = 0.04
PROGRESS = re.compile(r" (info|debug): account test: mailbox INBOX: (\d+)/(\d+) "
                      r"messages, [\d.]+/[\d.]+ MB, ([\d.]+) MB/s, about \d+s left; "
                      r"account: \d+ messages?, [\d.]+ MB, mailbox 1 of 1, about \d+s "
                      r"left")


def message(uid):
    line = (b"line of message %d " % uid).ljust(76, b"x") + b"\r\n"
    body = line * (BODY_BYTES // len(line))
    return mmtest.make_message(f"slow {uid}", body.decode())


def paced(data):
    """Actions sending data at the paced rate."""
    acts = []
    for i in range(0, len(data), CHUNK):
        acts += [data[i:i + CHUNK], ("sleep", PAUSE)]
    return acts


class StderrLines:
    """Reads a process's stderr as it comes: (monotonic time, line) pairs."""

    def __init__(self, proc):
        self.lines = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc):
        for raw in proc.stderr:
            with self.lock:
                self.lines.append((time.monotonic(), raw.decode(errors="replace")))

    def matching(self, pattern):
        with self.lock:
            return [(t, m) for t, ln in self.lines for m in [pattern.search(ln)] if m]

    def text(self):
        with self.lock:
            return "".join(ln for _, ln in self.lines)


class SlowLink(unittest.TestCase):
    def setUp(self):
        self.tmpdir = mmtest.TempDir()
        self.tmp = self.tmpdir.__enter__()
        self.msgs = [message(uid) for uid in range(1, MESSAGES + 1)]
        self.srv = fi.FakeImap([(b"/", b"INBOX", self.msgs)]).start()
        self.body_fetches = []

        def hook(conn, ctx):
            if not ctx["body"]:
                return None
            self.body_fetches.append(list(ctx["uids"]))
            return paced(ctx["default"])
        self.srv.hooks["UID FETCH"] = hook
        acct = {"__name__": ACCOUNT, "host": "127.0.0.1", "port": str(self.srv.port),
                "tls": "none", "allow_plaintext": "yes", "user": "u",
                "password": "slow-secret", "output": os.path.join(self.tmp, "out")}
        self.conf = mmtest.write_config(self.tmp, [acct], general={"log_level": "info"})
        self.conf_debug = mmtest.write_config(self.tmp, [acct], filename="debug.ini")

    def tearDown(self):
        self.srv.stop()
        self.tmpdir.__exit__(None, None, None)

    def mbox(self):
        with open(os.path.join(self.tmp, "out", "INBOX.mbox"), "rb") as f:
            return f.read()

    def expected(self, uids):
        epoch = mu.internaldate_epoch(fi.DATE.decode().strip('"'))
        return mu.expected_mbox([(uid, epoch, self.msgs[uid - 1]) for uid in uids])

    def size_queries(self, since):
        """The first UIDs of the size queries ("n:* (UID RFC822.SIZE)") logged from
        index since of the server's log."""
        out = []
        for verb, args in self.srv.log[since:]:
            if (verb == b"UID" and len(args) >= 3 and args[0].upper() == b"FETCH" and
                    b"BODY" not in b" ".join(args[2:]).upper()):
                out.append(int(args[1].split(b":")[0]))
        return out

    def test_progress_every_5s_and_kill9_keeps_commits(self):
        proc = mu.start_mboxmirror("-c", self.conf, "--once")
        err = StderrLines(proc)
        try:
            got = mmtest.wait_for(lambda: len(err.matching(PROGRESS)) >= 3 or
                                  proc.poll() is not None, 40, interval=0.05,
                                  what="three progress lines")
            self.assertTrue(got and proc.poll() is None,
                            "the sync ended before three progress lines:\n" +
                            err.text())
        finally:
            mu.kill(proc)
        lines = err.matching(PROGRESS)
        self.assertGreaterEqual(len(lines), 3, err.text())
        for (t0, a), (t1, b) in zip(lines, lines[1:]):
            # Every 5 s from a timer (a loaded machine may be late, never early).
            self.assertGreater(t1 - t0, 4.0, err.text())
            self.assertLess(t1 - t0, 7.5, err.text())
        for _, m in lines:
            self.assertEqual(m.group(1), "info", "a first sync reports at info")
            self.assertEqual(int(m.group(3)), MESSAGES)
            self.assertGreater(float(m.group(4)), 0)
        # The received count only grows, and the link is slow: far from done.
        counts = [int(m.group(2)) for _, m in lines]
        self.assertEqual(counts, sorted(counts))
        self.assertLess(counts[-1], MESSAGES)
        # One batch so far (the first is a full one), and the kill came in its
        # middle: what is kept below was committed by time, not by batch.
        self.assertEqual(len(self.body_fetches), 1, self.body_fetches)
        committed_before = self.mbox()
        # The next run keeps what was committed: it asks only for what follows it.
        seen = len(self.srv.log)
        self.srv.hooks.clear()
        res = mmtest.run_mboxmirror("-c", self.conf, "--once", timeout=120)
        self.assertEqual(res.returncode, 0, res.stderr[-4000:])
        resumed = self.size_queries(seen)
        self.assertTrue(resumed, self.srv.log[seen:])
        kept = resumed[0] - 1
        self.assertGreater(kept, 0, "nothing was committed in about 15 s")
        self.assertTrue(committed_before.startswith(self.expected(range(1, kept + 1))))
        mu.assert_bytes_equal(self, self.mbox(), self.expected(range(1, MESSAGES + 1)),
                              "INBOX")
        self.assertEqual(self.srv.errors, [])

    def test_small_incremental_reports_at_debug(self):
        self.srv.hooks.clear()
        res = mmtest.run_mboxmirror("-c", self.conf, "--once", timeout=120)
        self.assertEqual(res.returncode, 0, res.stderr[-4000:])
        # Three new messages that take over 6 s to come (fetched with EXAMINE).
        for uid in range(MESSAGES + 1, MESSAGES + 4):
            self.msgs.append(message(uid))

        def hook(conn, ctx):
            if not ctx["body"]:
                return None
            return [("sleep", 6.5)] + paced(ctx["default"])
        self.srv.hooks["UID FETCH"] = hook
        res = mmtest.run_mboxmirror("-c", self.conf_debug, "--once", timeout=120)
        self.assertEqual(res.returncode, 0, res.stderr[-4000:])
        levels = [m.group(1) for m in PROGRESS.finditer(res.stderr)]
        self.assertTrue(levels, res.stderr[-4000:])
        self.assertEqual(set(levels), {"debug"})
        mu.assert_bytes_equal(self, self.mbox(), self.expected(range(1, MESSAGES + 4)),
                              "INBOX")
        # At info the same sync prints no progress line.
        for uid in range(MESSAGES + 4, MESSAGES + 7):
            self.msgs.append(message(uid))
        res = mmtest.run_mboxmirror("-c", self.conf, "--once", timeout=120)
        self.assertEqual(res.returncode, 0, res.stderr[-4000:])
        self.assertIsNone(PROGRESS.search(res.stderr), res.stderr)
        mu.assert_bytes_equal(self, self.mbox(), self.expected(range(1, MESSAGES + 7)),
                              "INBOX")


if __name__ == "__main__":
    unittest.main(verbosity=2)
