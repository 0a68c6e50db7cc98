"""--restore: a mirror uploaded into another account, byte for byte, with INTERNALDATE
and flags; exactly once across kill -9 and reruns; --dry-run changes nothing; the
source's mirror and state are never touched."""

import hashlib
import imaplib
import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest

import mirror_fakeimap as fi
import mmtest

BIG = 20 * 1024 * 1024


def tree_hash(path):
    """{relative path: sha256} of every file under path."""
    out = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, path)] = hashlib.sha256(f.read()).hexdigest()
    return out


def fetch_all(fx, user, password, mailbox):
    """Sorted [(body, internaldate, flags)] of every message of mailbox (EXAMINE)."""
    with fx.imap(user, password) as c:
        typ, _ = c.select('"%s"' % mmtest.mutf7_encode(mailbox), readonly=True)
        assert typ == "OK", mailbox
        typ, data = c.uid("FETCH", "1:*", "(INTERNALDATE FLAGS BODY.PEEK[])")
        assert typ == "OK", data
    out = []
    for item in data:
        if not isinstance(item, tuple):
            continue
        head, body = item
        date = re.search(rb'INTERNALDATE "([^"]+)"', head)
        flags = re.search(rb"FLAGS \(([^)]*)\)", head)
        if date is None or flags is None:
            # FLAGS may come after the literal.
            rest = data[data.index(item) + 1]
            rest = rest if isinstance(rest, bytes) else b""
            date = date or re.search(rb'INTERNALDATE "([^"]+)"', rest)
            flags = flags or re.search(rb"FLAGS \(([^)]*)\)", rest)
        fl = frozenset(f for f in flags.group(1).decode().split() if f != "\\Recent")
        out.append((body, date.group(1).decode(), fl))
    out.sort(key=lambda t: (hashlib.sha256(t[0]).digest(), t[1]))
    return out


def append_raw(fx, user, password, mailbox, message, flags="", date=None):
    """APPEND with an INTERNALDATE given as text (with its zone)."""
    with fx.imap(user, password) as c:
        typ, data = c.append('"%s"' % mmtest.mutf7_encode(mailbox), flags or None,
                             date and '"%s"' % date, message)
        assert typ == "OK", data


class Proxy:
    """A loopback TCP proxy to port that passes the bytes of each connection on as
    client_bytes() (the client's) and server_bytes (the server's) give them back:
    as they are, unless a subclass says otherwise."""

    chunk = 65536

    def __init__(self, port):
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def client_bytes(self):
        """What to pass on of each chunk the client sends, a function per connection
        (so that it may keep what it needs between chunks)."""
        return lambda data: data

    def server_bytes(self, data):
        return data

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self.socks += [client, server]
            threading.Thread(target=self._pump,
                             args=(client, server, self.client_bytes()),
                             daemon=True).start()
            threading.Thread(target=self._pump,
                             args=(server, client, self.server_bytes),
                             daemon=True).start()

    def _pump(self, src, dst, change):
        try:
            while data := src.recv(self.chunk):
                dst.sendall(change(data))
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.listener.close()
        for s in self.socks:
            s.close()


class SlowUpload(Proxy):
    """A proxy that passes the client's bytes at about rate bytes/s (the server's at
    full speed): an upload that takes seconds.  TLS stays end to end."""

    chunk = 16384

    def __init__(self, port, rate):
        self.rate = rate
        super().__init__(port)

    def client_bytes(self):
        def slowly(data):
            time.sleep(len(data) / self.rate)
            return data
        return slowly


class CommandLog(Proxy):
    """A plaintext proxy that passes everything as it is and keeps the client's
    command lines that hold word."""

    def __init__(self, port, word):
        self.word = word
        self.lines = []
        super().__init__(port)

    def client_bytes(self):
        buf = b""

        def keep_lines(data):
            nonlocal buf
            buf = (buf + data)[-4096:]
            *whole, buf = buf.split(b"\r\n")
            self.lines += [ln for ln in whole if self.word in ln]
            return data
        return keep_lines


class NoLiteralPlus(CommandLog):
    """A plaintext proxy that hides LITERAL+ (and LITERAL-) from the client's view of
    the capabilities and keeps the client's APPEND lines: the client must use
    synchronising literals, each waiting for the server's "+"."""

    def __init__(self, port):
        super().__init__(port, b" APPEND ")

    def server_bytes(self, data):
        return re.sub(rb" LITERAL[+-]", b"", data)


class RestoreTest(unittest.TestCase):
    def setUp(self):
        self.fx = mmtest.Fixture()
        self.src = self.fx.new_user()
        self.dst = self.fx.new_user()
        self.tmp_ctx = mmtest.TempDir()
        self.tmp = self.tmp_ctx.__enter__()
        self.conf = mmtest.write_config(self.tmp, [
            self.fx.account(self.tmp, *self.src, name="src"),
            self.fx.account(self.tmp, *self.dst, name="dst")],
            general={"log_level": "info"})
        self.state = os.path.join(self.tmp, "state")

    def tearDown(self):
        self.tmp_ctx.__exit__(None, None, None)

    def restore(self, *extra, check=True):
        res = mmtest.run_mboxmirror("-c", self.conf, "--restore", "src", "--to", "dst",
                                    *extra, timeout=300)
        if check:
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        return res

    def restore_into(self, dst, *extra, filename, general=None, timeout=300):
        """Restores src into the account dst (a config section, named "dst") with a
        config of its own; returns the run and the seconds it took."""
        conf = mmtest.write_config(self.tmp, [
            self.fx.account(self.tmp, *self.src, name="src"), dst],
            general=general, filename=filename)
        started = time.monotonic()
        res = mmtest.run_mboxmirror("-c", conf, "--restore", "src", "--to", "dst",
                                    *extra, timeout=timeout)
        return res, time.monotonic() - started

    def dst_via(self, port, **keys):
        """The account dst reached through a proxy on port."""
        return self.fx.account(self.tmp, *self.dst, name="dst", port=port, **keys)

    def fake_dst(self, srv):
        """An account dst on the fake server srv (plain text, no TLS)."""
        return {"__name__": "dst", "host": "127.0.0.1", "port": str(srv.port),
                "tls": "none", "allow_plaintext": "yes", "user": "u",
                "password": "x", "output": os.path.join(self.tmp, "out", "dst")}

    def mirror_source(self):
        res = mmtest.run_mboxmirror("-c", self.conf, "--once", "-a", "src", timeout=300)
        self.assertEqual(res.returncode, 0, res.stderr)

    def fill_source(self):
        fx, (u, p) = self.fx, self.src
        for box in ("Archive/2023", "Archive/Ärger/Tief", "Sent"):
            fx.create_mailbox(u, p, box)
        # CRLF text, flags with keywords, a zone that is not UTC.
        append_raw(fx, u, p, "INBOX", mmtest.make_message("plain", "one\r\ntwo\r\n"),
                   r"(\Seen \Flagged $Forwarded Work)", "17-Jul-1996 02:44:25 -0700")
        # 8-bit, From lines to quote, no Message-ID.
        append_raw(fx, u, p, "INBOX",
                   b"Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   b"Content-Transfer-Encoding: 8bit\r\n\r\n\xc3\xa4rger \xff\r\n"
                   b"From here\r\n>From there\r\n>>From far\r\n", r"(\Answered)",
                   "01-Feb-2020 10:00:00 +0530")
        # No final newline; a lone CR inside.
        append_raw(fx, u, p, "Archive/2023",
                   mmtest.make_message("no newline", "a\rb\r\nlast line"), r"(\Draft)",
                   "29-Feb-2024 23:59:59 +0000")
        append_raw(fx, u, p, "Archive/Ärger/Tief", mmtest.make_message("deep", "x\r\n"))
        # An empty body, and a big one.
        append_raw(fx, u, p, "Sent", mmtest.make_message("empty", ""), r"(\Seen)")
        line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.:-+\r\n"
        big = mmtest.make_message("big", "") + line * (BIG // len(line))
        append_raw(fx, u, p, "Sent", big, r"(\Seen $Label1)", "05-May-2021 05:05:05 +0200")
        return ["INBOX", "Archive/2023", "Archive/Ärger/Tief", "Sent"]

    def assert_same(self, boxes):
        for box in boxes:
            want = fetch_all(self.fx, *self.src, box)
            got = fetch_all(self.fx, *self.dst, box)
            self.assertEqual(len(got), len(want), box)
            for w, g in zip(want, got):
                self.assertEqual(g[0], w[0], f"{box}: body differs")
                self.assertEqual(g[1], w[1], f"{box}: INTERNALDATE differs")
                self.assertEqual(g[2], w[2], f"{box}: flags differ")

    def test_restore_into_empty_account(self):
        boxes = self.fill_source()
        self.mirror_source()
        src_state = os.path.join(self.state, "src")
        before = (tree_hash(os.path.join(self.tmp, "out", "src")), tree_hash(src_state))

        # --dry-run: says what it would do, changes nothing anywhere.
        res = self.restore("--dry-run")
        self.assertIn("dry run", res.stdout)
        self.assertRegex(res.stdout, r"total: 6 messages to upload")
        self.assertRegex(res.stdout, r"Archive/Ärger/Tief -> Archive/&AMQ-rger/Tief "
                                     r"\(to create\): 1 to upload")
        self.assertEqual(self.fx.list_mailboxes(*self.dst), ["INBOX"])
        self.assertEqual(fetch_all(self.fx, *self.dst, "INBOX"), [])
        self.assertFalse(os.path.exists(os.path.join(self.state, "dst")))

        res = self.restore()
        self.assertRegex(res.stdout, r"total: 6 messages uploaded")
        self.assertEqual(sorted(self.fx.list_mailboxes(*self.dst)),
                         sorted(boxes + ["Archive", "Archive/Ärger"]))
        self.assert_same(boxes)

        res = self.restore("--dry-run")
        self.assertRegex(res.stdout, r"total: 0 messages to upload \(0\.0 MB\), 0 already "
                                     r"there, 6 done before")

        # Again: everything is done, nothing is sent twice.
        res = self.restore()
        self.assertRegex(res.stdout, r"total: 0 messages uploaded .* 6 done before")
        self.assert_same(boxes)

        # Without the journal: found on the target by Message-ID and size (the 8-bit
        # message, without Message-ID, by size and INTERNALDATE).
        for name in os.listdir(os.path.join(self.state, "dst")):
            if name.startswith("restore-"):
                os.unlink(os.path.join(self.state, "dst", name))
        res = self.restore()
        self.assertRegex(res.stdout, r"total: 0 messages uploaded .*, 6 already there")
        self.assert_same(boxes)

        self.assertEqual((tree_hash(os.path.join(self.tmp, "out", "src")),
                          tree_hash(src_state)), before)

    def test_same_account_disaster_recovery(self):
        """Restore into the account mirrored: only what the server lost goes back."""
        fx, (u, p) = self.fx, self.src
        boxes = self.fill_source()
        self.mirror_source()
        want = {box: fetch_all(fx, u, p, box) for box in boxes}
        src_state = os.path.join(self.state, "src")
        kept = lambda: {k: v for k, v in tree_hash(src_state).items()
                        if k == "state" or k.startswith("index-")}
        before = (tree_hash(os.path.join(self.tmp, "out", "src")), kept())
        fx.delete_mailbox(u, p, "Archive/2023")
        with fx.imap(u, p) as c:
            c.select("INBOX")
            c.store("1:*", "+FLAGS", r"(\Deleted)")
            c.expunge()
        res = mmtest.run_mboxmirror("-c", self.conf, "--restore", "src", "--to", "src",
                                    timeout=300)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertRegex(res.stdout, r"total: 3 messages uploaded .*, 3 already there")
        for box in boxes:
            self.assertEqual(fetch_all(fx, u, p, box), want[box], box)
        self.assertEqual((tree_hash(os.path.join(self.tmp, "out", "src")), kept()), before)
        self.assertTrue(any(k.startswith("index-") for k in before[1]))

    def test_progress_on_a_slow_link(self):
        """Progress lines with the time left while a big message goes out slowly."""
        fx, (u, p) = self.fx, self.src
        line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.:-+\r\n"
        fx.append(u, p, "INBOX", mmtest.make_message("big", "") + line * (12_000_000 //
                                                                         len(line)))
        self.mirror_source()
        proxy = SlowUpload(fx.imaps_port, 1_500_000)
        try:
            res, took = self.restore_into(self.dst_via(proxy.port), filename="slow.ini",
                                          general={"log_level": "info"})
        finally:
            proxy.close()
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        lines = re.findall(r"info: restore src -> dst: mailbox INBOX: 0/1 messages, "
                           r"([\d.]+)/12\.0 MB, [\d.]+ MB/s, about (\d+)s left; all: "
                           r"0/1 message, [\d.]+/12\.0 MB, about \d+s left", res.stderr)
        self.assertGreaterEqual(len(lines), 1, res.stderr)
        self.assertGreater(float(lines[0][0]), 0)
        self.assertLess(int(lines[0][1]), took + 5)
        self.assertRegex(res.stdout, r"total: 1 message uploaded \(12\.0 MB\)")

    def test_synchronising_literals(self):
        """A server without LITERAL+: each APPEND's literal waits for "+"."""
        fx, (u, p) = self.fx, self.src
        msgs = [mmtest.make_message("sync %d" % i, "x\r\n" * (1 + 200_000 * (i == 2)))
                for i in range(4)]
        fx.append_many(u, p, "INBOX", msgs, flags=(r"\Seen",))
        self.mirror_source()
        proxy = NoLiteralPlus(fx.nostarttls_port)
        try:
            res, _ = self.restore_into(self.dst_via(proxy.port, tls="none"),
                                       filename="sync.ini")
        finally:
            proxy.close()
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertEqual(len(proxy.lines), 4, proxy.lines)
        for line in proxy.lines:
            self.assertRegex(line, rb"APPEND INBOX \(\\Seen\) \"[^\"]+\" \{\d+\}$")
        self.assert_same(["INBOX"])

    def test_target_scanned_in_batches(self):
        """The target's messages are looked up a batch at a time: a mailbox of any
        size never answers one command with more untagged responses than the
        session counts as progress (100,000 in a row)."""
        fx, (u, p) = self.fx, self.src
        n = 4500
        msgs = [mmtest.make_message("many %d" % i, "x %d\r\n" % i) for i in range(n)]
        dates = [1600000000 + i for i in range(n)]
        fx.append_many(u, p, "INBOX", msgs, date=dates)
        fx.append_many(*self.dst, "INBOX", msgs, date=dates)
        self.mirror_source()
        proxy = CommandLog(fx.nostarttls_port, b" FETCH ")
        try:
            res, _ = self.restore_into(self.dst_via(proxy.port, tls="none"),
                                       filename="batches.ini")
        finally:
            proxy.close()
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertRegex(res.stdout, r"total: 0 messages uploaded .*, %d already there" % n)
        seen = set()
        for line in proxy.lines:
            m = re.search(rb" FETCH (\d+):(\d+) ", line)
            self.assertIsNotNone(m, line)
            lo, hi = int(m.group(1)), int(m.group(2))
            self.assertLessEqual(hi - lo + 1, 2000, line)
            seen.update(range(lo, hi + 1))
        self.assertEqual(seen, set(range(1, n + 1)))

    def assert_flood_refused(self, command, flood, inbox, error):
        """Restores one message into a fake target whose INBOX holds inbox and which
        answers command with flood without end: the run fails with error soon."""
        self.fx.append(*self.src, "INBOX", mmtest.make_message("one"))
        self.mirror_source()
        srv = fi.FakeImap([(b"/", b"INBOX", inbox)]).start()
        srv.hooks[command] = lambda conn, ctx: [("flood", flood, 10)]
        try:
            res, took = self.restore_into(self.fake_dst(srv), filename="flood.ini",
                                          general={"timeout": "30"}, timeout=60)
        finally:
            srv.stop()
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn(error, res.stderr)
        self.assertLess(took, 8)

    def test_target_floods_fetch(self):
        """A target that answers a FETCH with more messages than asked for: a
        protocol error, not memory filled for as long as it goes on."""
        self.assert_flood_refused(
            "FETCH",
            b'* 1 FETCH (RFC822.SIZE 10 INTERNALDATE "03-Sep-2023 14:05:09 +0000" '
            b'BODY[HEADER.FIELDS (MESSAGE-ID)] {4}\r\nx\r\n\r)\r\n',
            [b"x\r\n"], "more FETCH responses than messages asked for")

    def test_target_grows_while_scanned(self):
        """Messages that arrive while the target mailbox is looked up are not looked
        up too: a server that says EXISTS ever higher does not keep the lookup going
        (nor filling memory) forever."""
        self.fx.append(*self.src, "INBOX", mmtest.make_message("one"))
        self.mirror_source()
        srv = fi.FakeImap([(b"/", b"INBOX", [b"x\r\n"])]).start()
        grown = iter(range(10**9, 2 * 10**9, 2000))
        srv.hooks["FETCH"] = lambda conn, ctx: [
            b'* 1 FETCH (RFC822.SIZE 3 INTERNALDATE "03-Sep-2023 14:05:09 +0000")\r\n'
            b"* %d EXISTS\r\n" % next(grown) + ctx["tag"] + b" OK fetched\r\n"]
        try:
            res, _ = self.restore_into(self.fake_dst(srv), "--dry-run",
                                       filename="grow.ini", timeout=30)
        finally:
            srv.stop()
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertEqual([verb for verb, _ in srv.log].count(b"FETCH"), 1, srv.log[-5:])
        self.assertRegex(res.stdout, r"total: 1 message to upload")

    def test_target_floods_list(self):
        """A target that lists mailboxes without end: a protocol error once it lists
        more than an account holds (as a sync and --list take it)."""
        self.assert_flood_refused("LIST", b'* LIST () "/" INBOX\r\n', [],
                                  "the server lists more than 100000 mailboxes")

    def test_many_mailboxes_small_stack(self):
        """Mailboxes with nothing to do on the target follow one another in a loop,
        not one call deeper each: thousands of them run on a 256 KiB stack."""
        fx = self.fx
        fx.append(*self.src, "INBOX", mmtest.make_message("one"))
        self.mirror_source()
        n = 3000
        state = os.path.join(self.state, "src", "state")
        with open(state) as f:
            lines = f.read().split("\n")
        extra = ["mailbox\tB%05d\tB%05d.mbox\tuidvalidity=1\tlast_uid=0\tuidnext=1\t"
                 "messages=0\tmbox_size=0" % (i, i) for i in range(n)]
        for i in range(n):
            open(os.path.join(self.tmp, "out", "src", "B%05d.mbox" % i), "w").close()
        end = lines.index("end")
        with open(state, "w") as f:
            f.write("\n".join(lines[:end] + extra + lines[end:]))
        # A dry run: none of them exists on the target, none is asked about.
        res = subprocess.run(
            ["sh", "-c", 'ulimit -s 256 && exec "$@"', "sh", os.environ["MBOXMIRROR"],
             "-c", self.conf, "--restore", "src", "--to", "dst", "--dry-run"],
            capture_output=True, text=True, timeout=300)
        self.assertEqual(res.returncode, 0, res.stderr[-3000:])
        self.assertIn("%d mailboxes" % (n + 1), res.stdout)
        self.assertRegex(res.stdout, r"total: 1 message to upload")

    def test_mailbox_pattern(self):
        self.fill_source()
        self.mirror_source()
        res = self.restore("--mailbox", "Archive/*")
        self.assertRegex(res.stdout, r"2 mailboxes")
        self.assertEqual(sorted(self.fx.list_mailboxes(*self.dst)),
                         ["Archive", "Archive/2023", "Archive/Ärger", "Archive/Ärger/Tief",
                          "INBOX"])
        self.assert_same(["Archive/2023", "Archive/Ärger/Tief"])
        # A pattern that matches nothing: an error, and nothing is sent.
        res = self.restore("--mailbox", "Sent", "--mailbox", "Nowhere/*", check=False)
        self.assertEqual(res.returncode, 1)
        self.assertIn('--mailbox "Nowhere/*" matches no mailbox mirrored for account src',
                      res.stderr)
        self.assertNotIn("Sent", self.fx.list_mailboxes(*self.dst))

    def test_mbox_changed_since_indexed(self):
        """An entry whose bytes are not the ones the index recorded (the mbox damaged
        or edited in place) is not uploaded: the target gets only intact messages."""
        fx, (u, p) = self.fx, self.src
        msgs = [mmtest.make_message("kept %d" % i, "body %d intact\r\n" % i)
                for i in range(3)]
        fx.append_many(u, p, "INBOX", msgs)
        self.mirror_source()
        path = os.path.join(self.tmp, "out", "src", "INBOX.mbox")
        with open(path, "rb") as f:
            data = f.read()
        self.assertIn(b"body 1 intact", data)
        with open(path, "wb") as f:
            f.write(data.replace(b"body 1 intact", b"body 1 INTACT"))
        res = self.restore(check=False)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn("the mbox changed since it was indexed", res.stderr)
        got = [g[0] for g in fetch_all(fx, *self.dst, "INBOX")]
        self.assertEqual(len(got), 2, res.stdout)
        self.assertFalse(any(b"INTACT" in g for g in got))
        # Put right, the rerun sends the one left out, and only it.
        with open(path, "wb") as f:
            f.write(data)
        res = self.restore()
        self.assertRegex(res.stdout, r"total: 1 message uploaded .* 2 done before")
        self.assert_same(["INBOX"])

    def test_mirror_without_index(self):
        """A mirror made before the message index existed: read through an index
        rebuilt in memory (nothing written); bytes and dates come back, flags do not."""
        fx, (u, p) = self.fx, self.src
        msgs = [mmtest.make_message("old %d" % i, "body %d\r\n>From x\r\n" % i)
                for i in range(5)]
        fx.append_many(u, p, "INBOX", msgs, flags=(r"\Seen",),
                       date=[1500000000 + i for i in range(5)])
        self.mirror_source()
        src_state = os.path.join(self.state, "src")
        for name in os.listdir(src_state):
            if name.startswith("index-"):
                os.unlink(os.path.join(src_state, name))
        before = tree_hash(src_state)
        res = self.restore()
        self.assertIn("mailbox INBOX has no message index", res.stderr)
        self.assertRegex(res.stdout, r"total: 5 messages uploaded")
        want = fetch_all(fx, u, p, "INBOX")
        got = fetch_all(fx, *self.dst, "INBOX")
        self.assertEqual([(g[0], g[1]) for g in got], [(w[0], w[1]) for w in want])
        self.assertEqual({g[2] for g in got}, {frozenset()})
        self.assertEqual(tree_hash(src_state), before)

    def test_accounts_of_any_shard(self):
        """--restore names its accounts: a [general] shard does not hide them."""
        fx = self.fx
        fx.append(*self.src, "INBOX", mmtest.make_message("sharded"))
        self.mirror_source()
        for k in (0, 1):
            conf = mmtest.write_config(self.tmp, [
                fx.account(self.tmp, *self.src, name="src"),
                fx.account(self.tmp, *self.dst, name="dst")],
                general={"shard": f"{k}/2"}, filename=f"shard{k}.ini")
            res = mmtest.run_mboxmirror("-c", conf, "--restore", "src", "--to", "dst",
                                        timeout=300)
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
            self.assertRegex(res.stdout, r"total: %d messages? uploaded" % (1 - k))

    def test_unknown_account(self):
        for args in (("--restore", "nosuch", "--to", "dst"),
                     ("--restore", "src", "--to", "nosuch")):
            res = mmtest.run_mboxmirror("-c", self.conf, *args)
            self.assertEqual(res.returncode, 64, res.stderr)
            self.assertIn("no account named 'nosuch'", res.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.state, "dst")))

    def test_nothing_mirrored(self):
        res = self.restore()
        self.assertIn("account src has no mirrored mailbox", res.stderr)
        self.assertIn("0 mailboxes", res.stdout)

    def test_kill9_then_rerun_exactly_once(self):
        fx, (u, p) = self.fx, self.src
        fx.create_mailbox(u, p, "Bulk")
        msgs = []
        for i in range(400):
            body = ("line %d\r\n" % i) * (200 + i)
            m = mmtest.make_message("bulk %d" % i, body)
            if i % 5 == 0:
                # Without Message-ID: found again by size and date.
                m = re.sub(rb"(?im)^Message-ID:[^\r\n]*\r\n", b"", m)
            msgs.append(m)
        fx.append_many(u, p, "Bulk", msgs, date=[1600000000 + i for i in range(400)])
        self.mirror_source()
        want = fetch_all(fx, u, p, "Bulk")

        journal_dir = os.path.join(self.state, "dst")
        kills, in_flight = 0, 0
        for attempt in range(3):
            proc = subprocess.Popen(
                [os.environ["MBOXMIRROR"], "-c", self.conf, "--restore", "src", "--to",
                 "dst"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            target = 60 * (attempt + 1)

            def uploaded():
                if proc.poll() is not None:
                    return True
                for name in (os.listdir(journal_dir) if os.path.isdir(journal_dir) else []):
                    if name.startswith("restore-"):
                        with open(os.path.join(journal_dir, name)) as f:
                            if f.read().count("\nD ") >= target:
                                return True
                return False
            mmtest.wait_for(uploaded, 120, what="APPENDs answered")
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
            in_flight += self.sending_not_done(journal_dir)
        self.assertGreater(kills, 0)
        # Some messages were "sending" when killed: the rerun decides on them by
        # looking at the target.
        self.assertGreater(in_flight, 0)
        res = self.restore()
        got = fetch_all(fx, *self.dst, "Bulk")
        self.assertEqual(len(got), len(want), res.stdout)
        self.assertEqual([g[0] for g in got], [w[0] for w in want])
        self.assertEqual([g[1] for g in got], [w[1] for w in want])
        res = self.restore()
        self.assertRegex(res.stdout, r"total: 0 messages uploaded")

    @staticmethod
    def sending_not_done(journal_dir):
        """Messages the journal marks as being sent, not as done."""
        for name in os.listdir(journal_dir):
            if name.startswith("restore-"):
                with open(os.path.join(journal_dir, name)) as f:
                    lines = f.read().split("\n")[1:-1]
                sent = {tuple(l.split()[1:4]) for l in lines if l.startswith("S ")}
                done = {tuple(l.split()[1:4]) for l in lines if l.startswith("D ")}
                return len(sent - done)
        return 0

    def test_target_locked(self):
        self.fill_source()
        self.mirror_source()
        import fcntl
        d = os.path.join(self.state, "dst")
        os.makedirs(d, 0o700, exist_ok=True)
        with open(os.path.join(d, "lock"), "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            f.write("%d\n" % os.getpid())
            f.flush()
            res = self.restore(check=False)
        self.assertEqual(res.returncode, 1)
        self.assertIn("account dst is busy", res.stderr)
        self.assertEqual(self.fx.list_mailboxes(*self.dst), ["INBOX"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
