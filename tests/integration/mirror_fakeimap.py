"""A scripted IMAP server on loopback (plaintext) that offers whatever mailbox names a
test gives it, byte for byte: what a hostile or broken server could send and Dovecot
never would.  Enough of IMAP4rev1 for mboxmirror's --once: CAPABILITY, AUTHENTICATE
PLAIN, LOGIN, LIST, STATUS, EXAMINE, UID FETCH, LOGOUT.

    srv = FakeImap([(b"/", b"../x", [message bytes...]), ...])
    srv.start(); ... srv.port ...; srv.stop()

Each mailbox is (delimiter or None, raw name bytes as sent in LIST, [messages]); names
go out as literals, so any byte is possible.  Message i of a list has UID i + 1.

Behaviour switches, for servers that are broken or hostile rather than merely odd
(all may be changed between runs, e.g. set back to {} for a well-behaved follow-up):

    srv.hooks[KEY] = fn(conn, ctx) -> None (behave normally) or a list of actions
        KEY: "greeting", "CAPABILITY", "LOGIN", "AUTHENTICATE", "LIST", "STATUS",
        "EXAMINE", "UID FETCH", "FETCH" (otherwise answered BAD);
        ctx: {"tag", "args", "mailbox" (the tuple or None), "default" (the bytes
        the normal answer would send), "uids" (UID FETCH: the UIDs that exist and
        were asked, ascending), "body" (UID FETCH: whether bodies were asked)}
    actions: bytes (sent), ("sleep", s), ("close",) (drop the connection),
        ("hang",) (answer nothing more until stop()), ("read",) (take one line from
        the client, e.g. a SASL response, into srv.reads), ("trickle", bytes, s) (one
        byte every s seconds), ("flood", bytes, s) (bytes sent again and again for s
        seconds)
    srv.dates[(name, uid)] = b'"03-Sep-2023 14:05:09 +0000"'   (INTERNALDATE)
    srv.uidnext[name] = n         (UIDNEXT in STATUS and EXAMINE, default count + 1)
    srv.caps = b"IMAP4rev1 ..."   (CAPABILITY)
    srv.login_caps = b"..."       (the CAPABILITY code of the LOGIN/AUTHENTICATE OK)
    srv.literal_hold = s          (before each "+" to a synchronising literal, wait up
        to s seconds for literal bytes the client should not send yet)
    srv.literals: one (line before the literal, size, synchronising, bytes of it that
        came before the "+") for every literal the client sent, in order
    conn.fetch_response(uid, items) builds "* n FETCH (...)" with the items in the
        given order (any case; UID, INTERNALDATE, RFC822.SIZE, BODY[], FLAGS,
        MODSEQ; a (name, raw bytes) pair sends raw bytes as the value)."""

import re
import select
import socket
import threading
import time

UIDVALIDITY = 4711
DATE = b'"03-Sep-2023 14:05:09 +0000"'


def _lit(b):
    return b"{%d}\r\n" % len(b) + b


class _Conn:
    def __init__(self, server, sock):
        self.server = server
        self.sock = sock
        self.buf = b""
        self.selected = None

    def send(self, data):
        self.sock.sendall(data)

    def run(self, actions):
        """Performs a hook's actions; False when the connection is to end."""
        for act in actions:
            if isinstance(act, (bytes, bytearray)):
                self.send(act)
            elif act[0] == "sleep":
                self.server.stopped.wait(act[1])
            elif act[0] == "close":
                return False
            elif act[0] == "read":
                self.server.reads.append(self._line())
            elif act[0] == "hang":
                self.server.stopped.wait(300)
                return False
            elif act[0] == "trickle":
                for i in range(len(act[1])):
                    if self.server.stopped.wait(act[2]):
                        return False
                    self.send(act[1][i:i + 1])
            elif act[0] == "flood":
                # The same bytes again and again, as fast as the client reads them,
                # for act[2] seconds (or until the client goes away).
                deadline = time.monotonic() + act[2]
                block = act[1] * max(1, 65536 // len(act[1]))
                try:
                    while time.monotonic() < deadline and not self.server.stopped.is_set():
                        self.send(block)
                except OSError:
                    return False
            else:
                raise ValueError(f"unknown action {act!r}")
        return True

    def hook(self, key, ctx):
        """None when no hook for key decided; else what run() returned."""
        fn = self.server.hooks.get(key)
        if fn is None:
            return None
        actions = fn(self, ctx)
        if actions is None:
            return None
        return self.run(actions)

    def fetch_response(self, uid, items=("UID", "INTERNALDATE", "RFC822.SIZE", "BODY[]"),
                       msgno=None):
        mb = self.selected
        m = mb[2][uid - 1]
        out = []
        for it in items:
            if isinstance(it, tuple):
                out.append(it[0].encode() + b" " + it[1])
                continue
            key = it.upper()
            name = it.encode()
            if key == "UID":
                out.append(name + b" %d" % uid)
            elif key == "INTERNALDATE":
                out.append(name + b" " + self.server.date(mb[1], uid))
            elif key == "RFC822.SIZE":
                out.append(name + b" %d" % len(m))
            elif key in ("BODY[]", "RFC822"):
                out.append(name + b" " + _lit(m))
            elif key == "FLAGS":
                out.append(name + b" (\\Seen $Forwarded)")
            elif key == "MODSEQ":
                out.append(name + b" (%d)" % (1000 + uid))
            else:
                raise ValueError(it)
        return b"* %d FETCH (" % (msgno or uid) + b" ".join(out) + b")\r\n"
    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _bytes(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_command(self):
        """[tokens]: bytes for atoms, quoted strings and literals (decoded), lists as
        raw bytes atoms (enough for the commands handled here)."""
        raw = b""
        while True:
            line = self._line()
            m = re.search(rb"\{(\d+)(\+?)\}$", line)
            if not m:
                raw += line
                break
            raw += line[:m.start()]
            early = b""
            if not m.group(2):
                early = self._early_bytes()
                self.send(b"+ go on\r\n")
            self.server.literals.append((line[:m.start()], int(m.group(1)),
                                         not m.group(2), early))
            raw += b"\x00LIT" + self._bytes(int(m.group(1))).hex().encode() + b"\x00"
        return self._tokens(raw)

    def _early_bytes(self):
        """What the client sent past a synchronising literal's line before our "+"
        (nothing, from a client that waits), watched for literal_hold seconds."""
        if self.server.literal_hold and not self.buf:
            readable, _, _ = select.select([self.sock], [], [], self.server.literal_hold)
            if readable:
                self._fill()
        return self.buf

    @staticmethod
    def _tokens(raw):
        toks, i = [], 0
        while i < len(raw):
            c = raw[i:i + 1]
            if c == b" ":
                i += 1
            elif c == b"\x00":
                j = raw.index(b"\x00", i + 1)
                toks.append(bytes.fromhex(raw[i + 4:j].decode()))
                i = j + 1
            elif c == b'"':
                j, out = i + 1, b""
                while raw[j:j + 1] != b'"':
                    if raw[j:j + 1] == b"\\":
                        j += 1
                    out += raw[j:j + 1]
                    j += 1
                toks.append(out)
                i = j + 1
            elif c == b"(":
                j = raw.index(b")", i)
                toks.append(raw[i:j + 1])
                i = j + 1
            else:
                j = i
                while j < len(raw) and raw[j:j + 1] not in (b" ", b"\x00"):
                    j += 1
                toks.append(raw[i:j])
                i = j
        return toks

    def mailbox(self, name):
        for mb in self.server.mailboxes:
            if mb[1] == name:
                return mb
        return None

    def serve(self):
        greeting = b"* OK [CAPABILITY " + self.server.caps + b"] fake server ready\r\n"
        r = self.hook("greeting", {"default": greeting})
        if r is False:
            return
        if r is None:
            self.send(greeting)
        while True:
            toks = self.read_command()
            if len(toks) < 2:
                continue
            tag, verb, args = toks[0], toks[1].upper(), toks[2:]
            self.server.log.append((verb, args))
            if verb == b"UID" and args:
                verb, args = b"UID " + args[0].upper(), args[1:]
            key = verb.decode(errors="replace")
            if verb in (b"CAPABILITY", b"LOGIN", b"AUTHENTICATE", b"LIST", b"STATUS",
                        b"EXAMINE", b"FETCH") and key in self.server.hooks:
                mb = self.mailbox(args[0]) if verb in (b"STATUS", b"EXAMINE") and args \
                    else None
                r = self.hook(key, {"tag": tag, "args": args, "mailbox": mb,
                                    "default": None})
                if r is False:
                    return
                if r is True:
                    continue
            if verb == b"CAPABILITY":
                self.send(b"* CAPABILITY " + self.server.caps + b"\r\n" + tag +
                          b" OK done\r\n")
            elif verb in (b"AUTHENTICATE", b"LOGIN"):
                self.send(tag + b" OK [CAPABILITY " + self.server.login_caps +
                          b"] logged in\r\n")
            elif verb == b"LIST":
                out = b""
                for delim, name, _ in self.server.mailboxes:
                    d = b"NIL" if delim is None else b'"' + delim.replace(b"\\", b"\\\\") + b'"'
                    out += b"* LIST (\\HasNoChildren) " + d + b" " + _lit(name) + b"\r\n"
                self.send(out + tag + b" OK listed\r\n")
            elif verb == b"STATUS":
                mb = self.mailbox(args[0])
                if mb is None:
                    self.send(tag + b" NO no such mailbox\r\n")
                    continue
                n = len(mb[2])
                self.send(b"* STATUS " + _lit(mb[1]) +
                          b" (UIDVALIDITY %d UIDNEXT %d MESSAGES %d)\r\n" %
                          (UIDVALIDITY, self.server.next_uid(mb), n) + tag +
                          b" OK status\r\n")
            elif verb in (b"EXAMINE", b"SELECT"):
                mb = self.mailbox(args[0])
                if mb is None:
                    self.send(tag + b" NO no such mailbox\r\n")
                    continue
                self.selected = mb
                n = len(mb[2])
                self.send(b"* %d EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY %d] v\r\n"
                          b"* OK [UIDNEXT %d] n\r\n* FLAGS (\\Seen)\r\n" %
                          (n, UIDVALIDITY, self.server.next_uid(mb)) + tag +
                          b" OK [READ-ONLY] examined\r\n")
            elif verb == b"UID FETCH" and self.selected is not None:
                if self.uid_fetch(tag, args) is False:
                    return
            elif verb == b"LOGOUT":
                self.send(b"* BYE bye\r\n" + tag + b" OK bye\r\n")
                return
            elif verb == b"NOOP":
                self.send(tag + b" OK noop\r\n")
            else:
                self.send(tag + b" BAD not here\r\n")

    def uid_fetch(self, tag, args):
        msgs = self.selected[2]
        uids = set()
        for part in args[0].split(b","):
            if b":" in part:
                lo, hi = part.split(b":")
                lo = int(lo)
                hi = len(msgs) if hi == b"*" else int(hi)
                if lo > hi:
                    lo, hi = hi, lo
                # (Only the UIDs that exist: a range may reach 4294967295.)
                uids.update(range(max(lo, 1), min(hi, len(msgs)) + 1))
            else:
                uids.add(int(part))
        if b":*" in args[0] and msgs:
            uids.add(len(msgs))
        want_body = b"BODY.PEEK[]" in args[1].upper()
        asked = sorted(u for u in uids if 1 <= u <= len(msgs))
        out = b""
        for uid in asked:
            if want_body:
                out += self.fetch_response(uid)
            else:
                out += self.fetch_response(uid, ("UID", "RFC822.SIZE"))
        out += tag + b" OK fetched\r\n"
        r = self.hook("UID FETCH", {"tag": tag, "args": args, "mailbox": self.selected,
                                    "default": out, "uids": asked, "body": want_body})
        if r is None:
            self.send(out)
            return True
        return r


class FakeImap:
    def __init__(self, mailboxes, hooks=None):
        self.mailboxes = mailboxes
        self.hooks = dict(hooks or {})
        self.dates = {}
        self.uidnext = {}
        self.caps = b"IMAP4rev1 LITERAL+ AUTH=PLAIN"
        self.login_caps = b"IMAP4rev1 LITERAL+"
        self.literal_hold = 0
        self.literals = []
        self.stopped = threading.Event()
        self.log = []
        self.errors = []
        self.reads = []         # client lines taken by ("read",) actions, in order
        self._lock = threading.Lock()
        self._socks = []        # accepted connections, ended by stop()
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def date(self, name, uid):
        return self.dates.get((name, uid), DATE)

    def next_uid(self, mb):
        return self.uidnext.get(mb[1], len(mb[2]) + 1)

    def _accept(self):
        while not self.stopped.is_set():
            try:
                sock, _ = self.lsock.accept()
            except OSError:
                return
            with self._lock:
                if self.stopped.is_set():
                    sock.close()
                    return
                self._socks.append(sock)
            threading.Thread(target=self._handle, args=(sock,), daemon=True).start()

    def _handle(self, sock):
        try:
            _Conn(self, sock).serve()
        except (EOFError, ConnectionError, OSError):
            pass
        except Exception as e:  # reported to the test
            self.errors.append(repr(e))
        finally:
            with self._lock:
                if sock in self._socks:
                    self._socks.remove(sock)
                sock.close()

    def stop(self):
        """Stops listening and ends every connection: close() alone neither wakes a
        blocked accept() nor ends a served connection, and a later test's client
        could still be answered by this server's script."""
        self.stopped.set()
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        # The accept thread may hold the descriptor's number: close it only once that
        # thread is gone, or a new server's socket could reuse the number under it.
        if self.thread.is_alive():
            self.thread.join(timeout=2)
        self.lsock.close()
        with self._lock:
            for sock in self._socks:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
