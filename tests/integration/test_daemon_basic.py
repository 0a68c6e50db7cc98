"""The daemon with several accounts: IDLE push, interval polling, failing accounts and
their backoff.

Also home of the small harness the other test_daemon_* modules import (Daemon,
wait_for, mbox_entries, ...): the daemon runs as a child process with its log in a
file, and is always ended in tearDown (SIGTERM first).
"""

import fcntl
import os
import re
import signal
import subprocess
import sys
import time
import unittest

import mirror_util
import mmtest
from mmtest import wait_for

SANITIZER_ERROR = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error:")


def binary():
    path = os.environ.get("MBOXMIRROR")
    if not path or not os.access(path, os.X_OK):
        raise AssertionError(f"MBOXMIRROR does not name the built mboxmirror ({path!r})")
    return path


def mbox_entries(path):
    """read_mbox(path), or [] while the file does not exist yet."""
    try:
        return mmtest.read_mbox(path)
    except FileNotFoundError:
        return []


def mbox_count(path):
    """Messages in path, cheaply (counts From_ lines at entry starts)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return 0
    if not data:
        return 0
    return data.startswith(b"From ") + data.count(b"\n\nFrom ")


def inbox(tmp, account):
    return os.path.join(tmp, "out", account, "INBOX.mbox")


def assert_mirrored(test, path, messages):
    """The mbox holds exactly messages (server bytes), once each, in order, byte for
    byte (mirror_util.assert_mbox_holds)."""
    mirror_util.assert_mbox_holds(test, path, messages)


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def cpu_ticks(pid):
    """utime + stime of pid in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class Daemon:
    """mboxmirror -c conf in the foreground, its stderr (the log) in tmp/daemon.log."""

    def __init__(self, tmp, conf, env=None, args=()):
        self.tmp = tmp
        self.conf = conf
        self.log_path = os.path.join(tmp, "daemon.log")
        full_env = dict(os.environ)
        full_env.pop("NOTIFY_SOCKET", None)
        full_env.pop("WATCHDOG_USEC", None)
        full_env.pop("JOURNAL_STREAM", None)
        full_env.update(env or {})
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([binary(), "-c", conf] + list(args),
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, env=full_env)
        self.pid = self.proc.pid

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")

    def log_offset(self):
        return os.path.getsize(self.log_path)

    def log_since(self, offset):
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def wait_log(self, pattern, timeout=20, since=0, count=1):
        """Waits until the log after offset since holds count matches of the regular
        expression; returns the list of matches.  Fails at once if the daemon exits."""
        rx = re.compile(pattern, re.MULTILINE)

        def matched():
            found = list(rx.finditer(self.log_since(since)))
            if len(found) >= count:
                return found
            if not self.alive():
                raise AssertionError(f"daemon exited ({self.proc.returncode}) before "
                                     f"the log matched {pattern!r}:\n{self.tail()}")
            return None
        return wait_for(matched, timeout, what=lambda: f"the log to match {pattern!r} "
                        f"{count} times:\n{self.tail()}")

    def tail(self, n=60):
        return "\n".join(self.log().splitlines()[-n:])

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=10):
        """SIGTERM, then the exit status (None if it had to be killed)."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def end(self):
        """Ends the daemon for good: SIGTERM, so that it exits through its normal path
        (and a coverage build writes its data), SIGKILL only if it is still running
        10 s later.  Returns what stop() returns."""
        rc = self.stop()
        self._log.close()
        return rc

    def sanitizer_report(self):
        m = SANITIZER_ERROR.search(self.log())
        return self.tail(80) if m else None


class DaemonTestCase(unittest.TestCase):
    """Starts daemons through self.daemon(); ends them (SIGTERM, then SIGKILL if need
    be) in tearDown; fails a test whose daemon reported a sanitizer error."""

    fixture = None
    # Whether the test takes turns with the other daemon tests that do (the same as
    # the ctest resource lock "daemon" in tests/integration/CMakeLists.txt): those
    # that measure timings or load both cores.
    takes_turns = True

    @classmethod
    def setUpClass(cls):
        if DaemonTestCase.fixture is None:
            DaemonTestCase.fixture = mmtest.Fixture()
        cls.fx = DaemonTestCase.fixture

    def setUp(self):
        # Some daemon tests load both cores for seconds (a hundred accounts, 60 MB
        # syncs), others measure how fast pushed mail arrives: they take turns, also
        # when run by hand beside each other.
        if self.takes_turns:
            self._turn = open(os.path.join(self.fx.dir, "daemon-tests.lock"), "a")
            fcntl.flock(self._turn, fcntl.LOCK_EX)
            self.addCleanup(self._turn.close)
        self._daemons = []
        self._tmp = mmtest.TempDir()
        self.tmp = self._tmp.__enter__()

    def tearDown(self):
        reports, hung = [], []
        for d in self._daemons:
            if d.end() is None:
                hung.append(d.tail())
            rep = d.sanitizer_report()
            if rep:
                reports.append(rep)
        if os.environ.get("MM_KEEP_TMP") is None and reports:
            os.environ["MM_KEEP_TMP"] = "1"
        self._tmp.__exit__(None, None, None)
        if reports:
            self.fail("sanitizer error in the daemon:\n" + "\n---\n".join(reports))
        if hung:
            self.fail("the daemon did not exit within 10 s of SIGTERM:\n"
                      + "\n---\n".join(hung))

    def daemon(self, conf, env=None, args=()):
        d = Daemon(self.tmp, conf, env, args)
        self._daemons.append(d)
        return d

    def proxy(self, plan=(), source=0):
        """A started FaultProxy to the fixture's IMAPS port, closed in cleanup; its
        connections to the server come from loopback_address(source)."""
        from faultproxy import FaultProxy, loopback_address
        p = FaultProxy(self.fx.host, self.fx.imaps_port, plan,
                       source=loopback_address(source)).start()
        self.addCleanup(p.close)
        return p

    def new_account(self, name, **keys):
        """A fresh user and its account section: (account dict, user, password)."""
        user, password = self.fx.new_user()
        return self.fx.account(self.tmp, user, password, name=name, **keys), user, password


def retry_delays(text, account):
    """The "retrying in Ns" delays logged for account, in order."""
    rx = re.compile(rf"account {re.escape(account)}\b.*retrying in (\d+)s")
    return [int(m.group(1)) for m in rx.finditer(text)]


class TestManyAccounts(DaemonTestCase):

    def test_push_poll_and_failing_accounts(self):
        fx = self.fx
        # The good accounts and the one with the wrong password reach the server
        # from different addresses: Dovecot delays every login from an address for
        # 2-15 s after a failed one, which would hold the good ones up.
        good = str(self.proxy(source=0).port)
        idle_names = ["push1", "push2"]
        accts, creds, sent = [], {}, {}
        for name in idle_names:
            a, u, p = self.new_account(name, idle="yes", interval="10m", port=good)
            accts.append(a)
            creds[name] = (u, p)
        a, u, p = self.new_account("poll", idle="no", interval="3s", port=good)
        accts.append(a)
        creds["poll"] = (u, p)
        # Mail waiting before the daemon starts.
        for name, (u, p) in creds.items():
            sent[name] = [mmtest.make_message(f"before {name}")]
            fx.append(u, p, "INBOX", sent[name][0])
        bad, _, _ = self.new_account("badpass", idle="yes",
                                     port=str(self.proxy(source=1).port))
        bad["password_file"] = os.path.join(self.tmp, "badpass.wrong")
        with open(bad["password_file"], "w") as f:
            f.write("not-the-password\n")
        os.chmod(bad["password_file"], 0o600)
        from faultproxy import closed_port
        closed = fx.account(self.tmp, "nobody", "x", name="closed", idle="no",
                            port=str(closed_port()))
        conf = mmtest.write_config(self.tmp, accts + [bad, closed], general={
            "retry_min": "1s", "retry_max": "1h", "timeout": "5s"})
        d = self.daemon(conf)

        # The first sync of every good account, and push armed on the IDLE ones.
        for name in creds:
            wait_for(lambda: mbox_count(inbox(self.tmp, name)) == 1, 20,
                     what=f"first sync of {name}")
        for name in idle_names:
            d.wait_log(rf"account {name}: waiting for new mail \(IDLE\)")

        # Push: delivered mail is mirrored within 2 s.
        latencies = {}
        for round_ in range(2):
            for name in idle_names:
                u, p = creds[name]
                msg = mmtest.make_message(f"pushed {round_} {name}")
                sent[name].append(msg)
                off = d.log_offset()
                t0 = time.monotonic()
                fx.append(u, p, "INBOX", msg)
                n = len(sent[name])
                wait_for(lambda: mbox_count(inbox(self.tmp, name)) == n, 10,
                         interval=0.01, what=f"pushed mail for {name}")
                latencies.setdefault(name, []).append(time.monotonic() - t0)
                # The sync ends before the next round starts.
                d.wait_log(rf"account {name}: 1 new message ", since=off)
        print(f"push latency (s): {latencies}", file=sys.stderr)
        for name, lat in latencies.items():
            for x in lat:
                self.assertLess(x, 2.0, f"{name}: push latency {lat}\n{d.tail(150)}")

        # Polling: within the 3 s interval (+ slack for jitter and the sync).
        u, p = creds["poll"]
        msg = mmtest.make_message("polled")
        sent["poll"].append(msg)
        t0 = time.monotonic()
        fx.append(u, p, "INBOX", msg)
        wait_for(lambda: mbox_count(inbox(self.tmp, "poll")) == 2, 6, interval=0.05,
                 what="polled mail")
        poll_latency = time.monotonic() - t0
        print(f"poll latency (s): {poll_latency:.2f}", file=sys.stderr)
        self.assertLess(poll_latency, 3 * 1.05 + 1.5)

        # The closed port: retries with growing delays (1, 2, 4, ... s with 20 %
        # jitter, so the third is at least 3 s where the first is at most 1).
        d.wait_log(r"account closed\b.*retrying in \d+s", timeout=30, count=3)
        delays = retry_delays(d.log(), "closed")
        self.assertGreaterEqual(len(delays), 3, d.tail())
        self.assertEqual(delays, sorted(delays), f"delays shrink: {delays}")
        self.assertGreater(delays[2], delays[0], f"delays do not grow: {delays}")
        self.assertLessEqual(delays[0], 2, f"first retry not after retry_min: {delays}")
        # The wrong password: logged as an authentication failure, backing off
        # slowly (10 x retry_min).
        m = d.wait_log(r"account badpass\b.*retrying in (\d+)s \(failure 1, "
                       r"authentication: backing off slowly[^\n]*")
        self.assertGreaterEqual(int(m[0].group(1)), 7, m[0].group(0))
        bad_delays = retry_delays(d.log(), "badpass")
        self.assertTrue(all(x >= 7 for x in bad_delays),
                        f"the auth failure was retried at the fast pace: {bad_delays}")

        # The good accounts were not disturbed: each mail mirrored exactly once.
        for name in creds:
            assert_mirrored(self, inbox(self.tmp, name), sent[name])
        # ... and push still works after all the failures around it.
        u, p = creds["push1"]
        msg = mmtest.make_message("late push")
        sent["push1"].append(msg)
        t0 = time.monotonic()
        fx.append(u, p, "INBOX", msg)
        wait_for(lambda: mbox_count(inbox(self.tmp, "push1")) == len(sent["push1"]), 10,
                 interval=0.01, what="late push")
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertTrue(d.alive())
        self.assertEqual(d.stop(), 0, d.tail())
        for name in creds:
            assert_mirrored(self, inbox(self.tmp, name), sent[name])
        self.assertFalse(os.path.exists(inbox(self.tmp, "badpass")))


class TestPushRaces(DaemonTestCase):

    def test_mail_arriving_while_push_connects(self):
        # Mail that comes after a sync looked at INBOX but before the push
        # connection has examined it must not wait for the next poll.
        from faultproxy import Delay, Pass
        fx = self.fx
        user, password = fx.new_user()
        first = mmtest.make_message("first")
        fx.append(user, password, "INBOX", first)
        # Connection 0: the first sync; connection 1: the push connection, whose
        # greeting the proxy holds back for 2 s.
        proxy = self.proxy([Pass(), Delay(2.0)])
        acct = fx.account(self.tmp, user, password, name="racy", idle="yes",
                          interval="10m", port=str(proxy.port))
        conf = mmtest.write_config(self.tmp, [acct])
        d = self.daemon(conf)
        d.wait_log(r"account racy: 1 new message ")
        self.assertTrue(proxy.wait(lambda p: len(p.conns) >= 2, 10), d.tail())
        second = mmtest.make_message("second")
        fx.append(user, password, "INBOX", second)
        self.assertEqual(proxy.conns[1].down, 0, "the push connection was too quick")
        d.wait_log(r"account racy: waiting for new mail \(IDLE\)")
        wait_for(lambda: mbox_count(inbox(self.tmp, "racy")) == 2, 3,
                 what="mail that came while push was connecting")
        # And push works from there on.
        third = mmtest.make_message("third")
        fx.append(user, password, "INBOX", third)
        wait_for(lambda: mbox_count(inbox(self.tmp, "racy")) == 3, 2, interval=0.01,
                 what="pushed mail")
        self.assertEqual(d.stop(), 0, d.tail())
        assert_mirrored(self, inbox(self.tmp, "racy"), [first, second, third])

    def test_push_login_refused_backs_off(self):
        # The password went wrong while push was connected: the push connection
        # must not hammer the server with logins at the fast retry pace.
        fx = self.fx
        user, password = fx.new_user()
        proxy = self.proxy(source=1)
        acct = fx.account(self.tmp, user, password, name="locked", idle="yes",
                          interval="10m", port=str(proxy.port))
        conf = mmtest.write_config(self.tmp, [acct], general={"retry_min": "1s",
                                                              "retry_max": "2s"})
        d = self.daemon(conf)
        d.wait_log(r"account locked: waiting for new mail \(IDLE\)")
        open_conns = lambda p: [c for c in p.conns if not c.closed.is_set()]
        self.assertTrue(proxy.wait(lambda p: len(open_conns(p)) == 1, 10),
                        "the sync after push came up did not end")
        with open(acct["password_file"], "w") as f:
            f.write("wrong-now\n")
        server_off = fx.log_offset()
        off = d.log_offset()
        open_conns(proxy)[0].close()
        d.wait_log(r"account locked: push connection: .*push is off until a sync "
                   r"succeeds", since=off)
        # At the fast pace (retry_max 2 s, 20 % jitter) another login would come
        # within 2.4 s (and its TLS handshake and the server's log line soon after).
        time.sleep(3.5)
        failures = re.findall(rf"{re.escape(user)}\b.*(?:[Pp]assword mismatch|auth "
                              r"failed|Authentication failed)", fx.log_since(server_off))
        self.assertEqual(len(failures), 1, fx.log_since(server_off))
        after = d.log_since(off).split("push is off until a sync succeeds", 1)[1]
        self.assertNotIn("account locked: connecting", after)
        self.assertTrue(d.alive())


if __name__ == "__main__":
    unittest.main(verbosity=2)
