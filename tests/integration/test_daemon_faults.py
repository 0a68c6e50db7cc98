"""The daemon against a connection that breaks: cut inside the TLS handshake, between
two responses, in the middle of a big literal; or stalled without being closed.  The
daemon retries and ends with every message mirrored exactly once, byte for byte.

The faults come from faultproxy.FaultProxy, a plain TCP proxy between the daemon and the
fixture's IMAPS port (TLS stays end to end: the certificate carries 127.0.0.1).
"""

import random
import re
import sys
import time
import unittest

import mirror_util as mu
import mmtest
from faultproxy import Cut, Stall
from test_daemon_basic import DaemonTestCase, assert_mirrored, inbox

# TLS records of the fixture's server->client stream before the first IMAP byte:
# ServerHello, ChangeCipherSpec, EncryptedExtensions, Certificate, CertificateVerify,
# Finished and two NewSessionTickets (under TLS 1.3 all but the first two travel as
# application data records); then the greeting with its capabilities (9), the
# AUTHENTICATE reply (10), the LIST reply (11).
HANDSHAKE_RECORDS = 8


def messages(n_small, big_size, rng):
    """n_small small messages around one big one (in the middle)."""
    out = []
    for i in range(n_small):
        out.append(mmtest.make_message(f"small {i}", body=mu.random_text_body(
            rng, rng.randrange(2000, 40000))))
    out.insert(n_small // 2, mmtest.make_message("big",
                                                 body=mu.random_text_body(rng, big_size)))
    return out


class TestFaults(DaemonTestCase):
    # Light, and its one timing (a 2 s timeout) has 2.5 s of slack: runs beside
    # the other daemon tests.
    takes_turns = False

    def account_via(self, proxy, name, user, password):
        return self.fx.account(self.tmp, user, password, name=name, idle="no",
                               interval="10m", port=str(proxy.port))

    def test_cuts_converge_exactly_once(self):
        rng = random.Random(4711)
        user, password = self.fx.new_user()
        msgs = messages(10, 3_000_000, rng)
        self.fx.append_many(user, password, "INBOX", msgs)
        mid_literal = 1_500_000
        plan = [Cut(at_byte=300),                              # in the Certificate
                Cut(after_records=HANDSHAKE_RECORDS + 3),     # after the LIST reply
                Cut(at_byte=mid_literal)]                      # inside the big literal
        proxy = self.proxy(plan)
        conf = mmtest.write_config(self.tmp, [self.account_via(proxy, "cut", user,
                                                               password)],
                                   general={"retry_min": "1s", "retry_max": "4s"})
        d = self.daemon(conf)
        # The first two cuts fail their attempts; the third falls after five
        # messages came whole: they are kept and a new connection goes on at once.
        d.wait_log(r"account cut: recovered after 2 failed attempts", timeout=40)
        faults = proxy.faults()
        self.assertEqual([(i, f) for i, f, _ in faults[:3]],
                         [(0, "cut"), (1, "cut"), (2, "cut")], faults)
        c0, c1, c2 = proxy.conns[:3]
        # Where the cuts fell: inside the handshake, exactly after a whole record
        # (the LIST reply), and deep inside the big message (its literal alone is
        # 3 MB; all the rest is < 300 KB).
        handshake = sum(5 + n for _, n in proxy.conns[3].records[:HANDSHAKE_RECORDS])
        self.assertEqual(c0.down, 300)
        self.assertLess(c0.down, handshake)
        self.assertEqual(len(c1.records), HANDSHAKE_RECORDS + 3)
        self.assertEqual(c1.down, sum(5 + n for _, n in c1.records))
        self.assertEqual(c2.down, mid_literal)
        self.assertGreater(len(proxy.conns), 3)
        self.assertIsNone(proxy.conns[3].fault)
        log = d.log()
        self.assertEqual(len(re.findall(r"account cut\b.*retrying in \d+s", log)), 2, log)
        self.assertRegex(log, r"account cut: the server ended the session after \d+ "
                         r"messages \(TLS read [^\n]*\); reconnecting")
        assert_mirrored(self, inbox(self.tmp, "cut"), msgs)
        # Nothing more comes on later runs: the state matches the mbox.
        self.assertEqual(d.stop(), 0, d.tail())
        res = mmtest.run_mboxmirror("-c", conf, "--once")
        self.assertEqual(res.returncode, 0, res.stderr)
        assert_mirrored(self, inbox(self.tmp, "cut"), msgs)

    def test_stall_times_out_and_recovers(self):
        rng = random.Random(815)
        user, password = self.fx.new_user()
        msgs = messages(6, 1_000_000, rng)
        self.fx.append_many(user, password, "INBOX", msgs)
        plan = [Stall(after_records=HANDSHAKE_RECORDS + 1),   # after the greeting,
                # (the AUTHENTICATE reply never comes)
                Stall(at_byte=600_000)]                         # inside the big literal
        proxy = self.proxy(plan)
        conf = mmtest.write_config(self.tmp, [self.account_via(proxy, "stall", user,
                                                               password)],
                                   general={"retry_min": "1s", "retry_max": "4s",
                                            "timeout": "2s"})
        d = self.daemon(conf)
        stall_seen = []
        for i in range(2):
            self.assertTrue(proxy.wait(lambda p: len(p.conns) > i and
                                       p.conns[i].stalled.is_set(), 20),
                            f"connection {i} never stalled:\n{d.tail()}")
            t0 = time.monotonic()
            # The daemon gives up on the stalled connection by itself ...
            self.assertTrue(proxy.wait(lambda p: p.conns[i].closed.is_set(), 10),
                            f"the daemon kept stalled connection {i}:\n{d.tail()}")
            stall_seen.append(time.monotonic() - t0)
        print(f"stalled connections dropped after (s): "
              f"{[round(x, 2) for x in stall_seen]}", file=sys.stderr)
        for x in stall_seen:
            self.assertLess(x, 2 + 2.5, "the 2 s timeout was not applied")
        # ... and recovers on a later connection: the stall before login fails the
        # attempt (retried after backoff); the one inside a literal, after some
        # messages came whole, keeps them and goes on with a new connection at once.
        d.wait_log(r"account stall: recovered after 1 failed attempts", timeout=30)
        timeouts = re.findall(r"account stall\b[^\n]*no response from [^\n]* for 2s"
                              r"[^\n]*retrying in", d.log())
        self.assertEqual(len(timeouts), 1, d.log())
        self.assertRegex(d.log(), r"account stall: the server ended the session after "
                         r"\d+ messages \(no response from [^\n]* for 2s[^\n]*\); "
                         r"reconnecting")
        assert_mirrored(self, inbox(self.tmp, "stall"), msgs)
        self.assertEqual(d.stop(), 0, d.tail())
        assert_mirrored(self, inbox(self.tmp, "stall"), msgs)


if __name__ == "__main__":
    unittest.main(verbosity=2)
