"""Push after a remap: INBOX renumbered under a new UIDVALIDITY with a new message
before the old ones, so that the remap leaves matched UIDs above the last UID
("remapped="); the daemon's full sync remaps, and mail pushed afterwards is fetched on
the IDLE connection without the matched messages a second time; the counters of the
metrics file only grow; a kill -9 in a push fetch and a full sync after it leave every
message in the mbox once and --verify finds the mirror whole."""

import os
import re
import unittest

import mmtest
import mirror_util as mu
from mmtest import wait_for
from test_daemon_basic import DaemonTestCase, assert_mirrored, inbox, mbox_count
from test_daemon_metrics import account_value, read_metrics

NAME = "pushremap"
N_OLD = 10


class TestPushAfterRemap(DaemonTestCase):

    def start(self, conf):
        d = self.daemon(conf)
        d.wait_log(rf"account {NAME}: push fetching -> idling", timeout=30)
        return d

    def renumber_inbox(self, creds, first):
        """INBOX's messages moved out and back behind first (new UIDs), and a new
        UIDVALIDITY, as a server restored from a backup may hand it out."""
        user = creds[0]
        old_uv = self.fx.uidvalidity(*creds, "INBOX")
        self.fx.doveadm("move", "-u", user, "Hold", "mailbox", "INBOX", "all")
        self.fx.append(*creds, "INBOX", first)
        self.fx.doveadm("move", "-u", user, "INBOX", "mailbox", "Hold", "all")
        self.fx.doveadm("mailbox", "update", "-u", user, "--uid-validity",
                        str(old_uv + 1000), "INBOX")

    def mirrored_total(self, metrics):
        got = read_metrics(metrics)
        if got is None:
            return None
        return account_value(got[0], "mboxmirror_messages_mirrored_total", NAME)

    def verify(self, conf):
        res = mmtest.run_mboxmirror("-c", conf, "--verify", "--deep", "-a", NAME,
                                    timeout=120)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr[-3000:])
        self.assertIn("whole", res.stdout)

    def test_push_fetch_after_a_remap(self):
        user, password = creds = self.fx.new_user()
        self.fx.create_mailbox(user, password, "Hold")
        sent = [mmtest.make_message(f"old {i}") for i in range(N_OLD)]
        self.fx.append_many(user, password, "INBOX", sent)
        metrics = os.path.join(self.tmp, "mboxmirror.prom")
        acct = self.fx.account(self.tmp, user, password, name=NAME, idle="yes",
                               interval="10m", mailboxes="INBOX")
        conf = mmtest.write_config(self.tmp, [acct], general={"metrics_file": metrics})
        path = inbox(self.tmp, NAME)
        d = self.start(conf)
        wait_for(lambda: mbox_count(path) == N_OLD, 10, what="the first sync")
        self.assertEqual(d.stop(), 0, d.tail())

        first = mmtest.make_message("first after the renumbering")
        self.renumber_inbox(creds, first)
        sent.append(first)
        d = self.start(conf)
        wait_for(lambda: mbox_count(path) == len(sent), 10, what="the remap")
        self.assertRegex(d.log(), rf"{N_OLD} of {N_OLD + 1} server messages matched")
        with open(os.path.join(self.tmp, "state", NAME, "state")) as f:
            self.assertRegex(f.read(), r"\tremapped=\d+-\d+")
        # (The new process starts the counter at the state's sum, 10 before the
        # remap's sync and 11 after it.)
        wait_for(lambda: self.mirrored_total(metrics) == len(sent), 5,
                 what=lambda: f"the metrics after the remap: {self.mirrored_total(metrics)}")
        after_remap = len(sent)
        self.verify(conf)

        # Pushed mail: fetched once, the matched UIDs above the last UID left out.
        log_off = d.log_offset()
        for i in range(2):
            msg = mmtest.make_message(f"pushed {i}")
            sent.append(msg)
            self.fx.append(*creds, "INBOX", msg)
            wait_for(lambda: mbox_count(path) >= len(sent), 10,
                     what=lambda: f"pushed mail\n{d.tail()}")
        d.wait_log(rf"account {NAME}: \d+ new messages? .* by push", since=log_off)
        self.assertEqual(mbox_count(path), len(sent))
        wait_for(lambda: self.mirrored_total(metrics) == after_remap + 2, 5,
                 what=lambda: f"the metrics after the push: {self.mirrored_total(metrics)}")
        self.verify(conf)

        # kill -9 in the middle of a push fetch of a big message, then a full sync.
        size = os.path.getsize(path)
        big = mmtest.make_message("big", body="0123456789abcdef\r\n" * 400_000)
        sent.append(big)
        self.fx.append(*creds, "INBOX", big)
        self.assertTrue(mu.wait_file_size(path, size + 1, d.proc))
        d.proc.kill()
        d.proc.wait()
        # Killed in the middle of writing it.
        self.assertLess(os.path.getsize(path), size + len(big))
        res = mmtest.run_mboxmirror("-c", conf, "--once", timeout=120)
        self.assertEqual(res.returncode, 0, res.stderr[-3000:])
        assert_mirrored(self, path, sent)
        self.verify(conf)

    def test_counter_after_a_mailbox_mirrored_afresh(self):
        """INBOX emptied and refilled with other mail under a new UIDVALIDITY: the
        server ends the push connection, a sync mirrors INBOX afresh into a new file;
        the messages it fetched count, though the state's sums went down."""
        user, password = creds = self.fx.new_user()
        self.fx.append_many(user, password, "INBOX",
                            [mmtest.make_message(f"old {i}") for i in range(N_OLD)])
        metrics = os.path.join(self.tmp, "mboxmirror.prom")
        acct = self.fx.account(self.tmp, user, password, name=NAME, idle="yes",
                               interval="10m")
        conf = mmtest.write_config(self.tmp, [acct], general={"metrics_file": metrics})
        d = self.start(conf)
        wait_for(lambda: self.mirrored_total(metrics) == N_OLD, 10,
                 what="the first sync's metrics")
        uv = self.fx.uidvalidity(*creds, "INBOX")
        self.fx.doveadm("expunge", "-u", user, "mailbox", "INBOX", "all")
        self.fx.doveadm("mailbox", "update", "-u", user, "--uid-validity",
                        str(uv + 1000), "INBOX")
        off = d.log_offset()
        self.fx.append_many(user, password, "INBOX",
                            [mmtest.make_message(f"other {i}") for i in range(3)])
        d.wait_log(r"mirroring it afresh", since=off, timeout=90)
        d.wait_log(rf"account {NAME}: 3 new messages", since=off, timeout=30)
        wait_for(lambda: self.mirrored_total(metrics) == N_OLD + 3, 5,
                 what=lambda: f"the counter: {self.mirrored_total(metrics)}")


if __name__ == "__main__":
    unittest.main()
