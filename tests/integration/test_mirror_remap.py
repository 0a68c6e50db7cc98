"""A mailbox whose UIDVALIDITY changed with the same messages in it (recreated and
filled again, renumbered): the mirror's messages are matched by content, the index
renumbered, and only what is new is fetched, appended to the same mbox; a poor match
keeps the old file aside and mirrors afresh; kill -9 anywhere in the remap and a rerun
leave every message in the mbox once (DESIGN.md section 5)."""

import glob
import os
import random
import re
import shutil
import time
import unittest

import mirror_fakeimap as fi
import mmindex
import mmtest
import mirror_util as mu
from faultproxy import FaultProxy, Stall
from test_mirror_hostile import Env

BOX = "Projects"
N_OLD = 300
N_NEW = 100
BASE_DATE = 1_700_000_000


def old_corpus():
    """N_OLD messages with Message-IDs and distinct dates, and four without Message-ID
    sharing one size and date (only their bodies tell them apart)."""
    mk = mmtest.make_message
    msgs = [(mk(f"old {i}", f"old body {i}\r\n"), BASE_DATE + 7 * i)
            for i in range(N_OLD)]
    for c in "ABCD":
        raw = (b"From: carol@example.org\r\nSubject: same\r\n\r\nbody %s\r\n"
               % c.encode())
        msgs.append((raw, BASE_DATE - 3600))
    return msgs


def new_corpus(n, size=0, tag="new"):
    rng = random.Random(5)
    return [(mmtest.make_message(f"{tag} {i}", f"{tag} body {i}\r\n".encode() +
                                 (mu.random_text_body(rng, size) if size else b"")),
             BASE_DATE + 10_000_000 + i) for i in range(n)]


def append(fx, user, pw, msgs):
    fx.append_many(user, pw, BOX, [m for m, _ in msgs], date=[d for _, d in msgs])


def body_uids(stderr):
    """How many UIDs the client asked bodies of (BODY.PEEK[]), from a debug log."""
    n = 0
    for m in re.finditer(r" C: \S+ UID FETCH (\S+) \([^)]*BODY\.PEEK\[\]\)", stderr):
        for part in m.group(1).split(","):
            lo, _, hi = part.partition(":")
            if hi == "*":
                raise AssertionError(f"an open range of bodies: {m.group(0)}")
            n += int(hi or lo) - int(lo) + 1
    return n


def read_index(tmp):
    """The index records of BOX's mbox."""
    name, records = mmindex.load(mmindex.index_path(os.path.join(tmp, "state", "test"),
                                                    BOX + ".mbox"))
    assert name == BOX + ".mbox", name
    return records


class Remap(unittest.TestCase):
    def setUp(self):
        self.fx = mmtest.Fixture()
        self.user, self.pw = self.fx.new_user("remap")
        self.fx.create_mailbox(self.user, self.pw, BOX)
        self.tmpctx = mmtest.TempDir()
        self.tmp = self.tmpctx.__enter__()
        self.conf = mmtest.write_config(self.tmp, [self.fx.account(self.tmp, self.user,
                                                                    self.pw)])
        self.path = mu.mbox_path(self.tmp, "test", BOX)

    def tearDown(self):
        self.tmpctx.__exit__(None, None, None)

    def first_sync(self, msgs):
        append(self.fx, self.user, self.pw, msgs)
        res = mmtest.run_mboxmirror("-c", self.conf, "--once")
        self.assertEqual(res.returncode, 0, res.stderr)
        mu.assert_mirror_exact(self, self.fx, self.user, self.pw, BOX, self.path)
        with open(self.path, "rb") as f:
            return f.read()

    def reset(self, msgs):
        """The mailbox recreated (a new UIDVALIDITY) and msgs appended, in this order."""
        old_uv = self.fx.uidvalidity(self.user, self.pw, BOX)
        new_uv = self.fx.recreate_mailbox(self.user, self.pw, BOX)
        self.assertNotEqual(old_uv, new_uv)
        append(self.fx, self.user, self.pw, msgs)
        return old_uv, new_uv

    def sync(self, conf=None):
        res = mmtest.run_mboxmirror("-c", conf or self.conf, "--once", "-v",
                                    timeout=300)
        self.assertEqual(res.returncode, 0, res.stderr)
        return res

    def assert_verifies(self, deep=False):
        """--verify (and --deep) finds the mirror whole."""
        args = ["-c", self.conf, "--verify"] + (["--deep"] if deep else [])
        res = mmtest.run_mboxmirror(*args, timeout=300)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr[-3000:])
        self.assertIn("whole", res.stdout)

    def expected_after(self, old_bytes, old_msgs):
        """The old mbox, then each server message it did not hold (a second copy of
        one it held once counts), in UID order."""
        server = mu.server_messages(self.fx, self.user, self.pw, BOX)
        have = {}
        for m, _ in old_msgs:
            have[m] = have.get(m, 0) + 1
        new = []
        for uid, date, body in server:
            if have.get(body, 0) > 0:
                have[body] -= 1
            else:
                new.append((uid, date, body))
        return server, new, old_bytes + mu.expected_mbox(new)

    def assert_index_renumbered(self, server, new_uv, mbox):
        """The index describes the whole mbox; each record of the new UIDVALIDITY
        names the server message its entry holds, and every server message has one
        (the ones matched and the ones fetched)."""
        by_uid = {uid: (date, body) for uid, date, body in server}
        recs = read_index(self.tmp)
        self.assertEqual(mmindex.entry_problems(recs, mbox), [])
        seen = set()
        for r in recs:
            if r.uidvalidity != new_uv:
                continue
            self.assertIn(r.uid, by_uid, "an index record names a UID the server lacks")
            date, body = by_uid[r.uid]
            self.assertEqual(mbox[r.offset:r.offset + r.length],
                             mu.expected_mbox([(r.uid, date, body)]),
                             f"index record of UID {r.uid}")
            self.assertNotIn(r.uid, seen)
            seen.add(r.uid)
        self.assertEqual(seen, set(by_uid))
        return seen

    def test_reset_fetches_only_new(self):
        old = old_corpus()
        old_bytes = self.first_sync(old)
        # On the server again, renumbered (shuffled), five gone, one twice, and new
        # mail.
        rng = random.Random(3)
        again = old[5:]
        again.append(old[10])
        rng.shuffle(again)
        new = new_corpus(N_NEW)
        old_uv, new_uv = self.reset(again + new)

        res = self.sync()
        server, expect_new, expected = self.expected_after(old_bytes, old)
        self.assertEqual(len(server), len(again) + N_NEW)
        self.assertEqual(len(expect_new), N_NEW + 1)
        with open(self.path, "rb") as f:
            mbox = f.read()
        mu.assert_bytes_equal(self, mbox, expected, "the mbox after the remap")
        # The warning says which way and why.
        n_server = len(server)
        matched = n_server - len(expect_new)
        self.assertRegex(res.stderr, rf"warning: .*mailbox {BOX}: UIDVALIDITY changed "
                         rf"from {old_uv} to {new_uv}; {matched} of {n_server} server "
                         rf"messages matched the mirror by content \(6 compared by "
                         rf"digest\), fetching {N_NEW + 1}")
        # Bodies asked for: the new ones, and the six ambiguous ones (four without
        # Message-ID, the server's two copies of one), nothing else.
        self.assertEqual(body_uids(res.stderr), N_NEW + 1 + 6, res.stderr[-3000:])
        self.assertIn(f"mailbox {BOX}: {N_NEW + 1} new messages", res.stderr)
        # No second file.
        d = os.path.dirname(self.path)
        self.assertEqual(sorted(f for f in os.listdir(d) if f.startswith(BOX)
                                and not f.endswith(".lock")), [BOX + ".mbox"])
        self.assert_index_renumbered(server, new_uv, mbox)
        self.assert_verifies(deep=True)

        # Settled: nothing to do; then new mail as usual.
        res = self.sync()
        self.assertEqual(mu.count_opened(res.stdout)[1:], (0, 0))
        more = new_corpus(2, tag="later")
        append(self.fx, self.user, self.pw, more)
        res = self.sync()
        self.assertEqual(mu.count_opened(res.stdout)[1:], (1, 2))
        self.assertNotRegex(res.stderr, r"(?i)uidvalidity changed")
        with open(self.path, "rb") as f:
            self.assertEqual(len(f.read()) > len(mbox), True)
        _, expect_new, expected = self.expected_after(old_bytes, old)
        with open(self.path, "rb") as f:
            mu.assert_bytes_equal(self, f.read(), expected, "after more mail")

    def test_rebuilt_index_matches_too(self):
        """A mirror without an index (made by an older version): rebuilt from the mbox
        (sizes computed, dates from the From_ lines), it matches the same way."""
        old = old_corpus()[-54:]
        old_bytes = self.first_sync(old)
        for p in glob.glob(os.path.join(self.tmp, "state", "test", "index-*")):
            os.unlink(p)
        new = new_corpus(10)
        old_uv, new_uv = self.reset(list(reversed(old)) + new)
        res = self.sync()
        self.assertIn("rebuilding it from the mbox", res.stderr)
        server, expect_new, expected = self.expected_after(old_bytes, old)
        self.assertEqual(len(expect_new), 10)
        with open(self.path, "rb") as f:
            mbox = f.read()
        mu.assert_bytes_equal(self, mbox, expected, "the mbox after the remap")
        self.assert_verifies()
        self.assertRegex(res.stderr, rf"UIDVALIDITY changed from {old_uv} to {new_uv}; "
                         rf"54 of 64 server messages matched")
        self.assertEqual(body_uids(res.stderr), 10 + 4)
        self.assert_index_renumbered(server, new_uv, mbox)

    def test_state_save_lost_after_index_rewrite(self):
        """As if killed between the index rewrite and the state save: the state
        still has the old UIDVALIDITY, the index the new UIDs.  The next sync
        matches again, to the same result, and fetches nothing twice."""
        old = old_corpus()[-24:]
        old_bytes = self.first_sync(old)
        state = os.path.join(self.tmp, "state", "test", "state")
        with open(state, "rb") as f:
            old_state = f.read()
        _, new_uv = self.reset(list(reversed(old)))
        res = self.sync()
        self.assertIn("24 of 24 server messages matched", res.stderr)
        with open(state, "wb") as f:
            f.write(old_state)
        res = self.sync()
        self.assertIn("24 of 24 server messages matched", res.stderr)
        self.assertEqual(body_uids(res.stderr), 4)     # the ambiguous ones
        server, expect_new, expected = self.expected_after(old_bytes, old)
        self.assertEqual(expect_new, [])
        with open(self.path, "rb") as f:
            mbox = f.read()
        mu.assert_bytes_equal(self, mbox, old_bytes, "the mbox")
        self.assert_index_renumbered(server, new_uv, mbox)

    def test_poor_match_mirrors_afresh(self):
        """Under half of the server's messages in the mirror: as before, the old file
        kept aside and everything fetched into a new one."""
        old = old_corpus()[:20]
        old_bytes = self.first_sync(old)
        old_uv, new_uv = self.reset(old[:4] + new_corpus(10))
        res = self.sync()
        self.assertRegex(res.stderr, rf"warning: .*UIDVALIDITY changed from {old_uv} to "
                         rf"{new_uv}; only 4 of 14 server messages matched the mirror by "
                         rf"content \(under half\): mirroring it afresh")
        msgs = mu.assert_mirror_exact(self, self.fx, self.user, self.pw, BOX, self.path)
        self.assertEqual(len(msgs), 14)
        d = os.path.dirname(self.path)
        kept = [f for f in os.listdir(d) if str(old_uv) in f and not f.endswith(".lock")]
        self.assertEqual(len(kept), 1, os.listdir(d))
        with open(os.path.join(d, kept[0]), "rb") as f:
            mu.assert_bytes_equal(self, f.read(), old_bytes, "kept old mirror")

    def test_afresh_after_a_remap_forgets_its_uids(self):
        """A remap left matched UIDs above the last UID ("remapped"); a later
        UIDVALIDITY change that matches poorly mirrors the mailbox afresh: those
        UIDs name other messages now, and every one of them is fetched."""
        old = old_corpus()[:20]
        self.first_sync(old)
        # One new message before the old ones: UID 1 unmatched, 2..21 matched.
        self.reset(new_corpus(1, tag="first") + old)
        res = self.sync()
        self.assertIn("20 of 21 server messages matched", res.stderr)
        with open(os.path.join(self.tmp, "state", "test", "state")) as f:
            self.assertIn("\tremapped=2-21", f.read())
        old_uv, _ = self.reset(new_corpus(30, tag="other"))
        res = self.sync()
        self.assertIn(f"UIDVALIDITY changed from {old_uv}", res.stderr)
        self.assertIn("mirroring it afresh", res.stderr)
        msgs = mu.assert_mirror_exact(self, self.fx, self.user, self.pw, BOX,
                                      self.path)
        self.assertEqual(len(msgs), 30)
        with open(os.path.join(self.tmp, "state", "test", "state")) as f:
            self.assertNotIn("remapped=", f.read())

    def test_kill9_during_remap_then_rerun(self):
        """kill -9 while the listing comes in (before anything is renumbered), then
        while the new bodies come in (after): each rerun goes on, and in the end
        every message is in the mbox once."""
        old = old_corpus()
        old_bytes = self.first_sync(old)
        again = list(reversed(old))
        new = new_corpus(40, size=60_000)
        _, new_uv = self.reset(again + new)
        server, expect_new, expected = self.expected_after(old_bytes, old)
        self.assertEqual(len(expect_new), 40)

        # 1. Stalled and killed inside the listing.
        with FaultProxy(self.fx.host, self.fx.imaps_port,
                        [Stall(at_byte=25_000)]) as proxy:
            acct = self.fx.account(self.tmp, self.user, self.pw, port=proxy.port)
            conf = mmtest.write_config(self.tmp, [acct], filename="stalled.ini")
            proc = mu.start_mboxmirror("-c", conf, "--once", "-v")
            stalled = proxy.wait(lambda p: p.faults() or proc.poll() is not None, 60)
            # (What came before the stall is taken in first.)
            time.sleep(1)
            running = proc.poll() is None
            out, err = mu.kill(proc)
        self.assertTrue(stalled and running, err[-2000:])
        self.assertIn("-> remap-listing", err)
        self.assertNotIn("matched the mirror by content", err)
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), old_bytes)

        # 2. Killed while the new bodies come in, the state renumbered already.
        proc = mu.start_mboxmirror("-c", self.conf, "--once", "-v")
        reached = mu.wait_file_size(self.path, len(old_bytes) + 600_000, proc)
        out, err = mu.kill(proc)
        self.assertTrue(reached, err[-2000:])
        self.assertIn("matched the mirror by content", err)
        with open(self.path, "rb") as f:
            data = f.read()
        self.assertTrue(data.startswith(old_bytes))

        # 3. The rerun fetches the rest, once.
        res = self.sync()
        self.assertNotRegex(res.stderr, r"(?i)uidvalidity changed")
        got = re.search(rf"mailbox {BOX}: (\d+) new messages?", res.stderr)
        self.assertTrue(got, res.stderr[-3000:])
        self.assertLessEqual(int(got.group(1)), 40)
        with open(self.path, "rb") as f:
            mbox = f.read()
        mu.assert_bytes_equal(self, mbox, expected, "the mbox after the reruns")
        self.assert_index_renumbered(server, new_uv, mbox)
        self.assert_verifies()
        res = self.sync()
        self.assertEqual(mu.count_opened(res.stdout)[1:], (0, 0))


def message_id(msg):
    return re.search(rb"^Message-ID: *(<[^>]*>)", msg, re.MULTILINE | re.I).group(1)


class RemapHostile(unittest.TestCase):
    """The listing is untrusted: answers in any order, repeated (the first counts),
    header before UID, and a listing without end."""

    def setUp(self):
        self.tmpctx = mmtest.TempDir()
        self.env = Env(self, self.tmpctx.__enter__(), counts={b"INBOX": 6})
        res, _ = self.env.run()
        self.assertEqual(res.returncode, 0, res.stderr)
        self.before = self.env.mbox(b"INBOX")
        self.assertEqual(len(self.before) > 0, True)
        fi.UIDVALIDITY = 4712

    def tearDown(self):
        fi.UIDVALIDITY = 4711
        self.env.srv.stop()
        self.tmpctx.__exit__(None, None, None)

    def listing_hook(self, respond):
        def hook(conn, ctx):
            if b"HEADER.FIELDS" not in b" ".join(ctx["args"]).upper():
                return None
            return [respond(conn, ctx), ctx["tag"] + b" OK fetched\r\n"]
        self.env.srv.hooks["UID FETCH"] = hook

    @staticmethod
    def header(conn, uid):
        mid = message_id(conn.selected[2][uid - 1])
        return ("BODY[HEADER.FIELDS (MESSAGE-ID)]",
                fi._lit(b"Message-ID: " + mid + b"\r\n\r\n"))

    def test_repeated_reordered_listing(self):
        def respond(conn, ctx):
            out = b""
            for uid in reversed(ctx["uids"]):
                hdr = self.header(conn, uid)
                # Header first, then the UID; and again the other way round.
                out += conn.fetch_response(uid, (hdr, "RFC822.SIZE", "INTERNALDATE",
                                                 "UID"))
                out += conn.fetch_response(uid, ("UID", "RFC822.SIZE", "INTERNALDATE",
                                                 hdr))
            # A repeat of UID 1 claiming another size: the first answer counts.
            out += conn.fetch_response(1, ("UID", ("RFC822.SIZE", b"5"),
                                           "INTERNALDATE", self.header(conn, 1)))
            return out
        self.listing_hook(respond)
        res, _ = self.env.run()
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("UIDVALIDITY changed from 4711 to 4712; 6 of 6 server messages "
                      "matched the mirror by content (0 compared by digest), fetching 0",
                      res.stderr)
        self.assertEqual(self.env.mbox(b"INBOX"), self.before)
        # Settled: one new message is fetched as usual.
        self.env.srv.hooks = {}
        self.env.add(b"INBOX", 1)
        res, _ = self.env.run()
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertNotIn("UIDVALIDITY changed", res.stderr)
        self.assertEqual(self.env.mbox(b"INBOX"), self.before +
                         self.env.entries(b"INBOX", [7])[7])

    def well_behaved(self, conn, ctx):
        return b"".join(conn.fetch_response(uid, ("UID", "RFC822.SIZE", "INTERNALDATE",
                                                  self.header(conn, uid)))
                        for uid in ctx["uids"])

    def test_change_seen_only_by_examine(self):
        """STATUS still shows the old UIDVALIDITY: the fetch goes out with the EXAMINE
        (bodies too, for a few new messages) from the old state; EXAMINE shows the
        change, that fetch is waited out and ignored, and the remap goes on."""
        def stale_status(conn, ctx):
            mb = ctx["mailbox"]
            return [b"* STATUS " + fi._lit(mb[1]) +
                    b" (UIDVALIDITY 4711 UIDNEXT %d MESSAGES %d)\r\n" %
                    (len(mb[2]) + 1, len(mb[2])) + ctx["tag"] + b" OK status\r\n"]
        self.env.add(b"INBOX", 1)
        self.env.srv.hooks["STATUS"] = stale_status
        self.listing_hook(self.well_behaved)
        res, _ = self.env.run()
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertRegex(res.stderr, r"C: \S+ UID FETCH 7:\* \(UID INTERNALDATE")
        self.assertIn("6 of 7 server messages matched the mirror by content (0 compared "
                      "by digest), fetching 1", res.stderr)
        self.assertEqual(self.env.mbox(b"INBOX"), self.before +
                         self.env.entries(b"INBOX", [7])[7])

    def test_highest_uid_matched(self):
        """The server's last message has UID 4294967295 and matches: nothing can
        follow it, and no UID set with a 0 (which IMAP forbids) is asked."""
        def respond(conn, ctx):
            out = self.well_behaved(conn, ctx)
            return out.replace(b"(UID 6 ", b"(UID 4294967295 ")

        def hook(conn, ctx):
            if re.match(rb"0[:,]|0$", ctx["args"][0]):
                return [ctx["tag"] + b" BAD Error in IMAP command UID FETCH: "
                        b"Invalid uidset\r\n"]
            if ctx["args"][0].startswith(b"4294967295"):
                # (n:* with n past the last UID is the last message.)
                line = conn.fetch_response(6, ("UID", "RFC822.SIZE"))
                return [line.replace(b"UID 6 ", b"UID 4294967295 "),
                        ctx["tag"] + b" OK fetched\r\n"]
            if b"HEADER.FIELDS" not in b" ".join(ctx["args"]).upper():
                return None
            return [respond(conn, ctx), ctx["tag"] + b" OK fetched\r\n"]
        self.env.srv.hooks["UID FETCH"] = hook
        res, _ = self.env.run()
        self.assertEqual(res.returncode, 0, res.stderr[-3000:])
        self.assertIn("6 of 6 server messages matched", res.stderr)
        self.assertNotRegex(res.stderr, r"C: \S+ UID FETCH 0")
        self.assertEqual(self.env.mbox(b"INBOX"), self.before)

    def state_text(self):
        with open(os.path.join(self.env.tmp, "state", "test", "state")) as f:
            return f.read()

    def refuse_listing(self, text=b"NO [SERVERBUG] Internal error occurred."):
        def hook(conn, ctx):
            if b"HEADER.FIELDS" not in b" ".join(ctx["args"]).upper():
                return None
            return [ctx["tag"] + b" " + text + b"\r\n"]
        self.env.srv.hooks["UID FETCH"] = hook

    def test_refused_listing_given_up(self):
        """A server that always refuses the listing (Dovecot's NO [SERVERBUG] for a
        corrupt message): the mailbox fails for PLAN_HOLE_TRIES_MAX - 1 syncs in a
        row, then the remap is given up: the old file kept aside, the mailbox
        mirrored afresh, and new mail comes in again."""
        self.refuse_listing()
        self.env.add(b"INBOX", 1)
        for k in (1, 2):
            res, _ = self.env.run()
            self.assertEqual(res.returncode, 1, res.stderr)
            self.assertRegex(res.stderr, r"warning: account test: mailbox INBOX: UIDVALIDITY "
                             r"changed from 4711 to 4712; matching the mirror failed: "
                             r"UID FETCH: \[SERVERBUG\] Internal error occurred\. "
                             rf"\(sync {k} of 3 before the match is given up\)")
            self.assertIn("\tremap_refused=4712:%d" % k, self.state_text())
            self.assertEqual(self.env.mbox(b"INBOX"), self.before)
        res, _ = self.env.run()
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertRegex(res.stderr, r"warning: account test: mailbox INBOX: UIDVALIDITY "
                         r"changed from 4711 to 4712; the server refused its listing in "
                         r"3 syncs in a row \(UID FETCH: \[SERVERBUG\] Internal error "
                         r"occurred\.\): mirroring it afresh")
        self.assertNotIn("remap_refused=", self.state_text())
        self.assertEqual(self.env.mbox(b"INBOX"),
                         b"".join(self.env.entries(b"INBOX", range(1, 8)).values()))
        kept = [f for f in os.listdir(self.env.out) if "4711" in f]
        self.assertEqual(len(kept), 1, os.listdir(self.env.out))
        with open(os.path.join(self.env.out, kept[0]), "rb") as f:
            self.assertEqual(f.read(), self.before)
        # Settled: the next message comes in as usual.
        self.env.add(b"INBOX", 1)
        res, _ = self.env.run()
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("mailbox INBOX: 1 new message", res.stderr)

    def test_refused_once_then_matched(self):
        """A refusal that passes: the count it left is cleared by the match."""
        self.refuse_listing(b"NO [UNAVAILABLE] try later")
        res, _ = self.env.run()
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn("\tremap_refused=4712:1", self.state_text())
        self.listing_hook(self.well_behaved)
        res, _ = self.env.run()
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("6 of 6 server messages matched", res.stderr)
        self.assertNotIn("remap_refused=", self.state_text())
        self.assertEqual(self.env.mbox(b"INBOX"), self.before)

    def test_refused_digests_counted(self):
        """The bodies to compare refused: counted like a refused listing, with the
        refusal's own text; allowed at the next sync, the match goes on and the count
        is cleared."""
        self.env.add(b"INBOX", 1)
        state = {"refuse": True}

        def hook(conn, ctx):
            args = b" ".join(ctx["args"]).upper()
            if b"HEADER.FIELDS" in args:
                # UID 7 listed with UID 1's size, date and Message-ID: the two are
                # told apart by their bodies.
                m1 = conn.selected[2][0]
                out = self.well_behaved(conn, {"uids": ctx["uids"][:6]})
                out += conn.fetch_response(7, ("UID", ("RFC822.SIZE", b"%d" % len(m1)),
                                               ("INTERNALDATE", self.env.srv.date(
                                                   b"INBOX", 1)),
                                               self.header(conn, 1)))
                return [out, ctx["tag"] + b" OK fetched\r\n"]
            if ctx["args"][1].upper() == b"(UID BODY.PEEK[])" and state["refuse"]:
                return [ctx["tag"] + b" NO [SERVERBUG] cannot read it\r\n"]
            return None
        self.env.srv.hooks["UID FETCH"] = hook
        res, _ = self.env.run()
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertRegex(res.stderr, r"C: \S+ UID FETCH 1,7 \(UID BODY\.PEEK\[\]\)")
        self.assertIn("matching the mirror failed: UID FETCH: [SERVERBUG] cannot read it "
                      "(sync 1 of 3 before the match is given up)", res.stderr)
        self.assertIn("\tremap_refused=4712:1", self.state_text())
        self.assertEqual(self.env.mbox(b"INBOX"), self.before)
        state["refuse"] = False
        res, _ = self.env.run()
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("6 of 7 server messages matched the mirror by content (2 compared "
                      "by digest), fetching 1", res.stderr)
        self.assertNotIn("remap_refused=", self.state_text())
        self.assertEqual(self.env.mbox(b"INBOX"), self.before +
                         self.env.entries(b"INBOX", [7])[7])

    def test_expunge_during_listing(self):
        """A message expunged between the EXAMINE and the listing: the server lists
        one fewer than EXAMINE said and says why (an EXPUNGE), so the match goes on;
        a message arriving meanwhile (EXISTS) and expunged again lowers nothing."""
        def respond(conn, ctx):
            # Message 3 expunged, a seventh arrives and goes again (sequence 6 after
            # the first expunge): five listed.
            out = b"* 3 EXPUNGE\r\n* 6 EXISTS\r\n* 6 EXPUNGE\r\n"
            for uid in ctx["uids"]:
                if uid == 3:
                    continue
                out += conn.fetch_response(uid, ("UID", "RFC822.SIZE", "INTERNALDATE",
                                                 self.header(conn, uid)),
                                           msgno=uid if uid < 3 else uid - 1)
            return out
        self.listing_hook(respond)
        res, _ = self.env.run()
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("UIDVALIDITY changed from 4711 to 4712; 5 of 5 server messages "
                      "matched the mirror by content (0 compared by digest), fetching 0",
                      res.stderr)
        self.assertNotIn("mirroring it afresh", res.stderr)
        self.assertEqual(self.env.mbox(b"INBOX"), self.before)

    def test_listed_fewer_without_expunge(self):
        """A server that lists fewer messages than it holds and does not say why:
        not a list to renumber by (one left out could end up below the last UID)."""
        def respond(conn, ctx):
            # An EXPUNGE of a message that does not exist explains nothing.
            return b"* 9 EXPUNGE\r\n" + b"".join(
                conn.fetch_response(uid, ("UID", "RFC822.SIZE", "INTERNALDATE",
                                          self.header(conn, uid)))
                for uid in ctx["uids"] if uid != 3)
        self.listing_hook(respond)
        res, _ = self.env.run()
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("the server listed 5 of its 6 messages: mirroring it afresh",
                      res.stderr)
        self.assertEqual(self.env.mbox(b"INBOX"),
                         b"".join(self.env.entries(b"INBOX", range(1, 7)).values()))

    def test_listing_without_end(self):
        def respond(conn, ctx):
            line = conn.fetch_response(1, ("UID", "RFC822.SIZE", "INTERNALDATE",
                                           self.header(conn, 1)))
            return b"".join(line.replace(b"UID 1 ", b"UID %d " % (1000 + i))
                            for i in range(100_010))
        self.listing_hook(respond)
        res, _ = self.env.run(bound=120)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn("listed more messages than the mailbox holds", res.stderr)
        self.assertEqual(self.env.mbox(b"INBOX"), self.before)
        # A well-behaved server afterwards: matched, nothing fetched again.
        self.listing_hook(self.well_behaved)
        res, _ = self.env.run()
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("6 of 6 server messages matched", res.stderr)
        self.assertEqual(self.env.mbox(b"INBOX"), self.before)


if __name__ == "__main__":
    unittest.main(verbosity=2)
