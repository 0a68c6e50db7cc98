"""A whole account mirrored with --once: every mailbox, every message exactly once and
byte for byte (DESIGN.md sections 3-5), file modes, nothing changed on the server, and
later runs that fetch only what is new."""

import os
import re
import time
import unittest

import mmtest
import mirror_util as mu

# (mailbox, IMAP date-time or None, message): dates with a zone, a one-digit day, a
# date before 2000 and one after 2038 check the From_ line's UTC asctime.
D_SEP3 = '"03-Sep-2023 14:05:09 +0200"'     # Sun Sep  3 12:05:09 2023 UTC
D_1999 = '"31-Dec-1999 23:59:59 -0500"'     # Sat Jan  1 04:59:59 2000 UTC
D_2001 = '"09-Sep-2001 01:46:40 +0000"'     # Sun Sep  9 01:46:40 2001 UTC (10^9)
D_PLAIN = '"21-Nov-2026 09:05:03 +0000"'


def corpus():
    mk = mmtest.make_message
    msgs = [
        ("INBOX", D_SEP3, mk("escapes",
                             "From the start\r\n>From quoted\r\n>>From twice\r\n"
                             "From\r\nFrom:\r\n From indented\r\n>From\r\nFrom  two\r\n",
                             extra_headers=["Return-Path: <bounce@example.net>"])),
        ("INBOX", D_1999, mk("8-bit", b"caf\xc3\xa9 \xe4\xf6\xfc \xff\xfe\x80\r\n"
                             b"NUL-free but binary: \x01\x02\x1b\r\n")),
        ("INBOX", D_2001, mk("no final newline", "last line has no end")),
        ("INBOX", D_PLAIN, b"Subject: bare LF\nReturn-Path: <lf@example.net>\n\nline one\n"
                           b"From bare\nline three\n"),
        ("INBOX", D_PLAIN, mk("CRLF and lone CR", b"a\r\nb\rc\r\n\r\n")),
        ("INBOX", D_PLAIN, mk("empty body", b"")),
        ("INBOX", D_PLAIN, mk("null sender", "bounce\r\n",
                              extra_headers=["Return-Path: <>"])),
        ("INBOX", D_PLAIN, b"Subject: header only, no blank line"),
        ("Sent", D_PLAIN, mk("sent 1", "one\r\n", extra_headers=[
            "Return-Path: <me@example.org>"])),
        ("Sent", D_PLAIN, mk("sent 2", "two\r\nFrom me\r\n")),
        ("Archive", D_1999, mk("archive top", "top\r\n")),
        ("Archive/2023", D_SEP3, mk("archive 2023", "mid\r\n")),
        ("Archive/2023/Q1", '"15-Jan-2023 00:00:00 +0100"', mk("q1 a", "q1\r\n")),
        ("Archive/2023/Q1", '"16-Jan-2023 23:30:00 -0100"', mk("q1 b", "q1\r\n>From q1\r\n")),
        ("Ärger", D_PLAIN, mk("=?utf-8?q?=C3=84rger?=", "Ärger über Ärger\r\n")),
        ("Ärger", D_PLAIN, mk("zwei", "From Ärger\r\n")),
        ("日本語", D_PLAIN, mk("日本語", "日本語のメール\r\n")),
        ("Big", D_PLAIN, mu.attachment_message("twenty megabytes", 20 * 1024 * 1024)),
        ("Big", D_SEP3, mk("after the big one", "small\r\n")),
    ]
    return msgs


MAILBOXES = ["Sent", "Archive", "Archive/2023", "Archive/2023/Q1", "Ärger", "日本語",
             "Empty", "Big"]
SEEN = {("INBOX", 1), ("Sent", 1), ("Big", 2)}


class Corpus(unittest.TestCase):
    """One account, synced once in setUpClass, then once more."""

    @classmethod
    def setUpClass(cls):
        fx = cls.fx = mmtest.Fixture()
        cls.user, cls.pw = fx.new_user("basic")
        for name in MAILBOXES:
            fx.create_mailbox(cls.user, cls.pw, name)
        cls.sent = {}
        counts = {}
        for box, date, msg in corpus():
            counts[box] = counts.get(box, 0) + 1
            flags = (r"\Seen", r"\Flagged") if (box, counts[box]) in SEEN else ()
            uid = fx.append(cls.user, cls.pw, box, msg, flags=flags, date=date)
            cls.sent.setdefault(box, []).append((uid, date, msg))
        cls.flags_before = {b: fx.flags(cls.user, cls.pw, b) for b in ["INBOX"] + MAILBOXES}
        cls.tmpctx = mmtest.TempDir()
        cls.tmp = cls.tmpctx.__enter__()
        acct = fx.account(cls.tmp, cls.user, cls.pw)
        cls.conf = mmtest.write_config(cls.tmp, [acct])
        t0 = time.monotonic()
        cls.run1 = mmtest.run_mboxmirror("-c", cls.conf, "--once", "-v", timeout=300)
        cls.seconds1 = time.monotonic() - t0
        cls.snap1 = mu.snapshot(os.path.join(cls.tmp, "out"))
        cls.run2 = mmtest.run_mboxmirror("-c", cls.conf, "--once", "-v")
        cls.snap2 = mu.snapshot(os.path.join(cls.tmp, "out"))
        cls.flags_after = {b: fx.flags(cls.user, cls.pw, b) for b in ["INBOX"] + MAILBOXES}

    @classmethod
    def tearDownClass(cls):
        cls.tmpctx.__exit__(None, None, None)

    def path(self, box):
        return mu.mbox_path(self.tmp, "test", box)

    def test_first_run_succeeds(self):
        self.assertEqual(self.run1.returncode, 0, self.run1.stderr)
        checked, opened, messages = mu.count_opened(self.run1.stdout)
        self.assertEqual(checked, 1 + len(MAILBOXES))
        self.assertEqual(messages, len(corpus()))
        # Every mailbox with mail is opened (Empty may be, to learn its state).
        self.assertIn(opened, (len(MAILBOXES), len(MAILBOXES) + 1))

    def test_every_mailbox_exact(self):
        for box in ["INBOX"] + MAILBOXES:
            with self.subTest(box=box):
                msgs = mu.assert_mirror_exact(self, self.fx, self.user, self.pw, box,
                                              self.path(box))
                self.assertEqual([u for u, _, _ in msgs],
                                 [u for u, _, _ in self.sent.get(box, [])])

    def test_file_layout(self):
        out = os.path.join(self.tmp, "out", "test")
        files = sorted(os.path.relpath(os.path.join(d, f), out)
                       for d, _, fs in os.walk(out) for f in fs)
        # Empty has no messages: a file may or may not exist, nothing else may.
        want = sorted(b + ".mbox" for b in ["INBOX"] + MAILBOXES)
        self.assertEqual([f for f in files if f != "Empty.mbox"],
                         [f for f in want if f != "Empty.mbox"])
        if "Empty.mbox" in files:
            self.assertEqual(os.path.getsize(os.path.join(out, "Empty.mbox")), 0)

    def test_from_lines_from_the_appended_dates(self):
        # Independent of the server's INTERNALDATE answer: the dates we gave APPEND.
        want = {
            "INBOX": ["bounce@example.net Sun Sep  3 12:05:09 2023",
                      "MAILER-DAEMON Sat Jan  1 04:59:59 2000",
                      "MAILER-DAEMON Sun Sep  9 01:46:40 2001",
                      "lf@example.net Sat Nov 21 09:05:03 2026",
                      "MAILER-DAEMON Sat Nov 21 09:05:03 2026",
                      "MAILER-DAEMON Sat Nov 21 09:05:03 2026",
                      "MAILER-DAEMON Sat Nov 21 09:05:03 2026",
                      "MAILER-DAEMON Sat Nov 21 09:05:03 2026"],
            "Archive/2023/Q1": ["MAILER-DAEMON Sat Jan 14 23:00:00 2023",
                                "MAILER-DAEMON Tue Jan 17 00:30:00 2023"],
            "Big": ["big@example.net Sat Nov 21 09:05:03 2026",
                    "MAILER-DAEMON Sun Sep  3 12:05:09 2023"],
        }
        for box, lines in want.items():
            got = [e.from_line for e in mmtest.read_mbox(self.path(box))]
            self.assertEqual(got, lines, box)

    def test_mbox_text_escaping(self):
        with open(self.path("INBOX"), "rb") as f:
            text = f.read()
        self.assertTrue(text.startswith(
            b"From bounce@example.net Sun Sep  3 12:05:09 2023\n"), text[:80])
        self.assertIn(b"\n\n>From the start\n>>From quoted\n>>>From twice\nFrom\nFrom:\n"
                      b" From indented\n>From\n>From  two\n\nFrom ", text)
        self.assertIn(b"\nlast line has no end\n\nFrom ", text)
        self.assertNotIn(b"\r\n", text)
        self.assertTrue(text.endswith(b"Subject: header only, no blank line\n\n"))

    def test_big_message(self):
        entries = mmtest.read_mbox(self.path("Big"))
        self.assertEqual(len(entries), 2)
        self.assertGreater(len(entries[0].data), 20 * 1024 * 1024)
        self.assertEqual(entries[0].data, self.sent["Big"][0][2])

    def test_modes(self):
        mu.assert_modes(self, os.path.join(self.tmp, "out"))
        state = os.path.join(self.tmp, "state")
        mu.assert_modes(self, state)
        self.assertTrue(os.listdir(state))

    def test_no_lock_files_left(self):
        for rel in self.snap1:
            self.assertFalse(rel.endswith(".lock"), rel)

    def test_second_run_adds_and_opens_nothing(self):
        self.assertEqual(self.run2.returncode, 0, self.run2.stderr)
        checked, opened, messages = mu.count_opened(self.run2.stdout)
        self.assertEqual((checked, opened, messages), (1 + len(MAILBOXES), 0, 0))
        self.assertEqual(mu.examined(self.run2.stderr), [])
        self.assertNotIn("FETCH", self.run2.stderr)
        self.assertEqual(self.snap1, self.snap2)

    def test_no_flag_changed_on_the_server(self):
        def strip(fl):
            return {b: {u: f - {r"\Recent"} for u, f in m.items()} for b, m in fl.items()}
        self.assertEqual(strip(self.flags_before), strip(self.flags_after))
        self.assertNotIn(r"\Seen", self.flags_after["INBOX"][2])
        self.assertIn(r"\Seen", self.flags_after["INBOX"][1])

    def test_bodies_fetched_with_peek_and_examine(self):
        log = self.run1.stderr
        self.assertNotRegex(log, r" C: \S+ SELECT ")
        self.assertNotRegex(log, r" C: \S+ (UID )?STORE ")
        for m in re.finditer(r" C: \S+ UID FETCH (.*)$", log, re.MULTILINE):
            self.assertNotRegex(m.group(1), r"BODY\[|RFC822[ )]|RFC822\.TEXT")

    def test_password_never_printed(self):
        for res in (self.run1, self.run2):
            self.assertNotIn(self.pw, res.stdout + res.stderr)


class Incremental(unittest.TestCase):
    """New deliveries after a sync are appended, and only they; a mailbox empty at the
    first run and one created after it are picked up."""

    def test_new_mail_only(self):
        fx = mmtest.Fixture()
        user, pw = fx.new_user("incr")
        for name in ("Lists/dev", "Empty", "Quiet"):
            fx.create_mailbox(user, pw, name)
        mk = mmtest.make_message
        fx.append_many(user, pw, "INBOX", [mk(f"inbox {i}", f"From {i}\r\n") for i in range(5)],
                       date=D_SEP3)
        fx.append_many(user, pw, "Lists/dev", [mk(f"dev {i}") for i in range(3)])
        fx.append(user, pw, "Quiet", mk("quiet"))
        with mmtest.TempDir() as tmp:
            conf = mmtest.write_config(tmp, [fx.account(tmp, user, pw)])
            res = mmtest.run_mboxmirror("-c", conf, "--once", "-v")
            self.assertEqual(res.returncode, 0, res.stderr)
            checked, opened, messages = mu.count_opened(res.stdout)
            # Lists itself is \Noselect.
            self.assertEqual((checked, messages), (4, 9))
            self.assertIn(opened, (3, 4))
            quiet = mu.snapshot(os.path.join(tmp, "out"))["test/Quiet.mbox"]

            fx.deliver(user, "INBOX", mk("delivered 1", "From new\r\n"))
            fx.deliver(user, "Empty", mk("first in empty"))
            fx.append(user, pw, "Lists/dev", mk("dev new"), date=D_2001)
            fx.create_mailbox(user, pw, "Later")
            fx.append(user, pw, "Later", mk("later"))
            res = mmtest.run_mboxmirror("-c", conf, "--once", "-v")
            self.assertEqual(res.returncode, 0, res.stderr)
            self.assertEqual(mu.count_opened(res.stdout), (5, 4, 4))
            self.assertEqual(sorted(mu.examined(res.stderr)),
                             sorted(["INBOX", "Empty", "Lists/dev", "Later"]))
            for box in ("INBOX", "Lists/dev", "Empty", "Quiet", "Later"):
                mu.assert_mirror_exact(self, fx, user, pw, box, mu.mbox_path(tmp, "test", box))
            self.assertEqual(mu.snapshot(os.path.join(tmp, "out"))["test/Quiet.mbox"], quiet)
            # The messages of the first run were not fetched again: every body
            # fetch starts after the last UID mirrored ("4:*" with the EXAMINE
            # for a few new ones, "4" after a size query).
            fetches = re.findall(r" C: \S+ UID FETCH (\d+)\S* \(UID INTERNALDATE",
                                 res.stderr)
            self.assertEqual(sorted(fetches), ["1", "1", "4", "6"])

            res = mmtest.run_mboxmirror("-c", conf, "--once", "-v")
            self.assertEqual(res.returncode, 0, res.stderr)
            self.assertEqual(mu.count_opened(res.stdout), (5, 0, 0))


class Slots(unittest.TestCase):
    """--once runs the selected accounts through max_connections slots, first come
    first served in config order: never more syncs at once than the limit, a failed
    account frees its slot like any other, and -a leaves the others alone."""

    TRANSITION = re.compile(r"account (\S+): sync (\w+) -> (\w+)$", re.M)

    def transitions(self, stderr):
        return self.TRANSITION.findall(stderr)

    def most_at_once(self, transitions):
        running, most = set(), 0
        for name, old, new in transitions:
            if new == "running":
                running.add(name)
            elif old == "running":
                running.discard(name)
            most = max(most, len(running))
        return most

    def test_limit_order_and_selection(self):
        fx = mmtest.Fixture()
        mk = mmtest.make_message
        with mmtest.TempDir() as tmp:
            accounts = []
            for name in ("one", "two", "three"):
                user, pw = fx.new_user(f"slot{name}")
                fx.append(user, pw, "INBOX", mk(f"for {name}"))
                accounts.append(fx.account(tmp, user, pw, name=name))
            # "bad" logs in with a wrong password; it sits in the middle.
            user, pw = fx.new_user("slotbad")
            accounts.insert(1, fx.account(tmp, user, pw + "x", name="bad"))
            names = [a["__name__"] for a in accounts]

            conf = mmtest.write_config(tmp, accounts, {"max_connections": "1"})
            res = mmtest.run_mboxmirror("-c", conf, "--once", "-v")
            self.assertEqual(res.returncode, 1, res.stderr)
            tr = self.transitions(res.stderr)
            started = [n for n, _, new in tr if new == "running"]
            ended = [n for n, old, new in tr if old == "running" and new == "idle"]
            self.assertEqual(started, names, res.stderr)
            self.assertEqual(ended, names, res.stderr)
            self.assertEqual(self.most_at_once(tr), 1, res.stderr)
            summaries = re.findall(r"^(\S+): (ok|FAILED)", res.stdout, re.M)
            self.assertEqual(summaries, [("one", "ok"), ("bad", "FAILED"),
                                         ("two", "ok"), ("three", "ok")], res.stdout)

            # Two slots: the first two start before either ends.
            conf = mmtest.write_config(tmp, accounts, {"max_connections": "2"})
            res = mmtest.run_mboxmirror("-c", conf, "--once", "-v")
            self.assertEqual(res.returncode, 1, res.stderr)
            tr = self.transitions(res.stderr)
            self.assertEqual([n for n, _, new in tr if new == "running"], names,
                             res.stderr)
            first_end = next(i for i, (_, old, _n) in enumerate(tr) if old == "running")
            self.assertEqual([n for n, _, new in tr[:first_end] if new == "running"],
                             names[:2], res.stderr)
            self.assertEqual(self.most_at_once(tr), 2, res.stderr)

            # Only the accounts named run; all of them succeed: exit 0.
            res = mmtest.run_mboxmirror("-c", conf, "--once", "-v", "-a", "three",
                                        "-a", "one")
            self.assertEqual(res.returncode, 0, res.stderr)
            self.assertEqual(sorted({n for n, _, _n in self.transitions(res.stderr)}),
                             ["one", "three"], res.stderr)
            self.assertEqual(sorted(re.findall(r"^(\S+): ok", res.stdout, re.M)),
                             ["one", "three"], res.stdout)


class ChangedByAPerson(unittest.TestCase):
    """A mbox someone else shortened or rewrote: warn, keep what is there, append the
    new mail as entries of their own (DESIGN.md section 5: lose nothing)."""

    def check(self, change, warning):
        fx = mmtest.Fixture()
        user, pw = fx.new_user("chg")
        mk = mmtest.make_message
        fx.append_many(user, pw, "INBOX", [mk(f"old {i}", f"old {i}\r\n") for i in range(3)])
        with mmtest.TempDir() as tmp:
            conf = mmtest.write_config(tmp, [fx.account(tmp, user, pw)])
            mmtest.run_mboxmirror("-c", conf, "--once", check=True)
            path = mu.mbox_path(tmp, "test", "INBOX")
            with open(path, "rb") as f:
                data = f.read()
            data = change(data)
            with open(path, "wb") as f:
                f.write(data)
            fx.append(user, pw, "INBOX", mk("new", "new\r\n"))
            res = mmtest.run_mboxmirror("-c", conf, "--once")
            self.assertEqual(res.returncode, 0, res.stderr)
            self.assertRegex(res.stderr, warning)
            with open(path, "rb") as f:
                now = f.read()
            self.assertTrue(now.startswith(data), "the changed content was not kept")
            new = mu.server_messages(fx, user, pw, "INBOX")[-1:]
            tail = mu.expected_mbox(new)
            self.assertTrue(now.endswith(tail), now[-400:])
            self.assertIn(len(now) - len(data) - len(tail), (0, 1, 2))
            self.assertEqual(mmtest.read_mbox(path)[-1].data, mu.read_back(new[0][2]))

    def test_shortened(self):
        # A person deleted the last message with a mail reader.
        self.check(lambda d: d[:d.rindex(b"\nFrom ") + 1], r"(?i)warning.*shorter")

    def test_rewritten_longer(self):
        # A mail reader added a status header to the first message.
        self.check(lambda d: d.replace(b"\nSubject: old 0\n", b"\nSubject: old 0\nStatus: RO\n"),
                   r"(?i)warning.*(rewritten|changed)")

    def test_reader_appended_a_message(self):
        # A mail reader (or a delivery program) appended a whole message of its
        # own between two syncs: it is no leftover of ours and stays.
        self.check(lambda d: d + b"From reader@example.org Mon Jan  1 00:00:00 2024\n"
                   b"Subject: saved by a reader\n\nFrom a reader.\n\n",
                   r"(?i)warning.*changed")


if __name__ == "__main__":
    unittest.main(verbosity=2)
