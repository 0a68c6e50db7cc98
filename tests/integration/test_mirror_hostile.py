"""A server is untrusted input (DESIGN.md sections 3 to 5).  Against a scripted server
(mirror_fakeimap) that answers FETCH in odd but legal shapes, or breaks the protocol,
stalls, trickles or hangs up, mboxmirror must never crash or hang, never write outside
output, never append a message twice and never lose one; a failure is one clear error
naming the account (and the mailbox, once one is being synced), exit status 1, and the
mbox as last committed.  After every failure a run against a well-behaved server ends
with every message exactly once, byte for byte.

What the tests decide where DESIGN.md leaves room:
- Messages are appended in the order the server sends them; a UID the command did not
  ask for, or one already appended, is ignored.
- A mailbox that cannot be opened (EXAMINE refused) fails the account (exit 1, its name
  in the error) after every other mailbox has been mirrored: the mirror is incomplete.
- A mailbox whose STATUS is refused or lacks UIDNEXT is opened anyway.
- "BODY[] NIL" for a message asked for fails the mailbox (nothing of that batch is
  committed): skipping it would lose the message for good.
- The no-progress timeout counts complete responses, or 64 KiB of a body, as progress: a
  server trickling bytes fails after about one timeout ("no response from ...").  So does
  one that answers with untagged responses without end: past 100,000 in a row they no
  longer count.

The fake server needs no Dovecot; the module runs under ctest with the others."""

import os
import re
import time
import unittest

import mirror_fakeimap as fi
import mirror_util as mu
import mmtest

ACCOUNT = "test"
# A run that should succeed, or fail at once: generous for a loaded machine under
# AddressSanitizer, far below any hang.
BOUND = 30
SANITIZER = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehavior")


def date_of(name, uid):
    """A distinct INTERNALDATE per message, in a zone other than UTC."""
    return b'"%02d-%s-20%02d %02d:%02d:%02d +0130"' % (
        uid % 28 + 1, [b"Jan", b"Jun", b"Nov", b"Feb"][uid % 4], 20 + uid % 5,
        uid % 24, (uid * 7) % 60, (uid * 13) % 60)


def message(name, uid):
    """A message with lines mboxrd must quote, sometimes a Return-Path."""
    extra = [f"Return-Path: <sender{uid}@example.net>"] if uid % 2 else []
    body = (f"Message {uid} of {name.decode()}.\r\nFrom here on, quoting.\r\n"
            f">From there\r\n\r\nFrom \r\nend {uid}\r\n").encode()
    return mmtest.make_message(f"{name.decode()} {uid}", body, extra_headers=extra)


def on_body_fetch(fn):
    """A UID FETCH hook that only scripts fetches of bodies (not of sizes)."""
    def hook(conn, ctx):
        return fn(conn, ctx) if ctx["body"] else None
    return hook


def ok(ctx):
    return ctx["tag"] + b" OK fetched\r\n"


def split_mbox(data):
    """A mbox's entries as bytes (every From_ line starts one: mboxrd quotes the rest)."""
    starts = [m.start() for m in re.finditer(rb"^From ", data, re.MULTILINE)]
    return [data[a:b] for a, b in zip(starts, starts[1:] + [len(data)])]


class Env:
    """A temporary directory, a fake server holding the given mailboxes, a config."""

    def __init__(self, tc, tmp, boxes=(b"INBOX",), counts=None, timeout="10s"):
        self.tc = tc
        self.tmp = tmp
        self.boxes = {}
        mailboxes = []
        for name in boxes:
            msgs = []
            self.boxes[name] = msgs
            mailboxes.append((b"/", name, msgs))
        self.srv = fi.FakeImap(mailboxes).start()
        for name in boxes:
            self.add(name, (counts or {}).get(name, 0))
        acct = {"__name__": ACCOUNT, "host": "127.0.0.1", "port": str(self.srv.port),
                "tls": "none", "allow_plaintext": "yes", "user": "u",
                "password": "hostile-secret", "output": self.out}
        self.conf = mmtest.write_config(tmp, [acct], general={"timeout": timeout})
        self.before = self.walk()

    @property
    def out(self):
        return os.path.join(self.tmp, "out", ACCOUNT)

    def add(self, name, n):
        msgs = self.boxes[name]
        for _ in range(n):
            uid = len(msgs) + 1
            self.srv.dates[(name, uid)] = date_of(name, uid)
            msgs.append(message(name, uid))

    def walk(self):
        out = set()
        for dirpath, dirnames, filenames in os.walk(self.tmp):
            for n in dirnames + filenames:
                out.add(os.path.relpath(os.path.join(dirpath, n), self.tmp))
        return out

    def run(self, bound=BOUND):
        """Runs --once; returns (result, seconds).  Checks that it ended within bound,
        printed no sanitizer report and created nothing outside output and state."""
        t0 = time.monotonic()
        res = mmtest.run_mboxmirror("-c", self.conf, "--once", "-v", timeout=bound)
        elapsed = time.monotonic() - t0
        self.tc.assertIsNone(SANITIZER.search(res.stderr), res.stderr[-4000:])
        self.tc.assertNotIn("hostile-secret", res.stdout + res.stderr)
        for rel in sorted(self.walk() - self.before):
            self.tc.assertTrue(rel in ("out", f"out/{ACCOUNT}", "state") or
                               rel.startswith(f"out/{ACCOUNT}/") or
                               rel.startswith("state/"), f"created outside output: {rel}")
        for dirpath, dirnames, filenames in os.walk(self.out):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                self.tc.assertFalse(os.path.islink(p), p)
        return res, elapsed

    def path(self, name):
        return os.path.join(self.out, name.decode() + ".mbox")

    def mbox(self, name):
        try:
            with open(self.path(name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def entries(self, name, uids=None):
        """The exact mbox entries (DESIGN.md section 4) of the messages, by UID."""
        msgs = self.boxes[name]
        uids = uids if uids is not None else range(1, len(msgs) + 1)
        out = {}
        for uid in uids:
            epoch = mu.internaldate_epoch(self.srv.date(name, uid).decode().strip('"'))
            # (An empty message is its From_ line and the closing empty line:
            # mmtest.mbox_escape_entry knows.)
            out[uid] = mu.expected_mbox([(uid, epoch, msgs[uid - 1])])
        return out

    def expected(self, name, uids=None):
        return b"".join(self.entries(name, uids).values())

    def assert_exact(self, name, uids=None):
        """The mbox holds exactly the messages (all by default), in UID order."""
        mu.assert_bytes_equal(self.tc, self.mbox(name), self.expected(name, uids),
                              name.decode())

    def assert_once_each(self, name):
        """Every message exactly once, each entry exact, in any order."""
        got = split_mbox(self.mbox(name))
        want = list(self.entries(name).values())
        self.tc.assertEqual(len(got), len(want), f"{name}: {len(got)} entries, "
                            f"expected {len(want)}")
        self.tc.assertEqual(sorted(got), sorted(want), f"{name}: entries differ")

    def assert_ok(self, res, messages=None):
        self.tc.assertEqual(res.returncode, 0, res.stderr[-4000:])
        self.tc.assertEqual(self.tc.server_errors(self), [])
        if messages is not None:
            self.tc.assertEqual(mu.count_opened(res.stdout, ACCOUNT)[2], messages,
                                res.stdout)

    def assert_failed(self, res, pattern, mailbox=b"INBOX"):
        """Exit 1 and one error line naming the account (and mailbox) matching
        pattern."""
        self.tc.assertEqual(res.returncode, 1, res.stdout + res.stderr[-4000:])
        self.tc.assertIn(f"{ACCOUNT}: FAILED", res.stdout)
        who = f"account {ACCOUNT}: " + (f"mailbox {mailbox.decode()}: "
                                        if mailbox is not None else "")
        lines = [ln for ln in res.stderr.splitlines()
                 if re.search(re.escape(who) + ".*(" + pattern + ")", ln, re.IGNORECASE)]
        self.tc.assertTrue(lines, f"no error matching {who!r}.*{pattern!r} in\n"
                           f"{res.stderr[-4000:]}")

    def follow_up(self, names=None, again=True):
        """A well-behaved server: the run ends with every message exactly once; one
        more run (unless again is false) adds nothing."""
        self.srv.hooks.clear()
        self.srv.uidnext.clear()
        res, _ = self.run()
        self.assert_ok(res)
        for name in names or self.boxes:
            self.assert_exact(name)
        if not again:
            return
        res, _ = self.run()
        self.assert_ok(res, messages=0)
        for name in names or self.boxes:
            self.assert_exact(name)


class Hostile(unittest.TestCase):
    def setUp(self):
        self.tmpdir = mmtest.TempDir()
        self.tmp = self.tmpdir.__enter__()
        self.envs = []

    def tearDown(self):
        for env in self.envs:
            env.srv.stop()
        self.tmpdir.__exit__(None, None, None)

    def env(self, **kw):
        sub = os.path.join(self.tmp, str(len(self.envs)))
        os.mkdir(sub, 0o700)
        e = Env(self, sub, **kw)
        self.envs.append(e)
        return e

    @staticmethod
    def server_errors(env):
        return env.srv.errors

    def synced(self, prior=2, **kw):
        """An env whose INBOX was mirrored once with prior messages."""
        e = self.env(counts={b"INBOX": prior}, **kw)
        res, _ = e.run()
        e.assert_ok(res, messages=prior)
        e.assert_exact(b"INBOX")
        return e

    # -- FETCH responses in odd but legal shapes: mirrored exactly ----------------------

    def shaped(self, items_of, first_sync, new=4, exact=True):
        """Mirrors new messages whose FETCH responses carry items_of(uid) in that
        order; a first sync (sizes, then a batch) or an incremental one (the fetch
        sent with EXAMINE)."""
        e = self.env() if first_sync else self.synced()
        e.add(b"INBOX", new)
        e.srv.hooks["UID FETCH"] = on_body_fetch(lambda conn, ctx: [
            b"".join(conn.fetch_response(u, items_of(u)) for u in ctx["uids"]) + ok(ctx)])
        res, _ = e.run()
        e.assert_ok(res, messages=new)
        e.assert_exact(b"INBOX")
        e.follow_up()
        return e

    def test_body_before_uid_and_date(self):
        # The body literal comes first: it is spooled until UID and INTERNALDATE
        # arrive, then appended once with the right From_ date.
        for first in (True, False):
            with self.subTest(first_sync=first):
                e = self.shaped(lambda u: ("BODY[]", "UID", "INTERNALDATE"), first)
                self.assertEqual(len(mmtest.read_mbox(e.path(b"INBOX"))), 4 if first else 6)

    def test_other_orders_case_and_extra_items(self):
        orders = [
            ("UID", "BODY[]", "INTERNALDATE"),
            ("INTERNALDATE", "BODY[]", "RFC822.SIZE", "UID"),
            ("uid", "internaldate", "rfc822.size", "body[]"),
            ("FLAGS", "UID", "MODSEQ", "INTERNALDATE", "BODY[]", "RFC822.SIZE"),
            ("Body[]", "Flags", "Modseq", "Uid", "InternalDate"),
            ("RFC822.SIZE", "INTERNALDATE", "FLAGS", "body[]", "MODSEQ", "UID"),
        ]
        for first in (True, False):
            with self.subTest(first_sync=first):
                self.shaped(lambda u: orders[u % len(orders)], first, new=len(orders))

    def test_zero_byte_message(self):
        for items in (("UID", "INTERNALDATE", "BODY[]"), ("BODY[]", "UID", "INTERNALDATE")):
            with self.subTest(items=items):
                e = self.synced()
                e.boxes[b"INBOX"].append(b"")
                e.srv.dates[(b"INBOX", 3)] = date_of(b"INBOX", 3)
                e.add(b"INBOX", 1)
                e.srv.hooks["UID FETCH"] = on_body_fetch(lambda conn, ctx, items=items: [
                    b"".join(conn.fetch_response(u, items) for u in ctx["uids"]) + ok(ctx)])
                res, _ = e.run()
                e.assert_ok(res, messages=2)
                e.assert_exact(b"INBOX")
                self.assertIn(b"\nFrom MAILER-DAEMON %s\n\nFrom " % mu.asctime_utc(
                    mu.internaldate_epoch(date_of(b"INBOX", 3).decode().strip('"'))).encode(),
                    e.mbox(b"INBOX"))
                e.follow_up()

    def test_body_as_quoted_string(self):
        # nstring allows a quoted string: a one-line message can come that way.
        e = self.synced()
        e.boxes[b"INBOX"].append(b"Subject: tiny\\one \"quoted\"")
        e.srv.dates[(b"INBOX", 3)] = date_of(b"INBOX", 3)
        e.add(b"INBOX", 1)
        e.srv.hooks["UID FETCH"] = on_body_fetch(lambda conn, ctx: [
            conn.fetch_response(3, ("UID", "INTERNALDATE", ("BODY[]",
                                b'"Subject: tiny\\\\one \\"quoted\\""'))) +
            conn.fetch_response(4) + ok(ctx)])
        res, _ = e.run()
        e.assert_ok(res, messages=2)
        e.assert_exact(b"INBOX")
        e.follow_up()

    def test_repeated_unasked_and_unsolicited_responses(self):
        def script(conn, ctx):
            out = [b"* 1 FETCH (FLAGS (\\Seen))\r\n"]
            # Old messages nobody asked for, before and after.
            out.append(conn.fetch_response(1) + conn.fetch_response(2, ("BODY[]", "UID",
                                                                        "INTERNALDATE")))
            for u in ctx["uids"]:
                out.append(conn.fetch_response(u))
                out.append(b"* %d FETCH (UID %d FLAGS (\\Seen \\Answered))\r\n" % (u, u))
                out.append(conn.fetch_response(u, ("BODY[]", "INTERNALDATE", "UID")))
                out.append(b"* 9 EXISTS\r\n* 1 RECENT\r\n")
            out.append(b"* 1 EXPUNGE\r\n")
            out += [conn.fetch_response(u) for u in ctx["uids"]]
            return [b"".join(out) + ok(ctx)]
        for first in (True, False):
            with self.subTest(first_sync=first):
                e = self.env() if first else self.synced()
                e.add(b"INBOX", 3)
                e.srv.hooks["UID FETCH"] = on_body_fetch(script)
                res, _ = e.run()
                e.assert_ok(res, messages=3)
                e.assert_exact(b"INBOX")
                e.follow_up()

    def test_sizes_out_of_order_and_repeated(self):
        # The answer to the size query in reverse, every UID twice: each message is
        # fetched once and the mbox is in UID order.
        def sizes(conn, ctx):
            if ctx["body"]:
                return None
            order = ctx["uids"][::-1]
            return [b"".join(conn.fetch_response(u, ["UID", "RFC822.SIZE"])
                             for u in order + order) + ok(ctx)]
        e = self.env(counts={b"INBOX": 7})
        e.srv.hooks["UID FETCH"] = sizes
        res, _ = e.run()
        e.assert_ok(res, messages=7)
        e.assert_exact(b"INBOX")
        e.follow_up()

    def test_out_of_order_uids(self):
        # A server may answer in any order: every message once (in the order sent).
        def script(conn, ctx):
            uids = ctx["uids"]
            order = uids[len(uids) // 2:][::-1] + uids[:len(uids) // 2]
            return [b"".join(conn.fetch_response(u) for u in order) + ok(ctx)]
        for first in (True, False):
            with self.subTest(first_sync=first):
                e = self.env() if first else self.synced()
                e.add(b"INBOX", 5)
                e.srv.hooks["UID FETCH"] = on_body_fetch(script)
                res, _ = e.run()
                e.assert_ok(res, messages=5)
                e.assert_once_each(b"INBOX")
                # Nothing more the next time, new mail after them.
                res, _ = e.run()
                e.assert_ok(res, messages=0)
                e.assert_once_each(b"INBOX")
                e.srv.hooks.clear()
                before = e.mbox(b"INBOX")
                e.add(b"INBOX", 2)
                n = len(e.boxes[b"INBOX"])
                res, _ = e.run()
                e.assert_ok(res, messages=2)
                self.assertEqual(e.mbox(b"INBOX"), before + e.expected(b"INBOX",
                                                                        [n - 1, n]))

    def test_message_left_out_of_a_batch(self):
        # The server answers OK but leaves out UID 3, which it still has.
        # Committing past it would lose it for good: what came before it is kept,
        # nothing after it, the run fails naming mailbox and UID, and the next one
        # gets the rest.  On the first sync (sizes, then batches) and on a later one
        # (the fetch sent with EXAMINE, a few new messages).
        for first in (True, False):
            with self.subTest(first_sync=first):
                e = self.env() if first else self.synced()
                base = len(e.boxes[b"INBOX"])
                e.add(b"INBOX", 5)
                gone = base + 3
                e.srv.hooks["UID FETCH"] = on_body_fetch(lambda conn, ctx, g=gone: [
                    b"".join(conn.fetch_response(u) for u in ctx["uids"] if u != g) +
                    ok(ctx)])
                res, _ = e.run()
                e.assert_failed(res, rf"UID {gone}: the server answered without it",
                                mailbox=b"INBOX")
                e.assert_exact(b"INBOX", range(1, gone))
                e.follow_up()

    def test_batches_completed_out_of_order(self):
        # Two batches in flight (2100 messages make several batches); the server
        # runs them side by side (Dovecot does) and completes the second first.
        # Every message once, committed only when no message before the last one
        # appended is missing.
        e = self.env(counts={b"INBOX": 2100})
        held = []

        def script(conn, ctx):
            if not held:
                held.append(ctx)
                return [b"".join(conn.fetch_response(u) for u in ctx["uids"])]
            first = ok(held[0]) if len(held) == 1 else b""
            held.append(ctx)
            return [b"".join(conn.fetch_response(u) for u in ctx["uids"]) + ok(ctx) +
                    first]
        e.srv.hooks["UID FETCH"] = on_body_fetch(script)
        res, _ = e.run()
        e.assert_ok(res, messages=2100)
        e.assert_once_each(b"INBOX")
        res, _ = e.run()
        e.assert_ok(res, messages=0)
        e.assert_once_each(b"INBOX")

    def test_next_batch_begins_before_the_first_ends(self):
        # The second batch's first messages come before the first batch's OK.
        e = self.env(counts={b"INBOX": 2100})
        held = []

        def script(conn, ctx):
            if not held:
                held.append(ctx)
                return [b"".join(conn.fetch_response(u) for u in ctx["uids"])]
            first = ok(held[0]) if len(held) == 1 else b""
            held.append(ctx)
            uids = ctx["uids"]
            return [b"".join(conn.fetch_response(u) for u in uids[:50]) + first +
                    b"".join(conn.fetch_response(u) for u in uids[50:]) + ok(ctx)]
        e.srv.hooks["UID FETCH"] = on_body_fetch(script)
        res, _ = e.run()
        e.assert_ok(res, messages=2100)
        e.assert_exact(b"INBOX")
        e.follow_up()

    def test_message_arriving_between_sizes_and_bodies(self):
        # UID 6 arrives after the sizes query; the server sends it, unasked, first
        # in the answer to the bodies of 1..5.  It must neither push the others out
        # nor be lost: the next run picks it up.
        e = self.env(counts={b"INBOX": 6})
        e.srv.uidnext[b"INBOX"] = 6

        def script(conn, ctx):
            if not ctx["body"]:
                return [b"".join(conn.fetch_response(u, ("UID", "RFC822.SIZE"))
                                 for u in ctx["uids"] if u <= 5) + ok(ctx)]
            return [conn.fetch_response(6) + b"".join(
                conn.fetch_response(u) for u in ctx["uids"] if u <= 5) + ok(ctx)]
        e.srv.hooks["UID FETCH"] = script
        res, _ = e.run()
        e.assert_ok(res)
        got = split_mbox(e.mbox(b"INBOX"))
        entries = e.entries(b"INBOX")
        for uid in range(1, 6):
            self.assertEqual(got.count(entries[uid]), 1, f"UID {uid}")
        self.assertLessEqual(got.count(entries[6]), 1)
        e.srv.hooks.clear()
        e.srv.uidnext.clear()
        res, _ = e.run()
        e.assert_ok(res)
        e.assert_once_each(b"INBOX")
        res, _ = e.run()
        e.assert_ok(res, messages=0)
        e.assert_once_each(b"INBOX")

    def test_fetch_star_returns_last_old_message(self):
        # UIDNEXT moved, no new message: "n:*" returns the last old one (servers do
        # this); nothing is appended, and UIDNEXT is remembered.
        e = self.synced(prior=3)
        snap = e.mbox(b"INBOX")
        e.srv.uidnext[b"INBOX"] = 9
        res, _ = e.run()
        e.assert_ok(res, messages=0)
        self.assertEqual(mu.count_opened(res.stdout, ACCOUNT)[1], 1)
        self.assertEqual(e.mbox(b"INBOX"), snap)
        self.assertTrue(any(v == b"UID" and a[0] == b"FETCH" and a[1].startswith(b"4:")
                            for v, a in e.srv.log), e.srv.log)
        res, _ = e.run()
        e.assert_ok(res, messages=0)
        self.assertEqual(mu.count_opened(res.stdout, ACCOUNT)[1], 0)
        # The message that finally comes with UID 9 is mirrored.
        e.srv.uidnext.clear()
        e.add(b"INBOX", 6)
        # (UIDs 4 to 8 were expunged: neither the sizes nor the bodies list them.)
        e.srv.hooks["UID FETCH"] = lambda conn, ctx: [
            b"".join(conn.fetch_response(u) if ctx["body"] else
                     conn.fetch_response(u, ("UID", "RFC822.SIZE")) for u in (3, 9)) +
            ok(ctx)]
        e.srv.uidnext[b"INBOX"] = 10
        res, _ = e.run()
        e.assert_ok(res, messages=1)
        self.assertEqual(e.mbox(b"INBOX"), snap + e.expected(b"INBOX", [9]))

    def test_list_noselect_nonexistent_and_status_quirks(self):
        e = self.env(boxes=(b"INBOX", b"NoUidnext", b"Refused"),
                     counts={b"INBOX": 2, b"NoUidnext": 2, b"Refused": 2})

        def list_hook(conn, ctx):
            out = b""
            for name in (b"INBOX", b"NoUidnext", b"Refused"):
                out += b'* LIST (\\HasNoChildren) "/" ' + name + b"\r\n"
            out += (b'* LIST (\\Noselect \\HasChildren) "/" Parent\r\n'
                    b'* LIST (\\NonExistent) "/" Gone\r\n'
                    b'* list (\\noselect) "/" Lower\r\n')
            return [out + ctx["tag"] + b" OK listed\r\n"]

        def status_hook(conn, ctx):
            name = ctx["args"][0]
            if name == b"NoUidnext":
                return [b"* STATUS NoUidnext (UIDVALIDITY 4711 MESSAGES 2)\r\n" +
                        ctx["tag"] + b" OK status\r\n"]
            if name == b"Refused":
                return [ctx["tag"] + b" NO [SERVERBUG] try later\r\n"]
            return None
        e.srv.hooks.update({"LIST": list_hook, "STATUS": status_hook})
        res, _ = e.run()
        e.assert_ok(res, messages=6)
        for name in e.boxes:
            e.assert_exact(name)
        self.assertEqual(sorted(os.listdir(e.out)), ["INBOX.mbox", "NoUidnext.mbox",
                                                     "Refused.mbox"])
        self.assertEqual(mu.examined(res.stderr).count("Parent"), 0)
        self.assertFalse(any(v == b"EXAMINE" and a[0] in (b"Parent", b"Gone", b"Lower")
                             for v, a in e.srv.log))
        # Quirks stay: new mail still arrives everywhere.
        for name in e.boxes:
            e.add(name, 1)
        res, _ = e.run()
        e.assert_ok(res, messages=3)
        for name in e.boxes:
            e.assert_exact(name)
        e.follow_up()

    def test_examine_refused_for_one_mailbox(self):
        # The others are mirrored; the account failed (exit 1), naming the mailbox.
        e = self.env(boxes=(b"A", b"Locked", b"Z"), counts={b"A": 2, b"Locked": 2, b"Z": 2})

        def examine_hook(conn, ctx):
            if ctx["args"][0] == b"Locked":
                return [ctx["tag"] + b" NO [NOPERM] not for you\r\n"]
            return None
        e.srv.hooks["EXAMINE"] = examine_hook
        res, _ = e.run()
        e.assert_failed(res, r"EXAMINE.*not for you", mailbox=b"Locked")
        self.assertRegex(res.stdout, rf"{ACCOUNT}: FAILED .*: 3 mailboxes checked, 4 messages")
        e.assert_exact(b"A")
        e.assert_exact(b"Z")
        self.assertEqual(e.mbox(b"Locked"), b"")
        e.follow_up()

    # -- failures during the fetch: exit 1, a whole prefix kept, then exact ------------

    def assert_prefix_kept(self, e, snap, first_new, res):
        """After a failed run the mbox is what was committed before plus the
        messages that arrived whole before the failure, in the server's order, each
        exact: never a part of one, never one past a message missing.  The run
        reports as added exactly what it kept.  Returns how many it kept."""
        data = e.mbox(b"INBOX")
        self.assertTrue(data.startswith(snap), "the committed part changed")
        entries = e.entries(b"INBOX")
        kept, rest = 0, data[len(snap):]
        while rest:
            want = entries.get(first_new + kept)
            self.assertIsNotNone(want, f"more than was new: {rest[:200]!r}")
            self.assertTrue(rest.startswith(want), f"entry {kept} of the new ones "
                            f"is not UID {first_new + kept}: {rest[:200]!r}")
            rest = rest[len(want):]
            kept += 1
        self.assertRegex(res.stdout, rf"{ACCOUNT}: FAILED .* {kept} messages? \(")
        return kept

    def failing(self, script, pattern, first_sync=False, new=3, bound=BOUND,
                mailbox=b"INBOX", key="UID FETCH", timeout="10s"):
        """New mail, a server that breaks as script says: the run fails as pattern
        says, within bound, keeping the whole prefix that arrived; then a follow-up
        is exact."""
        e = self.env(timeout=timeout) if first_sync else self.synced(timeout=timeout)
        snap = e.mbox(b"INBOX")
        first_new = len(e.boxes[b"INBOX"]) + 1
        e.add(b"INBOX", new)
        e.srv.hooks[key] = on_body_fetch(script) if key == "UID FETCH" else script
        res, elapsed = e.run(bound)
        e.assert_failed(res, pattern, mailbox=mailbox)
        self.assertLess(elapsed, bound)
        self.assert_prefix_kept(e, snap, first_new, res)
        e.follow_up()
        return res, elapsed

    def test_connection_lost_mid_literal(self):
        def cut(conn, ctx, bye):
            # (After a reconnect only one may be left to ask for.)
            full = b"".join(conn.fetch_response(u) for u in ctx["uids"][:2])
            return [full[:len(full) - 40] + bye, ("close",)]
        for first in (True, False):
            for bye in (b"", b"\r\n* BYE shutting down\r\n"):
                with self.subTest(first_sync=first, bye=bye):
                    self.failing(lambda conn, ctx: cut(conn, ctx, bye),
                                 "closed the connection", first_sync=first)

    def test_bye_between_messages(self):
        self.failing(lambda conn, ctx: [conn.fetch_response(ctx["uids"][0]) +
                                        b"* BYE server shutting down\r\n", ("close",)],
                     "BYE server shutting down")

    def test_fetch_refused(self):
        for status in (b"NO [UNAVAILABLE] backend down", b"BAD internal error"):
            for first in (True, False):
                with self.subTest(status=status, first_sync=first):
                    # Some bodies come before the refusal: none is committed.
                    self.failing(lambda conn, ctx: [
                        conn.fetch_response(ctx["uids"][0]) + ctx["tag"] + b" " +
                        status + b"\r\n"], "UID FETCH failed.*" +
                        re.escape(status.split(b" ", 1)[1].decode()), first_sync=first)

    def test_body_nil(self):
        def script(conn, ctx):
            u = ctx["uids"]
            return [conn.fetch_response(u[0]) + b"* %d FETCH (UID %d INTERNALDATE %s "
                    b"BODY[] NIL)\r\n" % (u[1], u[1], date_of(b"INBOX", u[1])) +
                    b"".join(conn.fetch_response(x) for x in u[2:]) + ok(ctx)]
        self.failing(script, r"UID \d+.*NIL")

    def test_malformed_fetch_data(self):
        huge = b"18446744073709551615"

        def head(conn, u):
            return (b"* %d FETCH (UID %d INTERNALDATE " % (u, u) +
                    conn.server.date(b"INBOX", u) + b" BODY[] ")
        cases = {
            "garbage": (lambda conn, u: b"\x00\xff\xfe)))garbage{{\x01\r\n", "unparseable"),
            "line of 1 MB": (lambda conn, u: b"* %d FETCH (UID %d X-JUNK " % (u, u) +
                             b"a" * (1 << 20), "unparseable|too long"),
            "1000 deep": (lambda conn, u: b"* %d FETCH (UID %d X (" % (u, u) +
                          b"(" * 1000 + b")" * 1001 + b")\r\n", "unparseable|deep"),
            "2^64-1 literal": (lambda conn, u: head(conn, u) + b"{" + huge + b"}\r\n" +
                               b"x" * 5000, "closed the connection"),
            "20-digit literal": (lambda conn, u: head(conn, u) +
                                 b"{99999999999999999999}\r\nxx", "unparseable"),
            "negative literal": (lambda conn, u: head(conn, u) + b"{-1}\r\nxx",
                                 "unparseable"),
            "short literal": (lambda conn, u: head(conn, u) + b"{5000}\r\n" + b"y" * 700,
                              "closed the connection"),
            "NUL in atom": (lambda conn, u: b"* %d FETCH (UID %d FL\x00AGS ())\r\n" % (u, u),
                            "unparseable"),
            "held literal too big": (lambda conn, u: b"* %d FETCH (UID %d X-NAME {%s}\r\n"
                                     % (u, u, huge), "unparseable"),
        }
        e = self.synced()
        for what, (junk, pattern) in cases.items():
            with self.subTest(what):
                snap = e.mbox(b"INBOX")
                first_new = len(e.boxes[b"INBOX"]) + 1
                e.add(b"INBOX", 2)
                # A dropped connection is tried again once the first message
                # is in: then the one left gets the junk at once.
                e.srv.hooks["UID FETCH"] = on_body_fetch(lambda conn, ctx, junk=junk: [
                    b"".join(conn.fetch_response(u) for u in ctx["uids"][:-1]) +
                    junk(conn, ctx["uids"][-1]), ("sleep", 0.3), ("close",)])
                res, _ = e.run()
                e.assert_failed(res, pattern)
                # The message before the junk arrived whole: it is kept.
                self.assertEqual(self.assert_prefix_kept(e, snap, first_new, res), 1)
                e.follow_up(again=False)
        e.follow_up()

    def test_malformed_before_any_mailbox(self):
        cases = {
            "greeting garbage": ("greeting", lambda conn, ctx: [
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n", ("sleep", 0.3)],
                "unparseable|greeting"),
            "LIST name of 2^64-1 bytes": ("LIST", lambda conn, ctx: [
                b'* LIST () "/" {18446744073709551615}\r\nINBOX\r\n', ("sleep", 0.3)],
                "unparseable"),
            "LIST 1000 deep": ("LIST", lambda conn, ctx: [
                b"* LIST " + b"(" * 1000 + b'\r\n', ("sleep", 0.3)], "unparseable"),
            "CAPABILITY without IMAP4rev1": ("greeting", lambda conn, ctx: [
                b"* OK [CAPABILITY AUTH=PLAIN] hi\r\n"], "IMAP4rev1"),
        }
        e = self.synced()
        for what, (key, script, pattern) in cases.items():
            with self.subTest(what):
                snap = e.mbox(b"INBOX")
                e.add(b"INBOX", 1)
                e.srv.hooks[key] = script
                res, _ = e.run()
                e.assert_failed(res, pattern, mailbox=None)
                self.assertEqual(e.mbox(b"INBOX"), snap)
                e.follow_up(again=False)
        e.follow_up()

    # -- servers that serve so much a session, and messages never delivered -----------

    def per_session(self, e, limit, end):
        """A server that serves limit bodies a connection, then ends the fetch as end
        says ("NO": a tagged NO [UNAVAILABLE]; "BYE": BYE and hang up)."""
        def script(conn, ctx):
            if not ctx["body"]:
                return None
            served = getattr(conn, "served", 0)
            uids = ctx["uids"][:max(limit - served, 0)]
            conn.served = served + len(uids)
            out = b"".join(conn.fetch_response(u) for u in uids)
            if len(uids) == len(ctx["uids"]):
                return [out + ok(ctx)]
            if end == "NO":
                return [out + ctx["tag"] + b" NO [UNAVAILABLE] Too many messages in "
                        b"this session; come back later\r\n"]
            return [out + b"* BYE Session limit reached\r\n", ("close",)]
        e.srv.hooks["UID FETCH"] = script

    def logins(self, e):
        return sum(1 for v, _ in e.srv.log if v in (b"AUTHENTICATE", b"LOGIN"))

    def test_server_serving_500_messages_a_session(self):
        # Yahoo answers NO [UNAVAILABLE] after a burst: what arrived whole is kept and
        # a new connection goes on, so 10,000 messages take one --once, each once.
        e = self.env(counts={b"INBOX": 10000})
        self.per_session(e, 500, "NO")
        res, _ = e.run(bound=180)
        e.assert_ok(res, messages=10000)
        e.assert_exact(b"INBOX")
        self.assertEqual(self.logins(e), 20)
        self.assertIn("reconnecting", res.stderr)
        e.follow_up()

    def test_server_ending_sessions_with_bye(self):
        # Others say BYE and hang up; a later sync of new mail goes the same way.
        e = self.env(counts={b"INBOX": 700})
        self.per_session(e, 300, "BYE")
        res, _ = e.run(bound=120)
        e.assert_ok(res, messages=700)
        e.assert_exact(b"INBOX")
        self.assertEqual(self.logins(e), 3)
        e.add(b"INBOX", 50)
        self.per_session(e, 20, "BYE")
        res, _ = e.run(bound=120)
        e.assert_ok(res, messages=50)
        e.assert_exact(b"INBOX")
        e.follow_up()

    def test_server_that_never_delivers_gives_up_in_time(self):
        # A connection that delivers nothing is not tried again in the same run.
        e = self.env(counts={b"INBOX": 5})
        self.per_session(e, 0, "NO")
        res, _ = e.run()
        e.assert_failed(res, r"UID FETCH failed: \[UNAVAILABLE\]")
        self.assertEqual(self.logins(e), 1)
        self.assertEqual(e.mbox(b"INBOX"), b"")
        e.follow_up()

    def undeliverable(self, e, uid, how):
        """UID uid is never delivered: its body is NIL, or the fetch that asks for it
        delivers what comes before it and ends NO (Exchange, for a corrupt item)."""
        def script(conn, ctx):
            if not ctx["body"]:
                return None
            out = b""
            for u in ctx["uids"]:
                if u != uid:
                    out += conn.fetch_response(u)
                elif how == "NIL":
                    out += b"* %d FETCH (UID %d INTERNALDATE %s BODY[] NIL)\r\n" % (
                        u, u, conn.server.date(b"INBOX", u))
                else:
                    return [out + ctx["tag"] + b" NO The item is corrupt\r\n"]
            return [out + ok(ctx)]
        e.srv.hooks["UID FETCH"] = script

    def test_message_never_delivered_is_given_up(self):
        for how, why in (("NIL", r"the server sent no body \(BODY\[\] NIL\)"),
                         ("NO", r"UID FETCH failed: The item is corrupt")):
            with self.subTest(how):
                e = self.env(counts={b"INBOX": 6})
                self.undeliverable(e, 3, how)
                for sync in (1, 2):
                    res, _ = e.run()
                    e.assert_failed(res, rf"UID 3: {why}")
                    self.assertIn(f"(sync {sync} of 3 before it is given up)",
                                  res.stderr)
                    e.assert_exact(b"INBOX", [1, 2])
                # The third sync gives it up and mirrors everything after it.
                res, _ = e.run()
                e.assert_ok(res)
                self.assertRegex(res.stderr, r"mailbox INBOX: UID 3: .* in 3 syncs in "
                                 r"a row; given up")
                e.assert_exact(b"INBOX", [1, 2, 4, 5, 6])
                status = mmtest.run_mboxmirror("-c", e.conf, "--status")
                self.assertRegex(status.stdout, r"INBOX: 1 message given up.*UID 3")
                # It stays given up; new mail still comes.
                e.add(b"INBOX", 2)
                res, _ = e.run()
                e.assert_ok(res, messages=2)
                e.assert_exact(b"INBOX", [1, 2, 4, 5, 6, 7, 8])

    def test_hole_filled_before_it_is_given_up(self):
        # Left out once, delivered the next time: nothing is given up, all once.
        e = self.env(counts={b"INBOX": 6})
        self.undeliverable(e, 4, "NIL")
        res, _ = e.run()
        e.assert_failed(res, r"UID 4: the server sent no body")
        e.follow_up()
        status = mmtest.run_mboxmirror("-c", e.conf, "--status")
        self.assertNotIn("given up", status.stdout)

    def test_lost_connections_never_give_a_message_up(self):
        # A link that cuts every transfer of a big message counts no try against it:
        # it is not the server saying the message cannot be had.
        e = self.env(counts={b"INBOX": 3})
        e.srv.hooks["UID FETCH"] = on_body_fetch(lambda conn, ctx: [
            conn.fetch_response(ctx["uids"][0])[:-40], ("close",)])
        for _ in range(4):
            res, _ = e.run()
            e.assert_failed(res, "closed the connection")
            self.assertNotIn("given up", res.stderr)
        e.follow_up()
        status = mmtest.run_mboxmirror("-c", e.conf, "--status")
        self.assertNotIn("given up", status.stdout)
        # Nor does a refusal that says "not now".
        e.add(b"INBOX", 2)
        e.srv.hooks["UID FETCH"] = on_body_fetch(lambda conn, ctx: [
            ctx["tag"] + b" NO [UNAVAILABLE] try later\r\n"])
        for _ in range(4):
            res, _ = e.run()
            e.assert_failed(res, r"UID FETCH failed: \[UNAVAILABLE\] try later")
            self.assertNotIn("given up", res.stderr)
        e.follow_up()

    def test_direct_fetch_failing_before_its_sizes(self):
        # The fetch sent with EXAMINE brings UIDs 3 and 5 but not 4, and fails before
        # the size query (which would list 4) has been answered: only 3 may be
        # committed, or 4 would be lost for good.
        for end in ("NO", "close"):
            with self.subTest(end):
                e = self.synced(prior=2)
                e.add(b"INBOX", 3)
                held = {}

                def hook(conn, ctx, end=end):
                    if not ctx["body"]:
                        held["sizes"] = ctx
                        return []
                    out = b"".join(conn.fetch_response(u) for u in ctx["uids"]
                                   if u != 4)
                    if end == "close":
                        return [out, ("sleep", 0.2), ("close",)]
                    sz = held["sizes"]
                    return [out + ctx["tag"] + b" NO [UNAVAILABLE] try later\r\n" +
                            b"".join(conn.fetch_response(u, ("UID", "RFC822.SIZE"))
                                     for u in sz["uids"]) + sz["tag"] + b" OK done\r\n"]
                e.srv.hooks["UID FETCH"] = hook
                res, _ = e.run()
                self.assertEqual(res.returncode, 1, res.stderr[-3000:])
                e.assert_exact(b"INBOX", [1, 2, 3])
                e.follow_up()

    def test_fetch_completed_before_its_examine(self):
        # Commands that depend on each other answered out of order: a protocol
        # error, never a crash or a second open of one mbox.
        for first in (True, False):
            with self.subTest(first_sync=first):
                e = self.env(counts={b"INBOX": 3}) if first else self.synced()
                if not first:
                    e.add(b"INBOX", 2)
                held = {}

                def examine(conn, ctx):
                    conn.selected = ctx["mailbox"]
                    held["tag"] = ctx["tag"]
                    return []

                def fetch(conn, ctx):
                    items = (("UID", "INTERNALDATE", "RFC822.SIZE", "BODY[]")
                             if ctx["body"] else ("UID", "RFC822.SIZE"))
                    n = len(conn.selected[2])
                    return [b"".join(conn.fetch_response(u, items) for u in ctx["uids"]) +
                            ok(ctx) + b"* %d EXISTS\r\n* OK [UIDVALIDITY %d] v\r\n" %
                            (n, fi.UIDVALIDITY) + held["tag"] + b" OK examined\r\n"]
                e.srv.hooks["EXAMINE"] = examine
                e.srv.hooks["UID FETCH"] = fetch
                snap = e.mbox(b"INBOX")
                res, _ = e.run()
                e.assert_failed(res, "completed before the EXAMINE", mailbox=None)
                self.assertEqual(e.mbox(b"INBOX"), snap)
                self.assertFalse(os.path.exists(e.path(b"INBOX") + ".lock"))
                e.follow_up()

    def test_hole_expunged_is_forgotten(self):
        # UID 3 was left out once, then expunged: the mailbox is not held for it,
        # and no longer opened once nothing is new.
        e = self.env(counts={b"INBOX": 4})
        self.undeliverable(e, 3, "NIL")
        res, _ = e.run()
        e.assert_failed(res, r"UID 3: the server sent no body")
        e.srv.hooks.clear()
        gone = e.boxes[b"INBOX"][2]

        def without_3(conn, ctx):
            items = (("UID", "INTERNALDATE", "RFC822.SIZE", "BODY[]")
                     if ctx["body"] else ("UID", "RFC822.SIZE"))
            return [b"".join(conn.fetch_response(u, items) for u in ctx["uids"]
                             if u != 3) + ok(ctx)]
        e.srv.hooks["UID FETCH"] = without_3
        res, _ = e.run()
        e.assert_ok(res)
        e.assert_exact(b"INBOX", [1, 2, 4])
        res, _ = e.run()
        e.assert_ok(res, messages=0)
        self.assertEqual(mu.count_opened(res.stdout, ACCOUNT)[1], 0)
        self.assertTrue(gone)
        status = mmtest.run_mboxmirror("-c", e.conf, "--status")
        self.assertNotIn("not delivered", status.stdout)

    # -- a mail reader changed the mbox, then a crash ---------------------------------

    def state_size(self, e):
        with open(os.path.join(e.tmp, "state", ACCOUNT, "state")) as f:
            m = re.search(r"^mailbox\tINBOX\t.*\tmbox_size=(\d+)", f.read(), re.M)
        return int(m.group(1))

    def test_shrunk_mbox_then_kill_during_append(self):
        # A reader deleted the last message (the mbox is shorter than committed);
        # the next sync is killed while appending.  The new size must have been
        # durable before the append, so the restart cuts the tail as its own and the
        # mirror ends with every message once.
        e = self.synced(prior=3)
        entries = split_mbox(e.mbox(b"INBOX"))
        shrunk = b"".join(entries[:2])
        with open(e.path(b"INBOX"), "r+b") as f:
            f.truncate(len(shrunk))
        e.add(b"INBOX", 2)
        # Big enough that part of the append reaches the file before the kill.
        e.boxes[b"INBOX"][3] = mmtest.make_message("big", (b"y" * 70 + b"\r\n") * 8000)
        held = []

        def script(conn, ctx):
            if not ctx["body"]:
                return None
            held.append(True)
            full = conn.fetch_response(ctx["uids"][0])
            return [full[:len(full) - 100], ("hang",)]
        e.srv.hooks["UID FETCH"] = script
        proc = mu.start_mboxmirror("-c", e.conf, "--once")
        try:
            mmtest.wait_for(lambda: held and os.path.getsize(e.path(b"INBOX")) > len(shrunk),
                            BOUND, what="the held sync to append")
            self.assertEqual(self.state_size(e), len(shrunk))
        finally:
            proc.kill()
            proc.communicate()
        e.srv.hooks.clear()
        res, _ = e.run()
        e.assert_ok(res, messages=2)
        self.assertEqual(e.mbox(b"INBOX"), shrunk + e.expected(b"INBOX", [4, 5]))

    def test_slow_batch_commits_as_it_comes(self):
        # One batch that takes long to arrive (a slow link) is committed every
        # couple of seconds as it comes, not only at its end: a kill -9 in the
        # middle keeps what came before, and progress is reported meanwhile.
        e = self.env(counts={b"INBOX": 12}, timeout="20s")

        def script(conn, ctx):
            if not ctx["body"]:
                return None
            acts = []
            for u in ctx["uids"]:
                acts += [conn.fetch_response(u), ("sleep", 0.5)]
            return acts + [("hang",)]
        e.srv.hooks["UID FETCH"] = script
        t0 = time.monotonic()
        proc = mu.start_mboxmirror("-c", e.conf, "--once", "-v")
        seen = bytearray()      # stderr so far, read as it comes

        def committed_size():
            try:
                return self.state_size(e)
            except (FileNotFoundError, AttributeError):
                return 0

        def progress_line():
            try:
                seen.extend(os.read(proc.stderr.fileno(), 1 << 16))
            except BlockingIOError:
                pass
            return re.search(rb"mailbox INBOX: \d+/12 messages", seen)
        os.set_blocking(proc.stderr.fileno(), False)
        try:
            # Within the batch's 6 s, long before its end or the timeout.
            try:
                mmtest.wait_for(committed_size, max(0, t0 + 5 - time.monotonic()))
            except AssertionError:
                pass            # (reported below, with the log)
            committed = committed_size()
            # The first progress line (every 5 s), before the batch ends.
            try:
                mmtest.wait_for(progress_line, max(0, t0 + 10 - time.monotonic()))
            except AssertionError:
                pass
        finally:
            proc.kill()
            _, err = proc.communicate()
        err = (bytes(seen) + err).decode(errors="replace")
        self.assertGreater(committed, 0, err[-3000:])
        # The committed part is whole messages, in order.
        self.assertTrue(e.expected(b"INBOX").startswith(e.mbox(b"INBOX")[:committed]))
        self.assertRegex(err, r"mailbox INBOX: \d+/12 messages")
        e.follow_up()

    def test_slow_direct_fetch_with_sizes_out_of_order(self):
        # A few new messages, their sizes listed in descending order and the list
        # held open while the bodies come slowly: the commit made meanwhile must
        # not leave a committed UID looking undone once the list is complete.
        e = self.synced(prior=10)
        e.add(b"INBOX", 3)
        held = {}

        def script(conn, ctx):
            if not ctx["body"]:
                held["tag"] = ctx["tag"]
                return [b"".join(conn.fetch_response(u, ("UID", "RFC822.SIZE"))
                                 for u in reversed(ctx["uids"]) if u > 10)]
            return [("sleep", 2.6), conn.fetch_response(11), conn.fetch_response(12),
                    conn.fetch_response(13), held["tag"] + b" OK sizes\r\n" + ok(ctx)]
        e.srv.hooks["UID FETCH"] = script
        res, _ = e.run()
        e.assert_ok(res, messages=3)
        e.assert_exact(b"INBOX")
        e.follow_up()

    def test_quiet_prints_nothing_on_success(self):
        # --once -q from cron: silence when all is well, the failure when not.
        e = self.env(counts={b"INBOX": 2})
        res = mmtest.run_mboxmirror("-c", e.conf, "--once", "-q")
        self.assertEqual((res.returncode, res.stdout, res.stderr), (0, "", ""))
        e.assert_exact(b"INBOX")
        e.add(b"INBOX", 1)
        e.srv.hooks["UID FETCH"] = on_body_fetch(lambda conn, ctx: [
            ctx["tag"] + b" NO [UNAVAILABLE] later\r\n"])
        res = mmtest.run_mboxmirror("-c", e.conf, "--once", "-q")
        self.assertEqual(res.returncode, 1)
        self.assertIn(f"{ACCOUNT}: FAILED", res.stdout)
        self.assertIn("UID FETCH failed: [UNAVAILABLE] later", res.stderr)

    # -- servers that stall: timeout = 2s ---------------------------------------------

    def test_server_stops_answering_mid_fetch(self):
        res, elapsed = self.failing(
            lambda conn, ctx: [conn.fetch_response(ctx["uids"][0])[:-30], ("hang",)],
            "no response from .* for 2s", timeout="2s", bound=15)
        self.assertGreaterEqual(elapsed, 1.5)

    def test_no_greeting(self):
        self.failing(lambda conn, ctx: [("hang",)], "no response from .* for 2s",
                     key="greeting", mailbox=None, timeout="2s", bound=15)

    def test_trickling_server(self):
        # One byte every 0.5 s: of a greeting that never ends, and of a body literal.
        # Neither is progress enough: each fails within about one timeout.
        endless = b"* OK " + b"x" * 100000
        res, elapsed = self.failing(lambda conn, ctx: [("trickle", endless, 0.5)],
                                    "no response from .* for 2s", key="greeting",
                                    mailbox=None, timeout="2s", bound=15)
        self.assertLess(elapsed, 10)

        def body(conn, ctx):
            u = ctx["uids"][0]
            return [b"* %d FETCH (UID %d INTERNALDATE " % (u, u) +
                    conn.server.date(b"INBOX", u) + b" BODY[] {100000}\r\n",
                    ("trickle", b"z" * 100000, 0.5)]
        res, elapsed = self.failing(body, "no response from .* for 2s",
                                    timeout="2s", bound=15)
        self.assertLess(elapsed, 10)


    def test_endless_untagged_responses(self):
        # Complete responses, but never the tagged one: a flood of "* OK" and of
        # unasked FETCH flags, each for longer than the test's bound.
        for what, line in (("OK", b"* OK still working\r\n"),
                           ("FETCH", b"* 1 FETCH (FLAGS (\\Seen))\r\n")):
            with self.subTest(what):
                res, elapsed = self.failing(
                    lambda conn, ctx, line=line: [("flood", line, 60)],
                    r"no response from .* for 2s, only \d+ untagged ones",
                    timeout="2s", bound=30)
                self.assertLess(elapsed, 30)


if __name__ == "__main__":
    unittest.main(verbosity=2)
