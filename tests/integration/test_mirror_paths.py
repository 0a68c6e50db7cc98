"""Mailbox names cannot make a path leave output (DESIGN.md section 3): unsafe components
are escaped, never dropped, and no two mailboxes share a file.  First with the names
Dovecot accepts, then with a scripted server that sends any bytes at all."""

import os
import re
import unittest

import mmtest
import mirror_fakeimap
import mirror_util as mu

# Tried on Dovecot; it refuses some (.., ., names starting with ~, control bytes): the
# test uses those it accepts and checks that enough were.
DOVECOT_CANDIDATES = ["../x", "a/../../b", "..", ".", "x/./y", "%", "a%b", "..%", "...",
                      ".hidden", "*", "*x", "&", "a\\b", "sp ace", "-", "x/%", "x/...",
                      "x/.y", "~home", "a//b", "/abs", "trailing/", "%2e%2e", "..\\..",
                      "Ünïcödé/../..", "q\"uote"]


def walk(root):
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            out.add(os.path.relpath(os.path.join(dirpath, n), root))
    return out


class Paths(unittest.TestCase):
    def check_confined(self, tmp, before, account="test"):
        """Everything new under tmp is inside out/ACCOUNT or the state directory, and
        every path there resolves inside it (no symlinks, no escapes)."""
        after = walk(tmp)
        new = after - before
        for rel in sorted(new):
            self.assertTrue(rel == "out" or rel == f"out/{account}" or
                            rel.startswith(f"out/{account}/") or rel == "state" or
                            rel.startswith("state/"), f"created outside output: {rel}")
        out = os.path.realpath(os.path.join(tmp, "out", account))
        for dirpath, dirnames, filenames in os.walk(out):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                self.assertFalse(os.path.islink(p), p)
                self.assertTrue(os.path.realpath(p).startswith(out + os.sep), p)
        # Nothing next to tmp either (the parent of out's parent).
        return out

    def files_by_marker(self, out, per_file=1):
        """{marker: relative path} of every mbox under out, each holding per_file
        messages whose bodies name its mailbox, all the same."""
        found = {}
        for dirpath, _, filenames in os.walk(out):
            for f in filenames:
                p = os.path.join(dirpath, f)
                entries = mmtest.read_mbox(p)
                self.assertEqual(len(entries), per_file, f"{p}: {entries}")
                markers = {re.search(rb"marker (\d+)", e.data).group(1) for e in entries}
                self.assertEqual(len(markers), 1, f"{p} mixes mailboxes {markers}")
                marker = int(markers.pop())
                self.assertNotIn(marker, found, f"{p} duplicates a mailbox")
                found[marker] = os.path.relpath(p, out)
        return found

    def test_dovecot_names(self):
        fx = mmtest.Fixture()
        user, pw = fx.new_user("paths")
        accepted = []
        for name in DOVECOT_CANDIDATES:
            try:
                fx.create_mailbox(user, pw, name)
            except RuntimeError:
                continue
            accepted.append(name)
        self.assertGreaterEqual(len(accepted), 8, accepted)
        names = [n for n in fx.list_mailboxes(user, pw)]
        selectable = []
        for i, name in enumerate(names):
            try:
                fx.append(user, pw, name, mmtest.make_message(f"m{i}", f"marker {i}\r\n"))
            except RuntimeError:
                continue        # \Noselect parents
            selectable.append((i, name))
        with mmtest.TempDir() as top:
            tmp = os.path.join(top, "inner")
            os.mkdir(tmp, 0o700)
            conf = mmtest.write_config(tmp, [fx.account(tmp, user, pw)])
            before_top = walk(top)
            before = walk(tmp)
            res = mmtest.run_mboxmirror("-c", conf, "--once")
            self.assertEqual(res.returncode, 0, res.stderr)
            out = self.check_confined(tmp, before)
            self.assertEqual(walk(top) - before_top,
                             {"inner/" + r for r in walk(tmp) - before})
            found = self.files_by_marker(out)
            self.assertEqual(sorted(found), sorted(i for i, _ in selectable),
                             f"names {selectable}, files {found}")
            mu.assert_modes(self, os.path.join(tmp, "out"))
            for i, name in selectable:
                mu.assert_mirror_exact(self, fx, user, pw, name, os.path.join(out, found[i]))
            # And a second run finds them all unchanged.
            res = mmtest.run_mboxmirror("-c", conf, "--once")
            self.assertEqual(mu.count_opened(res.stdout)[1:], (0, 0), res.stderr)

    def test_hostile_server_names(self):
        slash = b"/"
        raw = [
            (slash, b".."), (slash, b"."), (slash, b"../x"), (slash, b"a/../../b"),
            (slash, b"/abs"), (slash, b"a//b"), (slash, b"x/.."), (slash, b"x/./y"),
            (slash, b"../../../../../../tmp/evil"), (slash, b"INBOX/../../z"),
            (slash, b"trailing/"), (slash, b"%"), (slash, b"..%"), (slash, b"~"),
            (b".", b"..y"), (b".", b"..."), (b".", b".x."), (b".", b"a..b"),
            (None, b"../nodelim"), (None, b"a/b"),
            # Modified UTF-7 that decodes to "/" or "..": the decoded name is what
            # becomes a path, so it must be checked after decoding.
            (slash, b"&AC8-etc"), (slash, b"&AC4ALg-"), (slash, b"&AC4ALgAv-x"),
            (slash, b"q&AC8-&AC4ALg-&AC8-r"), (b"\\", b"..\\..\\w"),
            (slash, b"INBOX"), (slash, b"a\\b"), (b".", b"a.b"), (slash, b"a.b.2"),
            (slash, b"x.mbox/y"), (slash, b"x"), (slash, b"x.mbox"),
        ]
        mailboxes = []
        # a//b and a..b, a/b and a.b: one path from two delimiters, yet two
        # mailboxes (with a.b.2 then taking the name a disambiguation might use).
        for i, (delim, name) in enumerate(raw):
            msg = mmtest.make_message(f"hostile {i}", f"marker {i}\r\n")
            mailboxes.append((delim, name, [msg]))
        srv = mirror_fakeimap.FakeImap(mailboxes).start()
        try:
            with mmtest.TempDir() as top:
                tmp = os.path.join(top, "a", "b")
                os.makedirs(tmp, 0o700)
                acct = {"__name__": "test", "host": "127.0.0.1", "port": str(srv.port),
                        "tls": "none", "allow_plaintext": "yes", "user": "u",
                        "password": "hostile-secret", "output": os.path.join(tmp, "out",
                                                                             "test")}
                conf = mmtest.write_config(tmp, [acct])
                before_top = walk(top)
                before = walk(tmp)
                res = mmtest.run_mboxmirror("-c", conf, "--once", "-v")
                self.assertEqual(srv.errors, [])
                self.assertEqual(res.returncode, 0, res.stderr)
                out = self.check_confined(tmp, before)
                self.assertEqual(walk(top) - before_top,
                                 {"a/b/" + r for r in walk(tmp) - before})
                found = self.files_by_marker(out)
                # Escaped, never dropped: every mailbox has its own file.
                self.assertEqual(sorted(found), list(range(len(raw))),
                                 f"missing: {[raw[i] for i in range(len(raw)) if i not in found]}")
                self.assertNotIn("hostile-secret", res.stdout + res.stderr)
                # The escapes are stable: a second run adds nothing anywhere.
                snap = mu.snapshot(out)
                res = mmtest.run_mboxmirror("-c", conf, "--once")
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertEqual(mu.count_opened(res.stdout)[1:], (0, 0))
                self.assertEqual(mu.snapshot(out), snap)
                # New mail everywhere goes to each mailbox's own file.
                for i, (_, _, msgs) in enumerate(mailboxes):
                    msgs.append(mmtest.make_message(f"again {i}", f"marker {i}\r\n"))
                res = mmtest.run_mboxmirror("-c", conf, "--once")
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertEqual(mu.count_opened(res.stdout)[1:], (len(raw), len(raw)))
                self.assertEqual(self.files_by_marker(out, per_file=2), found)
        finally:
            srv.stop()

    def fake_account(self, tmp, srv):
        acct = {"__name__": "test", "host": "127.0.0.1", "port": str(srv.port),
                "tls": "none", "allow_plaintext": "yes", "user": "u",
                "password": "pw", "output": os.path.join(tmp, "out", "test")}
        return mmtest.write_config(tmp, [acct]), acct["output"]

    def test_blocked_mailbox_skipped(self):
        """A mailbox whose file cannot be made (a file, a symlink or a FIFO in the way) is
        skipped with a message naming it and the path; the others are mirrored, the run
        fails, and once the obstacle is gone the next run mirrors it."""
        names = [b"INBOX", b"Archive/2023", b"Links/x", b"Work", b"Zeta"]
        mailboxes = [(b"/", n, [mmtest.make_message(f"m{i}", f"marker {i}\r\n")])
                     for i, n in enumerate(names)]
        srv = mirror_fakeimap.FakeImap(mailboxes).start()
        try:
            with mmtest.TempDir() as tmp:
                conf, out = self.fake_account(tmp, srv)
                elsewhere = os.path.join(tmp, "elsewhere")
                os.makedirs(out, 0o700)
                os.mkdir(elsewhere, 0o700)
                with open(os.path.join(out, "Archive"), "w") as f:
                    f.write("in the way\n")
                os.symlink(elsewhere, os.path.join(out, "Links"))
                res = mmtest.run_mboxmirror("-c", conf, "--once")
                self.assertEqual(srv.errors, [])
                self.assertEqual(res.returncode, 1, res.stderr)
                self.assertRegex(res.stderr, r"mailbox Archive/2023: .*"
                                 + re.escape(os.path.join(out, "Archive")) + r".*skipped")
                self.assertRegex(res.stderr, r"mailbox Links/x: .*"
                                 + re.escape(os.path.join(out, "Links")) + r".*symlink")
                self.assertEqual(os.listdir(elsewhere), [])
                os.unlink(os.path.join(out, "Archive"))
                os.unlink(os.path.join(out, "Links"))
                found = self.files_by_marker(out)
                self.assertEqual(found, {0: "INBOX.mbox", 3: "Work.mbox", 4: "Zeta.mbox"})

                # The obstacles gone, a FIFO where a mirrored mbox was, with new mail.
                zeta = os.path.join(out, "Zeta.mbox")
                os.unlink(zeta)
                os.mkfifo(zeta, 0o600)
                mailboxes[4][2].append(mmtest.make_message("again", "marker 4\r\n"))
                res = mmtest.run_mboxmirror("-c", conf, "--once")
                self.assertEqual(res.returncode, 1, res.stderr)
                self.assertRegex(res.stderr, r"mailbox Zeta: .*" + re.escape(zeta))
                os.unlink(zeta)
                found = self.files_by_marker(out)
                self.assertEqual(found, {0: "INBOX.mbox", 1: "Archive/2023.mbox",
                                         2: "Links/x.mbox", 3: "Work.mbox"})
                mu.assert_modes(self, out)

                # And with nothing in the way, all is well.
                res = mmtest.run_mboxmirror("-c", conf, "--once")
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertEqual(len(mmtest.read_mbox(zeta)), 1)
        finally:
            srv.stop()

    def test_names_differing_by_case(self):
        """Mailboxes whose names differ only by case or Unicode normalisation get files
        that differ by more, so that a folding file system keeps them apart; the choice
        stays."""
        names = [b"Work", b"work", b"WORK/x", b"work/X",
                 b"Caf&AOk-",                   # "Café", NFC
                 b"Cafe&AwE-"]                  # "Café", NFD
        mailboxes = [(b"/", n, [mmtest.make_message(f"m{i}", f"marker {i}\r\n")])
                     for i, n in enumerate(names)]
        srv = mirror_fakeimap.FakeImap(mailboxes).start()
        try:
            with mmtest.TempDir() as tmp:
                conf, out = self.fake_account(tmp, srv)
                res = mmtest.run_mboxmirror("-c", conf, "--once")
                self.assertEqual(res.returncode, 0, res.stderr)
                found = self.files_by_marker(out)
                self.assertEqual(found, {0: "Work.mbox", 1: "work.2.mbox",
                                         2: "WORK/x.mbox", 3: "work/X.2.mbox",
                                         4: "Caf\u00e9.mbox", 5: "Cafe\u0301.2.mbox"})
                for i, (_, _, msgs) in enumerate(mailboxes):
                    msgs.append(mmtest.make_message(f"again {i}", f"marker {i}\r\n"))
                res = mmtest.run_mboxmirror("-c", conf, "--once")
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertEqual(self.files_by_marker(out, per_file=2), found)
        finally:
            srv.stop()

    def test_tampered_state_file(self):
        """A state whose file field leaves output (edited by hand, or by an attacker
        who can write the state but not the output) is a corrupt state: the account
        fails naming the line, and nothing is written outside output."""
        msgs = [mmtest.make_message(f"t{i}", f"marker {i}\r\n") for i in range(2)]
        srv = mirror_fakeimap.FakeImap([(b"/", b"INBOX", msgs)]).start()
        try:
            with mmtest.TempDir() as top:
                tmp = os.path.join(top, "a", "b")
                os.makedirs(tmp, 0o700)
                acct = {"__name__": "test", "host": "127.0.0.1", "port": str(srv.port),
                        "tls": "none", "allow_plaintext": "yes", "user": "u",
                        "password": "p", "output": os.path.join(tmp, "out", "test")}
                conf = mmtest.write_config(tmp, [acct])
                res = mmtest.run_mboxmirror("-c", conf, "--once")
                self.assertEqual(res.returncode, 0, res.stderr)
                state = os.path.join(tmp, "state", "test", "state")
                with open(state, "rb") as f:
                    good = f.read()
                line = next(n for n, ln in enumerate(good.split(b"\n"), 1)
                            if ln.startswith(b"mailbox\tINBOX\tINBOX.mbox\t"))
                for bad in (b"../../../escape.mbox", os.path.join(top, "abs.mbox").encode(),
                            b"x/../../../../escape.mbox", b"INBOX"):
                    with self.subTest(file=bad):
                        # From scratch, so that every message would be written.
                        tampered = re.sub(rb"(mailbox\tINBOX\t)INBOX\.mbox(\t.*)last_uid=\d+"
                                          rb"\tuidnext=\d+(.*)mbox_size=\d+",
                                          lambda m: m.group(1) + bad + m.group(2) +
                                          b"last_uid=0\tuidnext=0" + m.group(3) +
                                          b"mbox_size=0", good)
                        self.assertNotEqual(tampered, good)
                        with open(state, "wb") as f:
                            f.write(tampered)
                        before_top = walk(top)
                        before = walk(tmp)
                        res = mmtest.run_mboxmirror("-c", conf, "--once")
                        self.check_confined(tmp, before)
                        self.assertEqual(walk(top) - before_top,
                                         {"a/b/" + r for r in walk(tmp) - before})
                        self.assertEqual(res.returncode, 1, res.stderr)
                        self.assertIn(f"{state}:{line}: mailbox line: file is not a "
                                      "relative .mbox path", res.stderr)
                        # The damaged state is left for a person to look at.
                        with open(state, "rb") as f:
                            self.assertEqual(f.read(), tampered)
        finally:
            srv.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
