"""SIGHUP: the daemon rereads its config; added accounts start, removed ones stop, the
unchanged ones go on undisturbed (same push connection); a broken config is refused
with file:line and the running one kept."""

import os
import re
import signal
import time
import unittest

import mmtest
from test_daemon_basic import DaemonTestCase, assert_mirrored, inbox, mbox_count, wait_for


class TestReload(DaemonTestCase):

    def test_add_remove_keep_and_broken_config(self):
        fx = self.fx
        # Through a proxy of our own: logins come from an address that no other
        # test's failed logins slow down (Dovecot delays logins per address).
        port = str(self.proxy().port)
        keep, ku, kp = self.new_account("keep", idle="yes", interval="10m", port=port)
        gone, gu, gp = self.new_account("gone", idle="no", interval="2s", port=port)
        new, nu, np_ = self.new_account("new", idle="yes", interval="10m", port=port)
        sent = {"keep": [mmtest.make_message("keep 1")],
                "gone": [mmtest.make_message("gone 1")],
                "new": [mmtest.make_message("new 1")]}
        for name, (u, p) in {"keep": (ku, kp), "gone": (gu, gp), "new": (nu, np_)}.items():
            fx.append(u, p, "INBOX", sent[name][0])
        general = {"retry_min": "1s"}
        conf = mmtest.write_config(self.tmp, [keep, gone], general=general)
        d = self.daemon(conf)
        d.wait_log(r"account keep: waiting for new mail \(IDLE\)")
        wait_for(lambda: mbox_count(inbox(self.tmp, "gone")) == 1, 20, what="gone synced")
        self.assertFalse(os.path.exists(inbox(self.tmp, "new")))

        # Reload: "gone" removed, "new" added, "keep" unchanged.
        mmtest.write_config(self.tmp, [keep, new], general=general)
        off = d.log_offset()
        d.signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded: 1 added, 1 removed, 0 changed", since=off)
        after = d.log_since(off)
        self.assertIn("account gone: removed, stopping", after)
        self.assertNotIn("account keep: changed", after)
        wait_for(lambda: mbox_count(inbox(self.tmp, "new")) == 1, 20, what="new synced")
        d.wait_log(r"account new: waiting for new mail \(IDLE\)", since=off)

        # "keep" was not restarted: its push connection is the one from before (no
        # second "waiting" line) and still delivers within 2 s.
        msg = mmtest.make_message("keep 2")
        sent["keep"].append(msg)
        t0 = time.monotonic()
        fx.append(ku, kp, "INBOX", msg)
        wait_for(lambda: mbox_count(inbox(self.tmp, "keep")) == 2, 10, interval=0.01,
                 what="push to keep after the reload")
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual(len(re.findall(r"account keep: waiting for new mail",
                                        d.log())), 1, d.tail())

        # "gone" stopped: mail to it stays on the server, no line mentions it.
        fx.append(gu, gp, "INBOX", mmtest.make_message("gone 2"))
        server_off = fx.log_offset()
        # Still running, it would poll within its 2 s interval (5 % jitter) of its
        # last sync, which came before the reload.
        time.sleep(2 * 1.05 + 1.4)
        self.assertEqual(mbox_count(inbox(self.tmp, "gone")), 1)
        late = d.log_since(off).split("removed, stopping", 1)[1]
        self.assertNotIn("account gone", late)
        self.assertNotIn(f"user=<{gu}>", fx.log_since(server_off))

        # A broken config: refused with file:line, the running one kept.
        with open(conf, "a") as f:
            f.write("\n[broken]\nhost = 127.0.0.1\nfrobnicate = yes\n")
        with open(conf) as f:
            bad_line = len(f.read().splitlines())  # frobnicate is the last line
        off = d.log_offset()
        d.signal(signal.SIGHUP)
        d.wait_log(r"keeping the running one", since=off)
        text = d.log_since(off)
        self.assertRegex(text, re.escape(f"{conf}:{bad_line}:") + r".*frobnicate")
        self.assertNotIn("configuration reloaded", text)
        self.assertNotIn("removed, stopping", text)
        self.assertTrue(d.alive())
        for name, (u, p) in {"keep": (ku, kp), "new": (nu, np_)}.items():
            msg = mmtest.make_message(f"{name} after the broken reload")
            sent[name].append(msg)
            fx.append(u, p, "INBOX", msg)
        for name in ("keep", "new"):
            n = len(sent[name])
            wait_for(lambda: mbox_count(inbox(self.tmp, name)) == n, 5,
                     what=f"{name} mirrored after the broken reload")
        self.assertNotIn("account broken", d.log())
        self.assertEqual(d.stop(), 0, d.tail())
        for name in ("keep", "new"):
            assert_mirrored(self, inbox(self.tmp, name), sent[name])
        assert_mirrored(self, inbox(self.tmp, "gone"), sent["gone"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
