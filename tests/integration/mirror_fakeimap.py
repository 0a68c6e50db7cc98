"""A scripted IMAP server on loopback (plaintext) that offers whatever mailbox names a
test gives it, byte for byte: what a hostile or broken server could send and Dovecot
never would.  Enough of IMAP4rev1 for mboxmirror's --once: CAPABILITY, AUTHENTICATE
PLAIN, LOGIN, LIST, STATUS, EXAMINE, UID FETCH, LOGOUT.

    srv = FakeImap([(b"/", b"../x", [message bytes...]), ...])
    srv.start(); ... srv.port ...; srv.stop()

Each mailbox is (delimiter or None, raw name bytes as sent in LIST, [messages]); names
go out as literals, so any byte is possible."""

import re
import socket
import threading

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
            if not m.group(2):
                self.send(b"+ go on\r\n")
            raw += b"\x00LIT" + self._bytes(int(m.group(1))).hex().encode() + b"\x00"
        return self._tokens(raw)

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
        self.send(b"* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN] fake server ready\r\n")
        while True:
            toks = self.read_command()
            if len(toks) < 2:
                continue
            tag, verb, args = toks[0], toks[1].upper(), toks[2:]
            self.server.log.append((verb, args))
            if verb == b"UID" and args:
                verb, args = b"UID " + args[0].upper(), args[1:]
            if verb == b"CAPABILITY":
                self.send(b"* CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN\r\n" + tag +
                          b" OK done\r\n")
            elif verb in (b"AUTHENTICATE", b"LOGIN"):
                self.send(tag + b" OK [CAPABILITY IMAP4rev1 LITERAL+] logged in\r\n")
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
                          (UIDVALIDITY, n + 1, n) + tag + b" OK status\r\n")
            elif verb in (b"EXAMINE", b"SELECT"):
                mb = self.mailbox(args[0])
                if mb is None:
                    self.send(tag + b" NO no such mailbox\r\n")
                    continue
                self.selected = mb
                n = len(mb[2])
                self.send(b"* %d EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY %d] v\r\n"
                          b"* OK [UIDNEXT %d] n\r\n* FLAGS (\\Seen)\r\n" %
                          (n, UIDVALIDITY, n + 1) + tag + b" OK [READ-ONLY] examined\r\n")
            elif verb == b"UID FETCH" and self.selected is not None:
                self.uid_fetch(tag, args)
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
                uids.update(range(lo, hi + 1))
            else:
                uids.add(int(part))
        if b":*" in args[0] and msgs:
            uids.add(len(msgs))
        want_body = b"BODY.PEEK[]" in args[1].upper()
        out = b""
        for uid in sorted(u for u in uids if 1 <= u <= len(msgs)):
            m = msgs[uid - 1]
            if want_body:
                out += (b"* %d FETCH (UID %d INTERNALDATE " % (uid, uid) + DATE +
                        b" RFC822.SIZE %d BODY[] " % len(m) + _lit(m) + b")\r\n")
            else:
                out += b"* %d FETCH (UID %d RFC822.SIZE %d)\r\n" % (uid, uid, len(m))
        self.send(out + tag + b" OK fetched\r\n")


class FakeImap:
    def __init__(self, mailboxes):
        self.mailboxes = mailboxes
        self.log = []
        self.errors = []
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _accept(self):
        while True:
            try:
                sock, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(sock,), daemon=True).start()

    def _handle(self, sock):
        try:
            _Conn(self, sock).serve()
        except (EOFError, ConnectionError):
            pass
        except Exception as e:  # reported to the test
            self.errors.append(repr(e))
        finally:
            sock.close()

    def stop(self):
        self.lsock.close()
