"""Signals and the service manager: SIGTERM in the middle of a big sync stops the daemon
within seconds without leaving half a message behind; sd_notify tells READY, STATUS,
WATCHDOG, RELOADING and STOPPING at the right moments."""

import os
import random
import signal
import socket
import statistics
import sys
import threading
import time
import unittest

import mirror_fakeimap as fi
import mirror_util as mu
import mmtest
from test_daemon_basic import DaemonTestCase, assert_mirrored, inbox, mbox_count, wait_for


def big_messages(n, rng):
    """n messages of 100-300 KB each."""
    return [mmtest.make_message(f"big {i}", body=mu.random_text_body(
        rng, rng.randrange(100_000, 300_000))) for i in range(n)]


class NotifyListener:
    """An AF_UNIX datagram socket standing in for the service manager: keeps every
    datagram with the time it arrived."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []          # (monotonic time, {key: value})
        self._stop = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().split("\n")
                          if "=" in line)
            with self._lock:
                self.messages.append((time.monotonic(), fields))

    def snapshot(self):
        with self._lock:
            return list(self.messages)

    def keys(self, key, since=0.0):
        """[(time, value)] of messages carrying key, after time since."""
        return [(t, m[key]) for t, m in self.snapshot() if key in m and t >= since]

    def wait(self, key, value=None, since=0.0, timeout=10):
        def found():
            for t, v in self.keys(key, since):
                if value is None or v == value:
                    return (t, v)
            return None
        return wait_for(found, timeout, what=f"notification {key}={value}")

    def close(self):
        self._stop = True
        self._thread.join(timeout=2)
        self.sock.close()


class TestSignals(DaemonTestCase):

    def test_sigterm_during_big_sync(self):
        rng = random.Random(300)
        user, password = self.fx.new_user()
        msgs = big_messages(300, rng)
        total = sum(len(m) for m in msgs)
        self.fx.append_many(user, password, "INBOX", msgs)
        acct = self.fx.account(self.tmp, user, password, name="big", idle="no")
        conf = mmtest.write_config(self.tmp, [acct])
        d = self.daemon(conf)
        path = inbox(self.tmp, "big")

        def size():
            try:
                return os.path.getsize(path)
            except FileNotFoundError:
                return 0
        # Well into the sync, far from its end.
        wait_for(lambda: size() > total // 10, 60, interval=0.005, what="sync under way")
        at_signal = size()
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        rc = d.stop(timeout=10)
        took = time.monotonic() - t0
        print(f"SIGTERM at {at_signal} of {total} bytes: exited {rc} after {took:.2f}s",
              file=sys.stderr)
        self.assertIsNotNone(rc, "still running 10 s after SIGTERM")
        self.assertLess(took, 5.0)
        self.assertEqual(rc, 0, d.tail())
        self.assertIn("stopping on signal 15", d.log())
        # What is in the mbox now is whole messages, the first ones, once each.
        partial = [e.data for e in mbox_entries_or_empty(path)]
        self.assertLess(len(partial), len(msgs), "the sync was not interrupted")
        self.assertEqual(partial, msgs[:len(partial)])

        res = mmtest.run_mboxmirror("-c", conf, "--once", timeout=300)
        self.assertEqual(res.returncode, 0, res.stderr[-3000:])
        assert_mirrored(self, path, msgs)

    def test_watchdog_keeps_beating_during_a_flood(self):
        # One busy connection must not starve the loop: the watchdog (and with it
        # signals, timers and the other accounts) gets its turn while a server sends
        # without pause.  Missing WATCHDOG_USEC gets the service killed by systemd.
        # A scripted server floods untagged responses, faster than the daemon parses
        # them, until the daemon gives up after its 3 s timeout: 3 s of reading by
        # construction, whatever the speed of the machine (a sync of real mail is
        # over before the first beat on a fast one).
        srv = fi.FakeImap([(b"/", b"INBOX", [mmtest.make_message("one")])])
        srv.hooks["UID FETCH"] = lambda conn, ctx: [("flood", b"* OK still working\r\n", 60)]
        srv.start()
        self.addCleanup(srv.stop)
        acct = {"__name__": "busy", "host": "127.0.0.1", "port": str(srv.port),
                "tls": "none", "allow_plaintext": "yes", "user": "u", "password": "p",
                "output": os.path.join(self.tmp, "out", "busy"), "idle": "no"}
        conf = mmtest.write_config(self.tmp, [acct], general={"log_level": "info",
                                                              "timeout": "3s"})
        listener = NotifyListener(os.path.join(self.tmp, "notify.sock"))
        self.addCleanup(listener.close)
        d = self.daemon(conf, env={"NOTIFY_SOCKET": listener.path,
                                   "WATCHDOG_USEC": "1000000"})
        listener.wait("READY", "1")
        m = d.wait_log(r"account busy: .*no response from .* for 3s, only (\d+) untagged",
                       timeout=30)
        t_failed = time.monotonic()
        self.assertEqual(d.stop(), 0, d.tail())
        # The flood: from the first beat after READY to the failure.
        beats = [t for t, _ in listener.keys("WATCHDOG") if t <= t_failed]
        gaps = [b - a for a, b in zip(beats, beats[1:])]
        print(f"watchdog during the flood ({m[0].group(1)} untagged responses): "
              f"{len(beats)} beats, longest gap {max(gaps, default=0):.2f}s",
              file=sys.stderr)
        self.assertGreaterEqual(len(beats), 5, beats)
        self.assertLess(max(gaps), 1.0, "the loop was starved for longer than "
                        f"WATCHDOG_USEC while reading one connection: gaps {gaps}")

    def test_sd_notify(self):
        user, password = self.fx.new_user()
        self.fx.append(user, password, "INBOX", mmtest.make_message("one"))
        acct = self.fx.account(self.tmp, user, password, name="notified", idle="yes")
        conf = mmtest.write_config(self.tmp, [acct])
        listener = NotifyListener(os.path.join(self.tmp, "notify.sock"))
        self.addCleanup(listener.close)
        d = self.daemon(conf, env={"NOTIFY_SOCKET": listener.path,
                                   "WATCHDOG_USEC": "1000000"})
        t_ready, _ = listener.wait("READY", "1")
        # Once synced, the status line says so.
        wait_for(lambda: mbox_count(inbox(self.tmp, "notified")) == 1, 20, what="sync")
        d.wait_log(r"account notified: waiting for new mail \(IDLE\)")
        listener.wait("STATUS", since=t_ready)
        statuses = [v for _, v in listener.keys("STATUS")]
        self.assertTrue(any("1 accounts" in s or "1 account" in s for s in statuses),
                        statuses)
        self.assertTrue(any("1 ok" in s for s in statuses), statuses)

        # The watchdog: about every half WATCHDOG_USEC.
        t_start = time.monotonic()

        def five_beats():
            beats = [t for t, _ in listener.keys("WATCHDOG", since=t_start)]
            return beats if len(beats) >= 5 else None
        beats = wait_for(five_beats, 10, what="five watchdog beats")
        gaps = [b - a for a, b in zip(beats, beats[1:])]
        print(f"watchdog gaps (s): {[round(g, 3) for g in gaps]}", file=sys.stderr)
        self.assertTrue(0.3 < statistics.median(gaps) < 0.8, gaps)
        self.assertLess(max(gaps), 1.0, gaps)

        # SIGHUP: RELOADING=1, then READY=1 again.
        t_hup = time.monotonic()
        d.signal(signal.SIGHUP)
        t_reloading, _ = listener.wait("RELOADING", "1", since=t_hup)
        t_ready2, _ = listener.wait("READY", "1", since=t_reloading)
        self.assertGreaterEqual(t_ready2, t_reloading)
        self.assertTrue(any("MONOTONIC_USEC" in m for t, m in listener.snapshot()
                            if "RELOADING" in m))
        d.wait_log(r"configuration reloaded: 0 added, 0 removed, 0 changed")

        # SIGTERM: STOPPING=1, and an orderly exit.
        t_term = time.monotonic()
        rc = d.stop()
        listener.wait("STOPPING", "1", since=t_term, timeout=2)
        self.assertEqual(rc, 0, d.tail())
        # The order of the whole conversation.
        seq = [k for _, m in listener.snapshot() for k in m
               if k in ("READY", "RELOADING", "STOPPING")]
        self.assertEqual(seq, ["READY", "RELOADING", "READY", "STOPPING"], seq)


def mbox_entries_or_empty(path):
    try:
        return mmtest.read_mbox(path)
    except FileNotFoundError:
        return []


if __name__ == "__main__":
    unittest.main(verbosity=2)
