"""Push without a new login: new mail announced on the IDLE connection is fetched on
that connection (DONE, EXAMINE and UID FETCH, IDLE again), so the server sees no login
for it; a failed login of another account from the same address (Dovecot's
authentication penalty) does not hold it up; mail is mirrored exactly once across
deliveries in a row and a kill -9 in the middle of such a fetch."""

import imaplib
import json
import os
import re
import signal
import socket
import time
import unittest

import mmtest
from faultproxy import FaultProxy, loopback_address
from mmtest import wait_for
from test_daemon_basic import DaemonTestCase, assert_mirrored, inbox, mbox_count
from test_daemon_metrics import account_value, read_metrics
from test_daemon_status import parse_iso

# Pushed mail is in the mbox within this many seconds.  Fetching on the IDLE
# connection takes a few round trips on loopback; a new login would take 2 s and
# more on the penalty port, so the bound tells the two apart with room for a
# loaded test machine.
PUSH_FAST = 1.5


def big_message(subject, megabytes):
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" * 1 + b"\r\n"
    body = line * (megabytes * 1024 * 1024 // len(line))
    return mmtest.make_message(subject, body=body.decode())


class TestPushFetch(DaemonTestCase):

    def push_daemon(self, name, port=None, general=None):
        """An IDLE account (polling every 10 minutes) with one message; its daemon,
        started, with push up and its first look at INBOX done; the credentials and
        the messages so far."""
        user, password = self.fx.new_user()
        first = mmtest.make_message(f"first {name}")
        self.fx.append(user, password, "INBOX", first)
        keys = {"idle": "yes", "interval": "10m"}
        if port is not None:
            keys["port"] = str(port)
        acct = self.fx.account(self.tmp, user, password, name=name, **keys)
        conf = mmtest.write_config(self.tmp, [acct], general=general)
        d = self.daemon(conf)
        d.wait_log(rf"account {name}: waiting for new mail \(IDLE\)")
        d.wait_log(rf"account {name}: push fetching -> idling")
        wait_for(lambda: mbox_count(inbox(self.tmp, name)) == 1, 10,
                 what=f"first sync of {name}")
        return d, conf, (user, password), [first]

    def deliver_and_time(self, d, name, creds, sent, msg):
        """Appends msg over IMAP (from 127.0.0.1, on the main port: not where the
        daemon comes from) and returns the seconds until it is in the mbox."""
        sent.append(msg)
        t0 = time.monotonic()
        self.fx.append(*creds, "INBOX", msg)
        wait_for(lambda: mbox_count(inbox(self.tmp, name)) >= len(sent), 10,
                 interval=0.005, what=f"pushed mail in {name}\n{d.tail()}")
        return time.monotonic() - t0

    def status(self, d, name):
        res = mmtest.run_mboxmirror("-c", d.conf, "--status", "--json", "-a", name)
        return json.loads(res.stdout)[0]

    def logins(self, user, since, source):
        """The server's login lines for user from address source since the offset."""
        return re.findall(rf"Login: user=<{re.escape(user)}>.* rip={re.escape(source)},",
                          self.fx.log_since(since))

    def test_fetched_on_the_idle_connection_without_a_login(self):
        name = "pushfetch"
        proxy = self.proxy(source=7)
        metrics = os.path.join(self.tmp, "mboxmirror.prom")
        d, _, creds, sent = self.push_daemon(name, port=proxy.port,
                                             general={"metrics_file": metrics})
        conns = len(proxy.conns)
        srv_off, log_off = self.fx.log_offset(), d.log_offset()
        synced = parse_iso(self.status(d, name)["last_success"])
        # The pushes' last success is to be a later second than the sync's.
        wait_for(lambda: time.time() >= synced + 1, 3, what="the next second")
        latencies = [self.deliver_and_time(d, name, creds, sent,
                                           mmtest.make_message(f"pushed {i}"))
                     for i in range(4)]
        print(f"\npush latencies: {', '.join(f'{x:.3f}s' for x in latencies)}")
        for latency in latencies:
            self.assertLess(latency, PUSH_FAST, latencies)
        # All four came by push (one fetch may have taken two).
        by_push = rf"account {name}: (\d+) new messages? \(\d+ bytes\) in [\d.]+s by push"
        wait_for(lambda: sum(int(n) for n in re.findall(by_push, d.log_since(log_off))) == 4,
                 5, what=lambda: f"4 messages by push:\n{d.log_since(log_off)}")
        text = d.log_since(log_off)
        # No new connection, no login: not at the server, not in the daemon.
        self.assertEqual(len(proxy.conns), conns)
        self.assertNotIn(f"account {name}: logged in", text)
        self.assertEqual(self.logins(creds[0], srv_off, loopback_address(7)), [])
        # (The appends' own logins are there: the log is the right one.)
        self.assertEqual(len(self.logins(creds[0], srv_off, "127.0.0.1")), 4)
        # --status sees the push runs: the last success is the last push's.
        st = self.status(d, name)
        self.assertEqual(st["consecutive_failures"], 0, st)
        self.assertGreater(parse_iso(st["last_success"]), synced, st)
        # ...and so do the metrics (read with Prometheus' own parser).
        def pushed_metrics():
            got = read_metrics(metrics)
            if got is None or account_value(
                    got[0], "mboxmirror_messages_mirrored_total", name) != 5:
                return None
            return got[0]
        samples = wait_for(pushed_metrics, 5, what=lambda: open(metrics).read())
        self.assertEqual(account_value(samples, "mboxmirror_last_success_timestamp_seconds",
                                       name), parse_iso(st["last_success"]))
        self.assertEqual(d.stop(), 0, d.tail())
        assert_mirrored(self, inbox(self.tmp, name), sent)

    def test_not_held_up_by_another_accounts_failed_login(self):
        # Dovecot's penalty (on for penalty_port only): after a failed login from an
        # address, every login from there waits seconds.  The other account's wrong
        # password comes from the address the daemon uses.
        name = "penalised"
        source = loopback_address(8)
        proxy = FaultProxy(self.fx.host, self.fx.penalty_port, source=source).start()
        self.addCleanup(proxy.close)
        d, _, creds, sent = self.push_daemon(name, port=proxy.port)
        other, _ = self.fx.new_user()
        srv_off = self.fx.log_offset()
        t0 = time.monotonic()
        self.assertFalse(self.login(source, other, "not-the-password"))
        failed_in = time.monotonic() - t0
        latency = self.deliver_and_time(d, name, creds, sent,
                                        mmtest.make_message("after a failed login"))
        self.assertLess(latency, PUSH_FAST)
        # The penalty is real: a login from that address now waits for it (a full
        # sync would have), also for the right password.
        t0 = time.monotonic()
        self.assertTrue(self.login(source, *creds))
        penalised = time.monotonic() - t0
        self.assertGreater(penalised, 1.8, (failed_in, penalised))
        self.assertLess(latency, penalised / 2, (latency, penalised))
        # Only that one came from there: the push made none.
        self.assertEqual(len(self.logins(creds[0], srv_off, source)), 1,
                         self.fx.log_since(srv_off))
        print(f"\npush latency {latency:.3f}s right after a failed login from the same "
              f"address (a login from there took {penalised:.1f}s)")
        self.assertEqual(d.stop(), 0, d.tail())
        assert_mirrored(self, inbox(self.tmp, name), sent)

    def append_many(self, creds, messages):
        """Appends messages (each its own APPEND: several pushes happen while they
        come in); returns them."""
        self.fx.append_many(*creds, "INBOX", messages)
        return messages

    def login(self, source, user, password):
        """Logs in to the penalty port from source; whether the login was accepted."""
        fx = self.fx

        class FromSource(imaplib.IMAP4_SSL):
            def _create_socket(self, timeout):
                s = socket.create_connection((self.host, self.port), timeout,
                                             source_address=(source, 0))
                return self.ssl_context.wrap_socket(s, server_hostname=self.host)

        conn = FromSource(fx.host, fx.penalty_port, ssl_context=fx.ssl_context(),
                          timeout=30)
        try:
            conn.login(user, password)
            ok = True
        except imaplib.IMAP4.error:
            ok = False
        try:
            conn.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
        return ok

    def test_exactly_once_across_deliveries_and_a_kill(self):
        name = "oncepush"
        d, conf, creds, sent = self.push_daemon(name)
        # Deliveries in a row, some during the fetch of the one before.
        sent += self.append_many(creds, [mmtest.make_message(f"burst {i}") for i in range(6)])
        wait_for(lambda: mbox_count(inbox(self.tmp, name)) == len(sent), 15,
                 what=f"the burst\n{d.tail()}")
        # Big ones, and the daemon killed once the fetch on the push connection
        # has begun: what was appended and not committed is cut off later.
        off = d.log_offset()
        sent += self.append_many(creds, [big_message(f"big {i}", 4) for i in range(4)])
        d.wait_log(rf"account {name}: sync attached -> examining", since=off,
                   timeout=15)
        d.wait_log(rf"account {name}: sync examining -> fetching", since=off,
                   timeout=15)
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        self.assertLess(mbox_count(inbox(self.tmp, name)), len(sent),
                        "the kill came after the fetch; nothing was interrupted")
        # Started again: the first sync takes the rest, push goes on.
        d = self.daemon(conf)
        d.wait_log(rf"account {name}: push fetching -> idling")
        wait_for(lambda: mbox_count(inbox(self.tmp, name)) == len(sent), 20,
                 what=f"the rest after the restart\n{d.tail()}")
        for i in range(2):
            self.deliver_and_time(d, name, creds, sent, mmtest.make_message(f"after {i}"))
        self.assertEqual(d.stop(), 0, d.tail())
        assert_mirrored(self, inbox(self.tmp, name), sent)


if __name__ == "__main__":
    unittest.main(verbosity=2)
