"""--verify against the private Dovecot: a fresh mirror verifies whole (exit 0); one
flipped byte, a truncated tail, a removed entry and a duplicated entry are each
reported with the mailbox and the UID (exit 1); --deep finds a body changed on disk
with its length kept, also where the local check cannot (an index rebuilt from the
damaged file: only the server's bytes tell); --json carries the same problems; and no
run changes any file."""

import json
import os
import re
import shutil
import unittest

import mmtest
import mirror_util as mu
from faultproxy import FaultProxy, Stall, closed_port

BOXES = {"INBOX": 5, "Archive/Ärger": 2}


def entry_starts(data):
    """Offsets of the From_ lines that start entries."""
    return [i for i in range(len(data)) if data.startswith(b"From ", i)
            and (i == 0 or data[i - 2:i] == b"\n\n")]


class Verify(unittest.TestCase):
    """One account mirrored once; each test damages a copy of INBOX's mbox and puts
    the original back."""

    @classmethod
    def setUpClass(cls):
        fx = cls.fx = mmtest.Fixture()
        cls.user, cls.pw = fx.new_user("verify")
        mk = mmtest.make_message
        for box, n in BOXES.items():
            if box != "INBOX":
                fx.create_mailbox(cls.user, cls.pw, box)
            fx.append_many(cls.user, cls.pw, box,
                           [mk(f"{box} {i}", f"body {i}\r\nFrom the middle\r\n")
                            for i in range(n)])
        cls.tmpctx = mmtest.TempDir()
        cls.tmp = cls.tmpctx.__enter__()
        cls.conf = mmtest.write_config(cls.tmp, [fx.account(cls.tmp, cls.user, cls.pw)],
                                       {"log_level": "info"})
        mmtest.run_mboxmirror("-c", cls.conf, "--once", check=True)
        cls.inbox = mu.mbox_path(cls.tmp, "test", "INBOX")
        with open(cls.inbox, "rb") as f:
            cls.original = f.read()
        cls.starts = entry_starts(cls.original)
        cls.uids = [u for u, _, _ in mu.server_messages(fx, cls.user, cls.pw, "INBOX")]

    @classmethod
    def tearDownClass(cls):
        cls.tmpctx.__exit__(None, None, None)

    def setUp(self):
        self.before = self.tree()

    def tearDown(self):
        with open(self.inbox, "wb") as f:
            f.write(self.original)

    def tree(self):
        return (mu.snapshot(os.path.join(self.tmp, "out")),
                mu.snapshot(os.path.join(self.tmp, "state")))

    def damage(self, data):
        with open(self.inbox, "wb") as f:
            f.write(data)
        self.before = self.tree()

    def verify(self, *args):
        res = mmtest.run_mboxmirror("-c", self.conf, "--verify", *args, timeout=300)
        self.assertEqual(self.tree(), self.before, "--verify changed a file")
        return res

    def problems(self, stdout, box="INBOX"):
        """{uid or None: [text]} of the problem lines for box."""
        out = {}
        for m in re.finditer(rf"^account test: mailbox {re.escape(box)}: "
                             r"(?:UID (\d+): )?(.*)$", stdout, re.M):
            out.setdefault(int(m.group(1)) if m.group(1) else None, []).append(m.group(2))
        return out

    def json_problems(self, *args):
        res = self.verify("--json", *args)
        doc = json.loads(res.stdout)
        [acct] = doc["accounts"]
        self.assertEqual(acct["account"], "test")
        got = {}
        for mb in acct["mailboxes"]:
            for p in mb["problems"]:
                got.setdefault((mb["mailbox"], p["uid"]), []).append(p["kind"])
        return res, doc, got

    def test_whole_mirror(self):
        res = self.verify()
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertRegex(res.stdout, r"(?m)^account test: whole: 2 mailboxes, 7 messages "
                         r"in the mirror$")
        self.assertEqual(self.problems(res.stdout), {})
        res, doc, got = self.json_problems()
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(got, {})
        self.assertTrue(doc["whole"])
        self.assertEqual(doc["exit_status"], 0)
        boxes = {m["mailbox"]: m for m in doc["accounts"][0]["mailboxes"]}
        self.assertEqual(sorted(boxes), sorted(BOXES))
        for box, n in BOXES.items():
            self.assertEqual(boxes[box]["messages"], n)
            self.assertEqual(boxes[box]["listed"], n)
            self.assertEqual(boxes[box]["index"], "loaded")
            self.assertTrue(boxes[box]["server_checked"])
        # Pipelined: each mailbox one EXAMINE and one size query, nothing else.
        res = self.verify("-v")
        self.assertEqual(len(mu.examined(res.stderr)), len(BOXES), res.stderr)
        self.assertEqual(re.findall(r" C: \S+ UID FETCH (.*)$", res.stderr, re.M),
                         ["1:* (UID RFC822.SIZE)"] * len(BOXES))

    def test_flipped_byte(self):
        at = self.starts[1] + (self.starts[2] - self.starts[1]) // 2
        d = bytearray(self.original)
        d[at] ^= 0x01
        self.damage(bytes(d))
        res = self.verify()
        self.assertEqual(res.returncode, 1, res.stderr)
        p = self.problems(res.stdout)
        self.assertEqual(list(p), [self.uids[1]], res.stdout)
        self.assertRegex(p[self.uids[1]][0], rf"^changed: .* at offset {self.starts[1]} ")
        self.assertRegex(res.stdout, r"(?m)^account test: PROBLEMS: .*1 problem$")
        res2, doc, got = self.json_problems()
        self.assertEqual(res2.returncode, 1)
        self.assertEqual(got, {("INBOX", self.uids[1]): ["changed"]})
        self.assertFalse(doc["whole"])

    def test_truncated_tail(self):
        self.damage(self.original[:-40])
        res = self.verify()
        self.assertEqual(res.returncode, 1, res.stderr)
        p = self.problems(res.stdout)
        self.assertRegex(p[self.uids[-1]][0], r"^lost: the file ends before its entry")
        self.assertRegex(p[None][0], r"its tail was cut")
        self.assertEqual(sorted(k for k in p if k), [self.uids[-1]])
        _, _, got = self.json_problems()
        self.assertEqual(got, {("INBOX", self.uids[-1]): ["lost"],
                               ("INBOX", None): ["short"]})

    def test_removed_entry(self):
        s = self.starts
        self.damage(self.original[:s[2]] + self.original[s[3]:])
        res = self.verify()
        self.assertEqual(res.returncode, 1, res.stderr)
        p = self.problems(res.stdout)
        self.assertRegex(p[self.uids[2]][0], r"^removed: not in the file")
        # The entries after it are intact, one line for all of them.
        self.assertRegex(p[self.uids[3]][0],
                         rf"^to UID {self.uids[4]}: 2 entries intact but -{s[3] - s[2]} ")
        self.assertEqual(len(p), 2, res.stdout)
        _, _, got = self.json_problems()
        self.assertEqual(got, {("INBOX", self.uids[2]): ["removed"],
                               ("INBOX", self.uids[3]): ["moved"]})

    def test_duplicated_entry(self):
        s = self.starts
        copy = self.original[s[1]:s[2]]
        self.damage(self.original[:s[2]] + copy + self.original[s[2]:])
        res = self.verify()
        self.assertEqual(res.returncode, 1, res.stderr)
        p = self.problems(res.stdout)
        self.assertIn(f"in the file twice: another copy at offset {s[2]} ({len(copy)} bytes)",
                      p[self.uids[1]])
        _, _, got = self.json_problems()
        self.assertEqual(got[("INBOX", self.uids[1])], ["duplicate_entry"])

    def test_deep_changed_body_same_length(self):
        s = self.starts
        entry = self.original[s[3]:s[4]]
        changed = entry.replace(b"body 3", b"BODY 3")
        self.assertEqual(len(changed), len(entry))
        self.damage(self.original[:s[3]] + changed + self.original[s[4]:])
        res = self.verify("--deep")
        self.assertEqual(res.returncode, 1, res.stderr)
        p = self.problems(res.stdout)
        # The index's digest tells locally; the server's bytes tell too.
        self.assertEqual(len(p[self.uids[3]]), 2, res.stdout)
        self.assertRegex(p[self.uids[3]][0], r"^changed")
        self.assertRegex(p[self.uids[3]][1], rf"^the server's message differs from the "
                         rf"mirror's entry at offset {s[3]} ")
        self.assertRegex(res.stdout, r"7 compared with the server's bytes")
        self.assertRegex(res.stderr, r"account test: --deep: downloading 7 messages again")

    def test_deep_without_index(self):
        """A mirror whose index is rebuilt from the file itself (made before the index
        existed, or the index lost) cannot tell a changed body locally: --deep
        compares with the server's bytes and can."""
        s = self.starts
        index = [f for f in os.listdir(os.path.join(self.tmp, "state", "test"))
                 if f.startswith("index-")]
        self.assertEqual(len(index), len(BOXES))
        saved = {}
        for f in index:
            p = os.path.join(self.tmp, "state", "test", f)
            with open(p, "rb") as fp:
                saved[p] = fp.read()
            os.unlink(p)
        try:
            entry = self.original[s[3]:s[4]]
            self.damage(self.original[:s[3]] + entry.replace(b"body 3", b"BODY 3")
                        + self.original[s[4]:])
            res = self.verify()
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
            self.assertIn("no index; rebuilt from the mbox in memory", res.stderr)
            self.assertRegex(res.stdout, r"2 indexes rebuilt")
            res, doc, got = self.json_problems("--deep")
            self.assertEqual(res.returncode, 1, res.stderr)
            self.assertEqual(got, {("INBOX", None): ["not_on_server"]})
            [prob] = [m for m in doc["accounts"][0]["mailboxes"]
                      if m["mailbox"] == "INBOX"][0]["problems"]
            self.assertEqual((prob["offset"], prob["length"]), (s[3], s[4] - s[3]))
        finally:
            for p, data in saved.items():
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as fp:
                    fp.write(data)

    def test_server_deleted_and_new(self):
        """Deleted on the server (a message, a mailbox): counted, kept, no problem;
        new there: counted.  An account never synced: nothing to verify (exit 2)."""
        fx = mmtest.Fixture()
        user, pw = fx.new_user("verifydel")
        mk = mmtest.make_message
        fx.append_many(user, pw, "INBOX", [mk(f"d {i}") for i in range(3)])
        fx.create_mailbox(user, pw, "Old")
        fx.append(user, pw, "Old", mk("old"))
        with mmtest.TempDir() as tmp:
            conf = mmtest.write_config(tmp, [fx.account(tmp, user, pw)])
            res = mmtest.run_mboxmirror("-c", conf, "--verify")
            self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
            self.assertEqual(res.stdout, "account test: INCOMPLETE: not synced yet, "
                             "nothing to verify\n")
            mmtest.run_mboxmirror("-c", conf, "--once", check=True)
            with fx.imap(user, pw) as c:
                c.select("INBOX")
                c.uid("STORE", "2", "+FLAGS", r"(\Deleted)")
                c.expunge()
            fx.append(user, pw, "INBOX", mk("new"))
            fx.delete_mailbox(user, pw, "Old")
            res = mmtest.run_mboxmirror("-c", conf, "--verify")
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
            self.assertRegex(res.stdout, r"(?m)^account test: whole: 2 mailboxes, 4 messages "
                             r"in the mirror, 1 deleted on the server \(kept\), 1 new on "
                             r"the server \(not synced yet\), 1 mailbox not on the server "
                             r"any more \(kept\)$")
            self.assertRegex(res.stderr, r"mailbox Old: not on the server any more")

    def test_index_rebuilt_by_a_sync(self):
        """A mirror made before the index existed: the next sync that brings mail
        writes an index rebuilt from the mbox, then records the new message with its
        UID.  --verify then checks the old entries' bytes against it and counts them
        against the server, and compares the new one by UID."""
        fx = mmtest.Fixture()
        user, pw = fx.new_user("verifyold")
        mk = mmtest.make_message
        fx.append_many(user, pw, "INBOX", [mk(f"o {i}", f"old {i}\r\n") for i in range(3)])
        with mmtest.TempDir() as tmp:
            conf = mmtest.write_config(tmp, [fx.account(tmp, user, pw)])
            mmtest.run_mboxmirror("-c", conf, "--once", check=True)
            sdir = os.path.join(tmp, "state", "test")
            for f in os.listdir(sdir):
                if f.startswith("index-"):
                    os.unlink(os.path.join(sdir, f))
            fx.append(user, pw, "INBOX", mk("new", "new\r\n"))
            mmtest.run_mboxmirror("-c", conf, "--once", check=True)
            res = mmtest.run_mboxmirror("-c", conf, "--verify", "--json")
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
            [box] = json.loads(res.stdout)["accounts"][0]["mailboxes"]
            self.assertEqual((box["index"], box["messages"], box["listed"]),
                             ("loaded", 4, 4))
            path = mu.mbox_path(tmp, "test", "INBOX")
            with open(path, "rb") as f:
                data = f.read()
            at = data.index(b"old 1")
            with open(path, "wb") as f:
                f.write(data[:at] + b"OLD 1" + data[at + 5:])
            res = mmtest.run_mboxmirror("-c", conf, "--verify")
            self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
            # No UID recorded for it: the problem names the offset.
            self.assertRegex(res.stdout, r"(?m)^account test: mailbox INBOX: changed: "
                             r"the \d+ bytes at offset \d+ differ")

    def test_uidvalidity_changed(self):
        fx = mmtest.Fixture()
        user, pw = fx.new_user("verifyuv")
        fx.create_mailbox(user, pw, "Box")
        fx.append(user, pw, "Box", mmtest.make_message("one"))
        with mmtest.TempDir() as tmp:
            conf = mmtest.write_config(tmp, [fx.account(tmp, user, pw)])
            mmtest.run_mboxmirror("-c", conf, "--once", check=True)
            old = fx.uidvalidity(user, pw, "Box")
            new = fx.recreate_mailbox(user, pw, "Box")
            fx.append(user, pw, "Box", mmtest.make_message("one"))
            res = mmtest.run_mboxmirror("-c", conf, "--verify")
            self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
            self.assertIn(f"account test: mailbox Box: UIDVALIDITY is {new} on the server, "
                          f"{old} in the mirror", res.stdout, res.stderr)

    def test_sync_running(self):
        """While the account lock is held (a sync appending), bytes past the committed
        end are the sync's, not a problem; verify neither waits for the lock nor takes
        it."""
        import fcntl
        lock = os.path.join(self.tmp, "state", "test", "lock")
        self.damage(self.original + b"From x Mon Jan  1 00:00:00 2024\nSubject: y\n\nz\n")
        res = self.verify()
        self.assertEqual(res.returncode, 1, res.stdout)
        self.assertIn("after the last entry", res.stdout)
        with open(lock, "r+") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            f.write("4242\n")
            f.flush()
            self.before = self.tree()
            res = self.verify()
            f.truncate(0)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("a sync is running (pid 4242)", res.stderr)

    def test_server_unreachable(self):
        """No server: the local check still runs; nothing wrong found, but not all
        checked: exit 2."""
        acct = self.fx.account(self.tmp, self.user, self.pw, port=closed_port())
        conf = mmtest.write_config(self.tmp, [acct], filename="unreachable.ini")
        res = mmtest.run_mboxmirror("-c", conf, "--verify")
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        self.assertRegex(res.stdout, r"(?m)^account test: INCOMPLETE: .*not checked "
                         r"against the server$")
        self.damage(self.original[:-40])
        res = mmtest.run_mboxmirror("-c", conf, "--verify")
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn(f"UID {self.uids[-1]}: lost", res.stdout)


class DeepStalled(unittest.TestCase):
    """--deep on a link that stops in the middle of a big body: progress lines with the
    time left every 5 seconds, then the timeout; what was checked is reported and the
    run says it could not check everything (exit 2)."""

    def test_progress_then_timeout(self):
        fx = mmtest.Fixture()
        user, pw = fx.new_user("verifydeep")
        fx.append(user, pw, "INBOX", mmtest.make_message("small"))
        fx.append(user, pw, "INBOX", mu.attachment_message("big", 4 * 1024 * 1024))
        with mmtest.TempDir() as tmp:
            conf = mmtest.write_config(tmp, [fx.account(tmp, user, pw)])
            mmtest.run_mboxmirror("-c", conf, "--once", check=True)
            with FaultProxy(fx.host, fx.imaps_port, [Stall(at_byte=1024 * 1024)]) as proxy:
                acct = fx.account(tmp, user, pw, port=proxy.port)
                conf = mmtest.write_config(tmp, [acct], filename="stalled.ini",
                                           general={"log_level": "info", "timeout": "8s"})
                before = mu.snapshot(os.path.join(tmp, "out"))
                res = mmtest.run_mboxmirror("-c", conf, "--verify", "--deep")
            self.assertEqual(mu.snapshot(os.path.join(tmp, "out")), before)
            self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
            self.assertRegex(res.stderr, r"account test: --deep: mailbox INBOX: \d+/2 "
                             r"messages; account: \d+/2 messages, [\d.]+/[\d.]+ MB, "
                             r"[\d.]+ MB/s, about \d+s left")
            self.assertRegex(res.stdout, r"(?m)^account test: INCOMPLETE: 1 mailbox, 2 "
                             r"messages in the mirror, \d compared with the server's bytes, "
                             r"not checked against the server$")


if __name__ == "__main__":
    unittest.main(verbosity=2)
