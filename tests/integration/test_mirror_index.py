"""The per-mailbox message index (DESIGN.md, "The message index"): after a sync every
record agrees with the mbox bytes (offset, length, SHA-256 of the entry) and with the
server (UID, UIDVALIDITY, RFC822.SIZE, INTERNALDATE and its zone, FLAGS and keywords,
Message-ID); later syncs extend it; a missing index is rebuilt from the mbox; and a
kill -9 in the middle of a sync leaves index and mbox consistent, before and after the
next run."""

import os
import random
import re
import unittest

import mmindex
import mmtest
import mirror_util as mu

D1 = '"03-Sep-2023 14:05:09 +0200"'
D2 = '"31-Dec-1999 23:59:59 -0530"'
D3 = '"21-Nov-2026 09:05:03 +0000"'

def raw(subject, body, message_id_header):
    """A message whose only Message-ID is message_id_header (make_message adds one)."""
    return (f"{message_id_header}\r\nFrom: a@example.org\r\nSubject: {subject}\r\n\r\n"
            f"{body}").encode()


# (mailbox, date, flags, message)
def corpus():
    mk = mmtest.make_message
    return [
        ("INBOX", D1, (r"\Seen",), raw("seen", "From the start\r\n>From quoted\r\n",
                                        "Message-ID: <seen@example.org> (c)")),
        ("INBOX", D2, (r"\Flagged", r"\Answered", "$Forwarded", "Project_X"),
         raw("flagged", "body\r\n", "message-id:\r\n <folded@example.org>")),
        ("INBOX", D3, (), mk("no final newline", "no end")),
        ("INBOX", D3, (r"\Draft", r"\Seen"), mk("empty body", "")),
        ("INBOX", D3, (), b"Subject: bare LF\n\nline\nFrom bare\n"),
        ("INBOX", D3, (), b"Subject: no Message-ID\r\n\r\nx\r\n"),
        ("Work", D1, ("$Label1",), mk("work 1", "one\r\n",
                                       extra_headers=["Message-ID: <w1@example.org>"])),
        ("Work", D3, (r"\Deleted",), mk("work 2", "two\r\n")),
        ("Ärger", D2, (r"\Seen", "Junk"), mk("ärger", "Ärger\r\n")),
    ]


MAILBOXES = ["Work", "Ärger"]


def server_view(fx, user, pw, box):
    """{uid: (size, internaldate text, flags set)} and UIDVALIDITY, read with EXAMINE."""
    with fx.imap(user, pw) as c:
        typ, data = c.select(mmtest._quote(mmtest.mutf7_encode(box)), readonly=True)
        assert typ == "OK", data
        typ, uv = c.status(mmtest._quote(mmtest.mutf7_encode(box)), "(UIDVALIDITY)")
        uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", uv[0]).group(1))
        typ, data = c.uid("FETCH", "1:*", "(UID RFC822.SIZE INTERNALDATE FLAGS)")
        assert typ == "OK", data
    out = {}
    for line in data:
        if not line:
            continue
        line = line if isinstance(line, bytes) else line[0]
        uid = int(re.search(rb"UID (\d+)", line).group(1))
        size = int(re.search(rb"RFC822.SIZE (\d+)", line).group(1))
        date = re.search(rb'INTERNALDATE "([^"]+)"', line).group(1).decode()
        flags = set(re.search(rb"FLAGS \(([^)]*)\)", line).group(1).decode().split())
        out[uid] = (size, date, flags - {"\\Recent"})
    return out, uidvalidity


def zone_minutes(date):
    m = re.search(r"([+-])(\d\d)(\d\d)$", date)
    v = int(m.group(2)) * 60 + int(m.group(3))
    return -v if m.group(1) == "-" else v


class IndexTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fx = mmtest.Fixture()

    def setUp(self):
        self.tmp = mmtest.temp_dir(self)

    def config(self, user, pw, **general):
        acct = self.fx.account(self.tmp, user, pw)
        gen = {"log_level": "info"}
        gen.update(general)
        return mmtest.write_config(self.tmp, [acct], general=gen)

    def load(self, box):
        path = mmindex.find_index(os.path.join(self.tmp, "state"), box + ".mbox")
        name, records = mmindex.load(path)
        self.assertEqual(name, box + ".mbox")
        return path, records

    def mbox_bytes(self, box):
        with open(mu.mbox_path(self.tmp, "test", box), "rb") as f:
            return f.read()

    def assert_consistent(self, box, whole=True):
        _, records = self.load(box)
        problems = mmindex.entry_problems(records, self.mbox_bytes(box), whole=whole)
        self.assertEqual(problems, [], box)
        return records

    def assert_matches_server(self, user, pw, box, bodies=None):
        records = self.assert_consistent(box)
        server, uidvalidity = server_view(self.fx, user, pw, box)
        self.assertEqual([r.uid for r in records], sorted(server), box)
        for r in records:
            size, date, flags = server[r.uid]
            with self.subTest(box=box, uid=r.uid):
                self.assertEqual(r.uidvalidity, uidvalidity)
                self.assertEqual(r.size, size)
                self.assertEqual(r.internaldate, mu.internaldate_epoch(date))
                self.assertEqual(r.tz_minutes, zone_minutes(date))
                self.assertEqual(r.flag_names(), {f for f in flags if f.startswith("\\")})
                self.assertEqual(r.keyword_set(), {f for f in flags
                                                   if not f.startswith("\\")})
                self.assertFalse(r.flags & mmindex.REBUILT)
                if bodies is not None:
                    mid = mmindex.header_message_id(bodies[r.uid])
                    self.assertEqual(r.message_id_hash, 0 if mid is None else
                                     mmindex.message_id_hash(mid))
        return records

    def test_index_matches_mbox_and_server(self):
        user, pw = self.fx.new_user("index")
        for box in MAILBOXES:
            self.fx.create_mailbox(user, pw, box)
        bodies = {}
        for box, date, flags, msg in corpus():
            uid = self.fx.append(user, pw, box, msg, flags=flags, date=date)
            bodies.setdefault(box, {})[uid] = msg
        conf = self.config(user, pw)
        res = mmtest.run_mboxmirror("-c", conf, "--once", timeout=120)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertNotIn("rebuilt", res.stderr)
        for box in ["INBOX"] + MAILBOXES:
            records = self.assert_matches_server(user, pw, box, bodies[box])
            self.assertEqual(len(records), len(bodies[box]))
        # Keywords and flags really arrived (not just empty on both sides).
        _, inbox = self.load("INBOX")
        self.assertEqual(inbox[1].keyword_set(), {"$Forwarded", "Project_X"})
        self.assertEqual(inbox[1].flag_names(), {"\\Flagged", "\\Answered"})
        self.assertEqual(inbox[1].message_id_hash,
                         mmindex.message_id_hash(b"<folded@example.org>"))
        self.assertEqual(inbox[0].message_id_hash,
                         mmindex.message_id_hash(b"<seen@example.org>"))
        self.assertEqual(inbox[5].message_id_hash, 0)
        # (The zone is the server's: Dovecot answers in its own, whatever APPEND gave;
        # the check against its answer is in assert_matches_server.)
        # Index files are 0600 like every state file; small.
        path, _ = self.load("INBOX")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.assertLess(os.path.getsize(path), 200 * len(inbox))

        # New mail: appended to the index, the old records kept.
        more = mmtest.make_message("later", "later\r\n",
                                   extra_headers=["Message-ID: <later@example.org>"])
        uid = self.fx.append(user, pw, "INBOX", more, flags=(r"\Seen", "Later"))
        bodies["INBOX"][uid] = more
        res = mmtest.run_mboxmirror("-c", conf, "--once", timeout=120)
        self.assertEqual(res.returncode, 0, res.stderr)
        records = self.assert_matches_server(user, pw, "INBOX", bodies["INBOX"])
        self.assertEqual(records[-1].keyword_set(), {"Later"})

        # A missing index (a mirror made before it existed) is rebuilt from the mbox,
        # then the next messages are indexed as fetched.
        os.unlink(path)
        late = mmtest.make_message("after the rebuild", "x\r\n")
        uid = self.fx.append(user, pw, "INBOX", late, flags=(r"\Flagged",))
        res = mmtest.run_mboxmirror("-c", conf, "--once", timeout=120)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertRegex(res.stderr, r"rebuilt the message index .* \(7 messages\).*not "
                                     r"its UID, flags or keywords")
        records = self.assert_consistent("INBOX")
        self.assertEqual(len(records), 8)
        for r in records[:7]:
            self.assertEqual((r.uid, r.uidvalidity, r.flags, r.keywords),
                             (0, 0, mmindex.REBUILT, ""))
        server, _ = server_view(self.fx, user, pw, "INBOX")
        self.assertEqual(records[7].uid, uid)
        self.assertEqual(records[7].flag_names(), {"\\Flagged"})
        self.assertEqual(records[7].size, server[uid][0])
        # What a rebuild can know: sizes (LF counted as CRLF) and dates.
        for r, u in zip(records[:7], sorted(server)[:7]):
            self.assertEqual(r.internaldate, mu.internaldate_epoch(server[u][1]))
            if bodies["INBOX"][u].endswith(b"\r\n") and b"\n" not in \
                    bodies["INBOX"][u].replace(b"\r\n", b""):
                self.assertEqual(r.size, server[u][0])

    def test_uidvalidity_change_moves_the_index(self):
        """The file kept aside keeps its index, renamed with it; the new file gets its
        own, never the old one's records."""
        user, pw = self.fx.new_user("ixuidv")
        self.fx.create_mailbox(user, pw, "Work")
        for i in range(3):
            self.fx.append(user, pw, "Work", mmtest.make_message(f"old {i}", "x\r\n"),
                           flags=(r"\Seen",))
        conf = self.config(user, pw)
        res = mmtest.run_mboxmirror("-c", conf, "--once", timeout=120)
        self.assertEqual(res.returncode, 0, res.stderr)
        old = self.assert_matches_server(user, pw, "Work")
        self.fx.recreate_mailbox(user, pw, "Work")
        self.fx.append(user, pw, "Work", mmtest.make_message("new", "y\r\n"))
        res = mmtest.run_mboxmirror("-c", conf, "--once", timeout=120)
        self.assertEqual(res.returncode, 0, res.stderr)
        new = self.assert_matches_server(user, pw, "Work")
        self.assertEqual(len(new), 1)
        out = os.path.join(self.tmp, "out", "test")
        aside = [f for f in os.listdir(out) if f.startswith("Work.") and f != "Work.mbox"]
        self.assertEqual(len(aside), 1, os.listdir(out))
        path = mmindex.find_index(os.path.join(self.tmp, "state"), aside[0])
        name, records = mmindex.load(path)
        self.assertEqual(name, aside[0])
        self.assertEqual([(r.uid, r.digest) for r in records],
                         [(r.uid, r.digest) for r in old])
        with open(os.path.join(out, aside[0]), "rb") as f:
            self.assertEqual(mmindex.entry_problems(records, f.read()), [])

    def test_mbox_changed_by_another_program(self):
        """A reader deleting a message (a shorter mbox) or appending one of its own: the
        next sync checks the index against the file; messages still there keep their
        records, UIDs and flags, at their new offsets; the stranger gets a rebuilt one."""
        user, pw = self.fx.new_user("ixchanged")
        self.fx.create_mailbox(user, pw, "Work")
        for i in range(3):
            self.fx.append(user, pw, "Work", mmtest.make_message(f"m {i}", f"{i}\r\n"),
                           flags=(r"\Seen",))
        conf = self.config(user, pw)
        res = mmtest.run_mboxmirror("-c", conf, "--once", timeout=120)
        self.assertEqual(res.returncode, 0, res.stderr)
        before = self.assert_matches_server(user, pw, "Work")
        # The first message deleted by rewriting the file.
        mbox = mu.mbox_path(self.tmp, "test", "Work")
        data = self.mbox_bytes("Work")
        with open(mbox, "r+b") as f:
            f.write(data[before[0].offset + before[0].length:])
            f.truncate()
        uid = self.fx.append(user, pw, "Work", mmtest.make_message("new", "n\r\n"),
                             flags=("Later",))
        res = mmtest.run_mboxmirror("-c", conf, "--once", timeout=120)
        self.assertEqual(res.returncode, 0, res.stderr)
        records = self.assert_consistent("Work")
        self.assertIn("checked the message index", res.stderr)
        self.assertEqual([r.uid for r in records], [before[1].uid, before[2].uid, uid])
        self.assertEqual([r.digest for r in records[:2]],
                         [r.digest for r in before[1:]])
        self.assertEqual(records[0].flag_names(), {"\\Seen"})
        self.assertEqual(records[2].keyword_set(), {"Later"})
        # Another program's message appended after ours.
        with open(mbox, "ab") as f:
            f.write(b"From reader@example.org Sun Nov  1 09:05:03 2026\n"
                    b"Subject: theirs\n\nhello\n\n")
        self.fx.append(user, pw, "Work", mmtest.make_message("newer", "m\r\n"))
        res = mmtest.run_mboxmirror("-c", conf, "--once", timeout=120)
        self.assertEqual(res.returncode, 0, res.stderr)
        records = self.assert_consistent("Work")
        self.assertEqual(len(records), 5)
        self.assertEqual([r.uid for r in records[:3]], [before[1].uid, before[2].uid, uid])
        self.assertEqual((records[3].uid, records[3].flags), (0, mmindex.REBUILT))
        self.assertNotEqual(records[4].uid, 0)

    def test_kill9_leaves_index_consistent(self):
        user, pw = self.fx.new_user("ixcrash")
        self.fx.create_mailbox(user, pw, "Bulk")
        rng = random.Random(5)
        msgs = [mmtest.make_message(f"bulk {i}", mu.random_text_body(
            rng, rng.randrange(60 * 1024, 200 * 1024))) for i in range(120)]
        # Half mirrored whole first, so the kills land after committed records.
        self.fx.append_many(user, pw, "Bulk", msgs[:40], date=D1)
        conf = self.config(user, pw)
        res = mmtest.run_mboxmirror("-c", conf, "--once", timeout=300)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.fx.append_many(user, pw, "Bulk", msgs[40:], date=D1)
        mbox = mu.mbox_path(self.tmp, "test", "Bulk")
        base = os.path.getsize(mbox)
        for more in (1 << 20, 6 << 20):
            proc = mu.start_mboxmirror("-c", conf, "--once")
            reached = mu.wait_file_size(mbox, base + more, proc)
            mu.kill(proc)
            self.assertTrue(reached, "the sync ended before the kill")
            # Never ahead of the mbox: every record's entry is in the file, intact;
            # the file may hold more (a tail the next run cuts).
            _, records = self.load("Bulk")
            self.assertGreaterEqual(len(records), 40)
            self.assertEqual(mmindex.entry_problems(records, self.mbox_bytes("Bulk"),
                                                    whole=False), [])
        res = mmtest.run_mboxmirror("-c", conf, "--once", timeout=300)
        self.assertEqual(res.returncode, 0, res.stderr)
        records = self.assert_matches_server(user, pw, "Bulk")
        self.assertEqual(len(records), len(msgs))
        mu.assert_mirror_exact(self, self.fx, user, pw, "Bulk", mbox)


if __name__ == "__main__":
    unittest.main()
