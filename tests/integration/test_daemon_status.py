"""--status and --status --json after the daemon ran with one good and one failing
account: what the state files say, for people and for scripts, and the exit status.
A server's error text reaches neither the state file with the password in it nor the
terminal with its control characters."""

import json
import os
import re
import signal
import time
import unittest

import mirror_fakeimap as fi
import mmtest
from faultproxy import closed_port
from test_daemon_basic import DaemonTestCase, inbox, mbox_count, wait_for


def parse_iso(s):
    return time.mktime(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone


class TestStatus(DaemonTestCase):
    # Light and without timings: runs beside the other daemon tests.
    takes_turns = False

    def test_status_after_a_run_with_a_failing_account(self):
        fx = self.fx
        good, user, password = self.new_account("good", idle="no", interval="10m")
        msgs = [mmtest.make_message(f"m{i}") for i in range(3)]
        fx.append_many(user, password, "INBOX", msgs)
        bad = fx.account(self.tmp, "nobody", "x", name="bad", idle="no",
                         port=str(closed_port()))
        conf = mmtest.write_config(self.tmp, [good, bad], general={"retry_min": "1s"})
        started = time.time()
        d = self.daemon(conf)
        wait_for(lambda: mbox_count(inbox(self.tmp, "good")) == 3, 20, what="good synced")
        # The mbox is complete before the sync is: wait for its end (and the next
        # attempt it schedules), not just for the mail.
        d.wait_log(r"account good: 3 new messages", timeout=20)
        d.wait_log(r"account bad\b.*retrying in \d+s \(failure 2", timeout=20)
        self.assertEqual(d.stop(), 0, d.tail())
        error_line = re.findall(r"error: (account bad\b.*); retrying in", d.log())[-1]

        res = mmtest.run_mboxmirror("-c", conf, "--status", "--json")
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        data = json.loads(res.stdout)
        self.assertIsInstance(data, list)
        by_name = {a["account"]: a for a in data}
        self.assertEqual(set(by_name), {"good", "bad"})
        g, b = by_name["good"], by_name["bad"]

        self.assertIs(g["ok"], True)
        self.assertIsNone(g["last_error"])
        self.assertEqual(g["consecutive_failures"], 0)
        self.assertIsNotNone(g["last_success"])
        self.assertGreaterEqual(parse_iso(g["last_success"]), int(started) - 1)
        self.assertLessEqual(parse_iso(g["last_success"]), time.time() + 1)
        self.assertEqual(g["messages"], 3)
        self.assertEqual(g["mailboxes"], 1)
        self.assertEqual(g["mbox_bytes"], os.path.getsize(inbox(self.tmp, "good")))
        self.assertIsNotNone(g["next_attempt"])
        self.assertGreater(parse_iso(g["next_attempt"]), time.time() + 60)

        self.assertIs(b["ok"], False)
        self.assertGreaterEqual(b["consecutive_failures"], 2)
        self.assertIsNone(b["last_success"])
        self.assertIsInstance(b["last_error"], str)
        self.assertTrue(b["last_error"])
        # The state keeps the error the daemon logged, without the account's name
        # (the record is the account's), and its kind for scripts.
        self.assertIn(b["last_error"], error_line)
        self.assertFalse(b["last_error"].startswith("account"), b["last_error"])
        self.assertEqual(b["last_error_kind"], "network")
        self.assertIsNone(g["last_error_kind"])
        self.assertIsNotNone(b["last_error_time"])
        self.assertGreaterEqual(parse_iso(b["last_error_time"]), int(started) - 1)
        self.assertEqual(b["messages"], 0)

        # The table, for people.
        res = mmtest.run_mboxmirror("-c", conf, "--status")
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        lines = res.stdout.splitlines()
        self.assertRegex(lines[0], r"^ACCOUNT\s+LAST SUCCESS\s+NEXT ATTEMPT")
        good_row = next(line for line in lines if line.startswith("good "))
        self.assertRegex(good_row, r"\s3\s+ok$")
        bad_rows = [line for line in lines if line.startswith("bad ")]
        self.assertEqual(len(bad_rows), 1, res.stdout)
        self.assertIn("FAILING", bad_rows[0])
        self.assertIn("never", bad_rows[0])
        self.assertIn(b["last_error"], res.stdout)
        self.assertRegex(res.stdout, rf"\({b['consecutive_failures']} in a row, network\)")

        # Only the good one: exit status 0.
        res = mmtest.run_mboxmirror("-c", conf, "--status", "--json", "-a", "good")
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertEqual([a["account"] for a in json.loads(res.stdout)], ["good"])

        # Both accounts were attempted during this run.
        for a in (g, b):
            self.assertIsNotNone(a["last_attempt"], f"{a['account']}: no last_attempt")
            self.assertGreaterEqual(parse_iso(a["last_attempt"]), int(started) - 1)


    def test_status_tells_a_running_daemon_and_a_second_one_stops(self):
        good, user, password = self.new_account("good", idle="no", interval="10m")
        conf = mmtest.write_config(self.tmp, [good])
        state_dir = os.path.join(self.tmp, "state")
        res = mmtest.run_mboxmirror("-c", conf, "--status")
        self.assertIn(f"daemon: not running on {state_dir}", res.stdout)
        d = self.daemon(conf)
        d.wait_log(r"account good: sync \w+ -> done", timeout=20)
        pid = d.proc.pid
        res = mmtest.run_mboxmirror("-c", conf, "--status")
        self.assertIn(f"daemon: running (pid {pid}) on {state_dir}", res.stdout)
        js = json.loads(mmtest.run_mboxmirror("-c", conf, "--status", "--json").stdout)
        self.assertIs(js[0]["daemon_running"], True)
        self.assertEqual(js[0]["daemon_pid"], pid)
        # A second daemon on the same state says who runs and exits.
        second = mmtest.run_mboxmirror("-c", conf, timeout=30)
        self.assertEqual(second.returncode, 1, second.stderr)
        self.assertIn(f"another mboxmirror daemon (pid {pid}) runs with the state "
                      f"directory {state_dir}", second.stderr)
        self.assertTrue(d.alive())
        # A reload onto another state directory takes the lock along.
        other = os.path.join(self.tmp, "other-state")
        other_conf = mmtest.write_config(self.tmp, [good], filename="other.ini",
                                         general={"state_dir": other})
        os.replace(other_conf, conf)
        d.signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded", timeout=20)
        res = mmtest.run_mboxmirror("-c", conf, "--status")
        self.assertIn(f"daemon: running (pid {pid}) on {other}", res.stdout)
        second = mmtest.run_mboxmirror("-c", conf, timeout=30)
        self.assertEqual(second.returncode, 1, second.stderr)
        self.assertIn(f"(pid {pid}) runs with the state directory {other}", second.stderr)
        # The same directory spelled otherwise keeps the lock: the reload goes on.
        off = d.log_offset()
        again = mmtest.write_config(self.tmp, [good], filename="again.ini",
                                    general={"state_dir": other + "/./"})
        os.replace(again, conf)
        d.signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded", timeout=20, since=off)
        self.assertNotIn("keeping the running configuration", d.log_since(off))
        old = mmtest.write_config(self.tmp, [good], filename="old.ini")
        res = mmtest.run_mboxmirror("-c", old, "--status")
        self.assertIn(f"daemon: not running on {state_dir}", res.stdout)
        self.assertEqual(d.stop(), 0, d.tail())
        res = mmtest.run_mboxmirror("-c", conf, "--status")
        self.assertIn(f"daemon: not running on {other}", res.stdout)
        js = json.loads(mmtest.run_mboxmirror("-c", conf, "--status", "--json").stdout)
        self.assertIs(js[0]["daemon_running"], False)
        self.assertNotIn("daemon_pid", js[0])


class TestStatusHostileServer(unittest.TestCase):
    """A server refuses the login with terminal escape sequences and the password
    itself in its reply (no Dovecot needed: a scripted server)."""

    PASSWORD = "Echoed-pa55word"

    def test_error_text_sanitized_and_password_masked(self):
        with mmtest.TempDir() as tmp:
            srv = fi.FakeImap([(b"/", b"INBOX", [])])
            evil = (b"\x1b[2J\x1b]0;owned\x07\x1b[31mbad password \xc2\x9b1m" +
                    self.PASSWORD.encode() + b" for u")
            srv.hooks["LOGIN"] = lambda conn, ctx: [
                ctx["tag"] + b" NO [AUTHENTICATIONFAILED] " + evil + b"\r\n"]
            srv.start()
            try:
                acct = {"__name__": "hostile", "host": "127.0.0.1",
                        "port": str(srv.port), "tls": "none", "allow_plaintext": "yes",
                        "user": "u", "auth": "login", "password": self.PASSWORD,
                        "output": os.path.join(tmp, "out", "hostile")}
                conf = mmtest.write_config(tmp, [acct])
                res = mmtest.run_mboxmirror("-c", conf, "--once", timeout=60)
            finally:
                srv.stop()
            self.assertNotEqual(res.returncode, 0, res.stderr)
            self.assertIn("bad password", res.stderr)
            self.assertNotIn(self.PASSWORD, res.stderr)

            with open(os.path.join(tmp, "state", "hostile", "state"), "rb") as f:
                state = f.read()
            self.assertIn(b"password%20%C2%9B1m********", state)
            self.assertNotIn(self.PASSWORD.encode(), state)

            text = mmtest.run_mboxmirror("-c", conf, "--status")
            js = mmtest.run_mboxmirror("-c", conf, "--status", "--json")
            for res in (text, js):
                self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
                self.assertIn("bad password", res.stdout)
                self.assertNotIn(self.PASSWORD, res.stdout)
                for c in ("\x1b", "\x07", "\x9b", "\\u001b", "\\u0007", "\\u009b"):
                    self.assertNotIn(c, res.stdout, repr(res.stdout))
            last_error = json.loads(js.stdout)[0]["last_error"]
            self.assertRegex(last_error, r"\?\[2J\?\]0;owned\?\?\[31mbad password "
                             r"\?\?1m\*{8} for u")
            self.assertIn(last_error, text.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
