"""A minimal blocking IMAP client over TLS for the benchmark's raw client and verifier.

Only what those two need: implicit TLS with the certificate checked against a given CA,
pipelined commands, responses read line by line with literals streamed to a callback.
It is deliberately not imaplib: imaplib reads every literal into memory and sends one
command per round trip, which would make the "raw limit" row measure imaplib.
"""
import base64
import re
import socket
import ssl

LITERAL_AT_END = re.compile(rb"\{(\d+)\}\r\n$")
CODE = re.compile(rb"\[(UIDVALIDITY|UIDNEXT) (\d+)\]")
UID_ITEM = re.compile(rb"\bUID (\d+)")
STATUS_ITEM = re.compile(rb"\b(MESSAGES|UIDNEXT|UIDVALIDITY) (\d+)")
RECV_SIZE = 1 << 18


class IMAPError(Exception):
    pass


def mutf7_decode(s):
    """IMAP modified UTF-7 -> str."""
    out, i = [], 0
    while i < len(s):
        if s[i] != "&":
            out.append(s[i])
            i += 1
            continue
        j = s.index("-", i)
        if j == i + 1:
            out.append("&")
        else:
            b = s[i + 1:j].replace(",", "/")
            out.append(base64.b64decode(b + "=" * (-len(b) % 4)).decode("utf-16-be"))
        i = j + 1
    return "".join(out)


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Connection:
    def __init__(self, host, port, cafile, server_name=None, timeout=300):
        ctx = ssl.create_default_context(cafile=cafile)
        raw = socket.create_connection((host, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = ctx.wrap_socket(raw, server_hostname=server_name or host)
        self.buf = bytearray()
        # One reusable receive buffer: recv(n) would allocate n bytes per call (and
        # above glibc's mmap threshold, map and zero them) to return one TLS record.
        self.rbuf = bytearray(RECV_SIZE)
        self.rview = memoryview(self.rbuf)
        self.tag = 0
        greeting = self.line()
        if not greeting.startswith(b"* OK"):
            raise IMAPError(f"greeting: {greeting!r}")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # ---- reading ----
    def _fill(self):
        n = self.sock.recv_into(self.rview)
        if not n:
            raise IMAPError("connection closed by the server")
        self.buf += self.rview[:n]

    def line(self):
        """One response line, CRLF included (not the literal that may follow)."""
        start = 0
        while True:
            i = self.buf.find(b"\r\n", start)
            if i >= 0:
                out = bytes(self.buf[:i + 2])
                del self.buf[:i + 2]
                return out
            start = max(0, len(self.buf) - 1)
            self._fill()

    def literal(self, n, sink):
        """Pass exactly n bytes to sink(bytes-like), in the chunks they arrive in; a
        chunk may be a view of a reused buffer, so sink must copy what it keeps."""
        if self.buf:
            k = min(n, len(self.buf))
            sink(self.buf[:k])
            del self.buf[:k]
            n -= k
        while n:
            got = self.sock.recv_into(self.rview[:min(n, RECV_SIZE)])
            if not got:
                raise IMAPError("connection closed inside a literal")
            sink(self.rview[:got])  # valid until the next receive only
            n -= got

    def response(self, on_literal=None):
        """A whole response: the list of its lines, literals passed to on_literal(head,
        n) which returns a sink, or collected into the line list when None."""
        parts = []
        while True:
            ln = self.line()
            parts.append(ln)
            m = LITERAL_AT_END.search(ln)
            if not m:
                return parts
            n = int(m.group(1))
            if on_literal is None:
                chunks = []
                self.literal(n, lambda c: chunks.append(bytes(c)))
                parts.append(b"".join(chunks))
            else:
                self.literal(n, on_literal(parts, n))

    # ---- writing ----
    def next_tag(self):
        self.tag += 1
        return f"t{self.tag}"

    def send(self, commands):
        """Send several (tag, command) lines in one write: a pipeline."""
        self.sock.sendall("".join(f"{t} {c}\r\n" for t, c in commands).encode())

    def wait(self, tag, on_untagged=None, on_literal=None):
        """Read until the tagged response for tag; untagged ones go to on_untagged.
        Returns the tagged line; a NO or BAD raises."""
        tb = tag.encode() + b" "
        while True:
            parts = self.response(on_literal)
            first = parts[0]
            if first.startswith(tb):
                if not first[len(tb):].startswith(b"OK"):
                    raise IMAPError(first.decode("utf-8", "replace").strip())
                return first
            if first.startswith(b"* BYE"):
                raise IMAPError(first.decode("utf-8", "replace").strip())
            if on_untagged is not None and not first.startswith(tb):
                on_untagged(parts)

    def login(self, user, password):
        t = self.next_tag()
        self.send([(t, f"LOGIN {quote(user)} {quote(password)}")])
        self.wait(t)

    def logout(self):
        t = self.next_tag()
        try:
            self.send([(t, "LOGOUT")])
            while True:
                parts = self.response()
                if parts[0].startswith(t.encode()):
                    break
        except (OSError, IMAPError):
            pass
        self.close()

    def list_mailboxes(self):
        """Selectable mailboxes as wire (modified UTF-7) names, in server order."""
        t = self.next_tag()
        self.send([(t, 'LIST "" "*"')])
        names = []

        def untagged(parts):
            if not parts[0].startswith(b"* LIST "):
                return
            head = parts[0]
            flags = head[head.index(b"(") + 1:head.index(b")")].lower()
            if b"\\noselect" in flags or b"\\nonexistent" in flags:
                return
            if len(parts) > 1:  # name sent as a literal
                names.append(parts[1].decode())
                return
            rest = head[head.index(b")") + 2:-2]
            # delimiter: NIL or a quoted char, then the name
            if rest.startswith(b"NIL "):
                rest = rest[4:]
            else:
                rest = rest[rest.index(b'"', 1) + 2:]
            if rest.startswith(b'"'):
                rest = re.sub(rb'\\(.)', rb"\1", rest[1:-1])
            names.append(rest.decode())
        self.wait(t, untagged)
        return names


def parse_status(parts):
    """'* STATUS name (MESSAGES 3 UIDNEXT 9 ...)' -> {'MESSAGES': 3, ...}."""
    tail = parts[-1] if len(parts) == 1 else parts[-1]
    return {k.decode(): int(v) for k, v in STATUS_ITEM.findall(tail)}
