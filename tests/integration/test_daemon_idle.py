"""The push connection over time: the IDLE refresh cycle ([general] idle_refresh: DONE,
the server's OK, IDLE again), a push connection the server drops (reconnected with
growing delays, push works again), and one that goes silent (noticed within
idle_refresh plus timeout)."""

import os
import re
import time
import unittest

import mmtest
from faultproxy import Cut, Pass
from mmtest import wait_for
from test_daemon_basic import DaemonTestCase, assert_mirrored, inbox, mbox_count


# Mail pushed arrives within this many seconds: the poll would take 10
# minutes; a loaded test machine may take a few seconds for the sync itself.
PUSH_BOUND = 6.0


class TestIdle(DaemonTestCase):

    def push_account(self, name, port=None, general=None):
        """An IDLE account (polling every 10 minutes: only push brings mail in time)
        with one message waiting; its daemon, started, and the messages so far."""
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
        wait_for(lambda: mbox_count(inbox(self.tmp, name)) == 1, 10,
                 what=f"first sync of {name}")
        # Push looks at INBOX once it is up (mail may have come since the
        # sync): on the push connection, which is back in IDLE after it.
        d.wait_log(rf"account {name}: push fetching -> idling")
        return d, (user, password), [first]

    def assert_push_works(self, d, name, creds, sent, what):
        msg = mmtest.make_message(f"{what} {len(sent)}")
        sent.append(msg)
        t0 = time.monotonic()
        self.fx.append(*creds, "INBOX", msg)
        wait_for(lambda: mbox_count(inbox(self.tmp, name)) == len(sent), 10,
                 interval=0.01, what=f"{what}: pushed mail\n{d.tail()}")
        return time.monotonic() - t0

    def test_refresh_cycle(self):
        name = "refresh"
        d, creds, sent = self.push_account(name, general={"idle_refresh": "1s"})
        # Each refresh: DONE ends the IDLE (Dovecot answers OK only to DONE, and
        # says how long the IDLE ran), then IDLE again on the same connection.
        rx = (r"account refresh: S: (A\d+) OK Idle completed \((\d+\.\d+) \+[^\n]*\n"
              r"[^\n]* account refresh: C: (A\d+) IDLE$")
        cycles = d.wait_log(rx, count=3, timeout=10)
        for m in cycles:
            self.assertEqual(int(m.group(3)[1:]), int(m.group(1)[1:]) + 1, m.group(0))
            # The IDLE ran for idle_refresh (1 s), not for the default 9 minutes,
            # and was not ended early.
            self.assertGreaterEqual(float(m.group(2)), 0.9, m.group(0))
            self.assertLess(float(m.group(2)), 3.0, m.group(0))
        # Mail still comes by push, also between two refreshes, on the one connection.
        for _ in range(3):
            latency = self.assert_push_works(d, name, creds, sent, "after refreshes")
            self.assertLess(latency, PUSH_BOUND)
        self.assertNotIn("push connection lost", d.log())
        self.assertEqual(d.stop(), 0, d.tail())
        assert_mirrored(self, inbox(self.tmp, name), sent)

    def test_no_push_connection_for_an_account_without_inbox(self):
        # Push watches INBOX alone: on an account that does not mirror it, a push
        # connection would bring nothing but a full sync (a login) at each new
        # mail there.  The account polls, and mail to INBOX starts nothing.
        user, password = self.fx.new_user()
        self.fx.create_mailbox(user, password, "Archive")
        self.fx.append(user, password, "Archive", mmtest.make_message("kept"))
        acct = self.fx.account(self.tmp, user, password, name="noinbox", idle="yes",
                               interval="10m", mailboxes="Archive")
        d = self.daemon(mmtest.write_config(self.tmp, [acct]))
        d.wait_log(r"account noinbox: INBOX is not among its mailboxes, so no push "
                   r"connection watches it; polling every 600s")
        archive = os.path.join(self.tmp, "out", "noinbox", "Archive.mbox")
        wait_for(lambda: mbox_count(archive) == 1, 10, what="first sync")
        self.fx.append(user, password, "INBOX", mmtest.make_message("not mirrored"))
        time.sleep(2)
        log = d.log()
        self.assertNotIn("waiting for new mail (IDLE)", log)
        self.assertIsNone(re.search(r"account noinbox: C: A\d+ IDLE", log), log)
        self.assertEqual(len(re.findall(r"account noinbox: sync connecting -> listing",
                                        log)), 1, log)
        self.assertEqual(d.stop(), 0, d.tail())

    def test_dropped_push_connection_reconnects_with_backoff(self):
        name = "dropped"
        proxy = self.proxy(source=2)
        d, creds, sent = self.push_account(name, port=proxy.port, general={
            "retry_min": "1s", "retry_max": "8s"})
        open_conns = lambda p: [c for c in p.conns if not c.closed.is_set()]
        self.assertTrue(proxy.wait(lambda p: len(open_conns(p)) == 1, 10),
                        "the sync after push came up did not end")
        # The server drops the push connection; the next two connections fail
        # inside the TLS handshake.
        off = d.log_offset()
        proxy.plan = [Pass()] * len(proxy.conns) + [Cut(at_byte=1)] * 2
        open_conns(proxy)[0].close()
        d.wait_log(rf"account {name}: push restored", since=off, timeout=30)
        delays = [int(x) for x in re.findall(
            rf"account {name}: push connection lost \([^\n]*\); reconnecting in (\d+)s",
            d.log_since(off))]
        self.assertEqual(len(delays), 3, d.log_since(off))
        # retry_min, then doubling (20 % jitter).
        self.assertLessEqual(delays[0], 1, delays)
        self.assertEqual(delays, sorted(delays), delays)
        self.assertGreater(delays[2], delays[0], delays)
        # Push works again, without waiting for the poll.
        wait_for(lambda: len(open_conns(proxy)) == 1, 10,
                 what="the sync after push came back to end")
        latency = self.assert_push_works(d, name, creds, sent, "after reconnecting")
        self.assertLess(latency, PUSH_BOUND)
        self.assertEqual(d.stop(), 0, d.tail())
        assert_mirrored(self, inbox(self.tmp, name), sent)

    def test_silent_push_connection_noticed(self):
        # The connection stays open but nothing gets through any more (a NAT that
        # forgot it): the refresh's DONE is never answered, and the timeout ends it.
        name = "silent"
        proxy = self.proxy(source=3)
        d, creds, sent = self.push_account(name, port=proxy.port, general={
            "retry_min": "1s", "retry_max": "4s", "idle_refresh": "1s", "timeout": "2s"})
        open_conns = lambda p: [c for c in p.conns if not c.closed.is_set()]
        self.assertTrue(proxy.wait(lambda p: len(open_conns(p)) == 1, 10),
                        "the sync after push came up did not end")
        off = d.log_offset()
        t0 = time.monotonic()
        push = open_conns(proxy)[0]
        push.stall()
        m = d.wait_log(rf"account {name}: push connection lost \(([^\n]*)\); "
                       r"reconnecting in \d+s", since=off, timeout=15)
        noticed = time.monotonic() - t0
        self.assertIn("2s", m[0].group(1))
        # Within idle_refresh + timeout (3 s), with slack for a loaded machine
        # (the default refresh alone would be 9 minutes).
        self.assertLess(noticed, 1 + 2 + 4, m[0].group(0))
        self.assertTrue(proxy.wait(lambda p: push.closed.is_set(), 5),
                        "the daemon kept the silent connection")
        d.wait_log(rf"account {name}: push restored", since=off, timeout=15)
        wait_for(lambda: len(open_conns(proxy)) == 1, 10,
                 what="the sync after push came back to end")
        latency = self.assert_push_works(d, name, creds, sent, "after the silence")
        self.assertLess(latency, PUSH_BOUND)
        self.assertEqual(d.stop(), 0, d.tail())
        assert_mirrored(self, inbox(self.tmp, name), sent)


if __name__ == "__main__":
    unittest.main(verbosity=2)
