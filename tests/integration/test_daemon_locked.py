"""A mail reader holding an account's mbox locked: the account waits for the lock on a
timer, without holding up the other accounts, and mirrors once it is released; a lock
that outlasts the wait skips that mailbox until the next sync and loses nothing."""

import fcntl
import os
import unittest

import mmtest
from test_daemon_basic import DaemonTestCase, assert_mirrored, inbox, mbox_count, wait_for


class TestLockedMbox(DaemonTestCase):

    def test_waiting_for_a_lock_does_not_stall_other_accounts(self):
        fx = self.fx
        held_user, held_pw = fx.new_user()
        free_user, free_pw = fx.new_user()
        held_mail = [mmtest.make_message("held 1")]
        free_mail = [mmtest.make_message("free 1")]
        fx.append(held_user, held_pw, "INBOX", held_mail[0])
        fx.append(free_user, free_pw, "INBOX", free_mail[0])
        held = fx.account(self.tmp, held_user, held_pw, name="held", idle="yes",
                          interval="10m")
        free = fx.account(self.tmp, free_user, free_pw, name="free", idle="yes",
                          interval="10m")
        d = self.daemon(mmtest.write_config(self.tmp, [held, free]))
        wait_for(lambda: mbox_count(inbox(self.tmp, "held")) == 1 and
                 mbox_count(inbox(self.tmp, "free")) == 1, 15, what="the first syncs")
        d.wait_log(r"account held: waiting for new mail \(IDLE\)")
        d.wait_log(r"account free: waiting for new mail \(IDLE\)")

        # A mail reader takes the mbox (fcntl write lock, as mutt does).
        reader = open(inbox(self.tmp, "held"), "r+b")
        self.addCleanup(reader.close)
        fcntl.lockf(reader, fcntl.LOCK_EX)
        off = d.log_offset()
        held_mail.append(mmtest.make_message("held 2"))
        fx.append(held_user, held_pw, "INBOX", held_mail[1])
        d.wait_log(r"account held: mailbox INBOX: .*INBOX\.mbox is locked by another "
                   r"program; waiting", since=off)

        # Meanwhile the other account's pushed mail arrives as fast as ever.
        free_mail.append(mmtest.make_message("free 2"))
        fx.append(free_user, free_pw, "INBOX", free_mail[1])
        wait_for(lambda: mbox_count(inbox(self.tmp, "free")) == 2, 3,
                 what="the other account's mail while one account waits for a lock")
        self.assertEqual(mbox_count(inbox(self.tmp, "held")), 1,
                         "written to an mbox another program holds locked")

        fcntl.lockf(reader, fcntl.LOCK_UN)
        reader.close()
        wait_for(lambda: mbox_count(inbox(self.tmp, "held")) == 2, 5,
                 what="the mail once the lock was released")
        self.assertEqual(d.stop(), 0, d.tail())
        assert_mirrored(self, inbox(self.tmp, "held"), held_mail)
        assert_mirrored(self, inbox(self.tmp, "free"), free_mail)

    def test_lock_held_past_the_wait_skips_the_mailbox(self):
        fx = self.fx
        user, password = fx.new_user()
        fx.create_mailbox(user, password, "Other")
        first = mmtest.make_message("first")
        fx.append(user, password, "INBOX", first)
        acct = fx.account(self.tmp, user, password, name="dl")
        conf = mmtest.write_config(self.tmp, [acct])
        r = mmtest.run_mboxmirror("-c", conf, "--once")
        self.assertEqual(r.returncode, 0, r.stderr)

        # A live process's dotlock (ours), held past the wait.
        lock = inbox(self.tmp, "dl") + ".lock"
        with open(lock, "w") as f:
            f.write(f"{os.getpid()}\n")
        second, other = mmtest.make_message("second"), mmtest.make_message("other")
        fx.append(user, password, "INBOX", second)
        fx.append(user, password, "Other", other)
        r = mmtest.run_mboxmirror("-c", conf, "--once")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"mailbox INBOX: .*INBOX\.mbox is still locked by "
                                   r"another program after \d+ ms; skipped until the "
                                   r"next sync")
        self.assertTrue(os.path.exists(lock), "someone else's dotlock was removed")
        assert_mirrored(self, inbox(self.tmp, "dl"), [first])
        assert_mirrored(self, os.path.join(self.tmp, "out", "dl", "Other.mbox"), [other])

        os.unlink(lock)
        r = mmtest.run_mboxmirror("-c", conf, "--once")
        self.assertEqual(r.returncode, 0, r.stderr)
        assert_mirrored(self, inbox(self.tmp, "dl"), [first, second])
        assert_mirrored(self, os.path.join(self.tmp, "out", "dl", "Other.mbox"), [other])


if __name__ == "__main__":
    unittest.main(verbosity=2)
