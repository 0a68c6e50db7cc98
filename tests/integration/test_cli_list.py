"""--list: per account, every mailbox the server lists, its message count, the file it
maps to and which pattern selected or excluded it; a pattern that matches nothing is a
warning.  Against Dovecot (LIST-STATUS: one round trip) and the scripted server (no
LIST-STATUS: a STATUS per mailbox).  It writes nothing."""

import os
import re
import unittest

import mirror_fakeimap as fi
import mirror_util as mu
import mmtest


def row(stdout, mailbox):
    """The table row of mailbox: (messages, file, verdict), or None."""
    for line in stdout.splitlines():
        m = re.match(r"^  (.+?)\s+(\d+|-)  (\S+)\s+(.*)$", line)
        if m and m.group(1) == mailbox:
            return m.group(2), m.group(3), m.group(4)
    return None


class ListDovecot(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fx = mmtest.Fixture()
        cls.user, cls.pw = cls.fx.new_user("list")
        for name in ("Sent", "Trash", "Ärger", "Archive/2023"):
            cls.fx.create_mailbox(cls.user, cls.pw, name)
        for i in range(3):
            cls.fx.append(cls.user, cls.pw, "INBOX", mmtest.make_message(f"in {i}"))
        cls.fx.append(cls.user, cls.pw, "Ärger", mmtest.make_message("ä"))

    def setUp(self):
        self.tmpdir = mmtest.TempDir()
        self.tmp = self.tmpdir.__enter__()

    def tearDown(self):
        self.tmpdir.__exit__(None, None, None)

    def run_list(self, accounts, *args):
        conf = mmtest.write_config(self.tmp, accounts, general={"log_level": "info"})
        before = mu.snapshot(self.tmp)
        res = mmtest.run_mboxmirror("-c", conf, "--list", *args, timeout=60)
        self.assertEqual(before, mu.snapshot(self.tmp), "--list wrote something")
        return res

    def test_patterns_and_counts(self):
        acct = self.fx.account(self.tmp, self.user, self.pw,
                               mailboxes="INBOX, Ärger, Archive/*, Inbox2",
                               exclude="Archive/2023, Nothing*")
        res = self.run_list([acct])
        self.assertEqual(res.returncode, 0, res.stderr)
        out = res.stdout
        self.assertIn(acct["output"], out.splitlines()[0])
        self.assertEqual(row(out, "INBOX"), ("3", "INBOX.mbox", 'mirrored (mailboxes "INBOX")'))
        self.assertEqual(row(out, "Ärger"), ("1", "Ärger.mbox", 'mirrored (mailboxes "Ärger")'))
        self.assertEqual(row(out, "Archive/2023"),
                         ("0", "Archive/2023.mbox", 'excluded by "Archive/2023"'))
        self.assertEqual(row(out, "Sent"),
                         ("0", "Sent.mbox", "skipped: matches no pattern in mailboxes"))
        self.assertIn("2 of ", out)
        self.assertRegex(res.stderr, r'mailboxes pattern "Inbox2" matches no mailbox')
        self.assertRegex(res.stderr, r'exclude pattern "Nothing\*" matches no mailbox')
        self.assertNotRegex(res.stderr, r'pattern "(INBOX|Ärger|Archive/\*|Archive/2023)"')
        # The LIST-STATUS reply gave the counts: no STATUS command was sent.
        self.assertNotIn(" STATUS ", self.debug_commands(acct))

    def test_sync_warns_of_patterns_matching_nothing(self):
        acct = self.fx.account(self.tmp, self.user, self.pw,
                               mailboxes="INBOX, Inbox2", exclude="Nothing*")
        conf = mmtest.write_config(self.tmp, [acct], general={"log_level": "info"})
        res = mmtest.run_mboxmirror("-c", conf, "--once", timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertRegex(res.stderr, r'account test: mailboxes pattern "Inbox2" matches '
                                     r'no mailbox')
        self.assertRegex(res.stderr, r'account test: exclude pattern "Nothing\*" matches '
                                     r'no mailbox')
        self.assertNotIn('"INBOX" matches', res.stderr)

    def debug_commands(self, acct):
        conf = mmtest.write_config(self.tmp, [acct], filename="debug.ini")
        res = mmtest.run_mboxmirror("-c", conf, "--list", "-v", timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)
        return "\n".join(line for line in res.stderr.splitlines() if " C: " in line)

    def test_default_patterns_and_failing_account(self):
        good = self.fx.account(self.tmp, self.user, self.pw, name="good")
        bad = self.fx.account(self.tmp, self.user, self.pw + "-wrong", name="bad")
        res = self.run_list([bad, good])
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertRegex(res.stderr, r"account bad: .*")
        self.assertEqual(row(res.stdout, "Trash"), ("0", "Trash.mbox", 'mirrored (mailboxes "*")'))
        self.assertEqual(row(res.stdout, "Archive"),
                         ("-", "-", "not selectable (holds only other mailboxes)"))
        self.assertIn("5 of 6 mirrored", res.stdout)
        names = [line.split()[0] for line in res.stdout.splitlines()[2:-1]]
        self.assertEqual(names, ["INBOX", "Archive", "Archive/2023", "Sent", "Trash",
                                 "Ärger"])
        # -a lists only the named account.
        res = self.run_list([bad, good], "-a", "good")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertNotIn("account bad", res.stdout + res.stderr)


class ListScripted(unittest.TestCase):
    """A server without LIST-STATUS, with a name no terminal should see raw."""

    def test_status_per_mailbox_and_hostile_name(self):
        msgs = [mmtest.make_message("x"), mmtest.make_message("y")]
        srv = fi.FakeImap([(b"/", b"INBOX", msgs), (b"/", b"Evil\x1b[2J", [msgs[0]]),
                           (b"/", b"Refused", [])]).start()
        try:
            srv.hooks["STATUS"] = lambda conn, ctx: (
                [ctx["tag"] + b" NO no status here\r\n"]
                if ctx["mailbox"] and ctx["mailbox"][1] == b"Refused" else None)
            with mmtest.TempDir() as tmp:
                acct = {"__name__": "test", "host": "127.0.0.1", "port": str(srv.port),
                        "tls": "none", "allow_plaintext": "yes", "user": "u",
                        "password": "list-secret", "output": os.path.join(tmp, "out")}
                conf = mmtest.write_config(tmp, [acct])
                res = mmtest.run_mboxmirror("-c", conf, "--list", timeout=60)
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertEqual(row(res.stdout, "INBOX"),
                                 ("2", "INBOX.mbox", 'mirrored (mailboxes "*")'))
                self.assertNotIn("\x1b", res.stdout + res.stderr)
                self.assertEqual(row(res.stdout, "Refused")[0], "-")
                self.assertFalse(os.path.exists(os.path.join(tmp, "out")))
                statuses = [args for verb, args in srv.log if verb == b"STATUS"]
                self.assertEqual(len(statuses), 3, srv.log)
        finally:
            srv.stop()


if __name__ == "__main__":
    unittest.main()
