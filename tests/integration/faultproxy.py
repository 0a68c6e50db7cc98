"""A TCP proxy on loopback that injects faults into chosen connections.

The proxy sits between mboxmirror and the server and forwards bytes both ways without
looking inside them, so TLS stays end to end.  Faults apply to the server->client stream
of the first connections, one plan per connection in order; connections past the list
pass everything:

    proxy = FaultProxy("127.0.0.1", fx.imaps_port,
                       [Cut(at_byte=120),              # inside the TLS handshake
                        Cut(after_records=9),          # between two TLS records
                        Stall(at_byte=300_000)])       # stops forwarding, stays open
    proxy.start()
    ... point the account at ("127.0.0.1", proxy.port) ...
    proxy.close()

A Delay holds the server's first bytes back for a while, then passes everything.
proxy.conns[i].stall() silences a connection at any moment.
A Cut closes both sides once that much of the server's stream has been forwarded; a
Stall stops forwarding there (both directions) and keeps the sockets open until the
client gives up or the proxy closes.  Offsets count bytes forwarded to the client, or,
with after_records, whole TLS records (5-byte header plus its length), so that a cut can
fall exactly between two of the server's responses.
"""

import os
import socket
import threading
import time

__all__ = ["FaultProxy", "Cut", "Stall", "Delay", "Pass", "closed_port",
           "loopback_address"]


class Pass:
    """Forward everything (the default past the plan)."""

    def limit(self, stream):
        return None

    def __repr__(self):
        return "Pass()"


class Delay:
    """Hold the server's first bytes back for seconds, then forward everything (a slow
    server, or a slow network at connection time)."""

    def __init__(self, seconds):
        self.seconds = seconds

    def limit(self, stream):
        return None

    def __repr__(self):
        return f"Delay({self.seconds})"


class _Fault:
    def __init__(self, at_byte=None, after_records=None):
        if (at_byte is None) == (after_records is None):
            raise ValueError("give exactly one of at_byte, after_records")
        self.at_byte = at_byte
        self.after_records = after_records

    def limit(self, stream):
        """Bytes of the server's stream to forward before the fault, given what has
        arrived so far (bytes); None while not known yet."""
        if self.at_byte is not None:
            return self.at_byte
        return _record_boundary(stream, self.after_records)

    def __repr__(self):
        where = (f"at_byte={self.at_byte}" if self.at_byte is not None
                 else f"after_records={self.after_records}")
        return f"{type(self).__name__}({where})"


class Cut(_Fault):
    """Close the connection (both sides) at that point of the server's stream."""


class Stall(_Fault):
    """Stop forwarding at that point of the server's stream, without closing."""


def _record_boundary(stream, records):
    """Offset just after the records-th TLS record in stream, or None if stream does
    not hold that many whole records yet."""
    off = 0
    for _ in range(records):
        if len(stream) < off + 5:
            return None
        off += 5 + int.from_bytes(stream[off + 3:off + 5], "big")
        if len(stream) < off:
            return None
    return off


class _Conn:
    def __init__(self, proxy, index, client, plan):
        self.proxy = proxy
        self.index = index
        self.client = client
        self.plan = plan
        self.server = None
        self.down = 0           # server -> client bytes forwarded
        self.up = 0             # client -> server bytes forwarded
        self.fault = None       # "cut" or "stall" once it happened
        self.records = []       # (type, length) of each whole TLS record forwarded down
        self._rec_buf = b""
        self.closed = threading.Event()
        self.stalled = threading.Event()
        self._lock = threading.Lock()

    def run(self):
        try:
            source = (self.proxy.source, 0) if self.proxy.source else None
            self.server = socket.create_connection(self.proxy.target, timeout=10,
                                                   source_address=source)
            self.server.settimeout(None)
        except OSError:
            self.close()
            return
        threading.Thread(target=self._pump_up, daemon=True).start()
        self._pump_down()

    def _pump_up(self):
        try:
            while not self.closed.is_set():
                data = self.client.recv(65536)
                if not data:
                    break
                if self.stalled.is_set():
                    continue    # swallowed: the stall is total
                self.server.sendall(data)
                self.up += len(data)
        except OSError:
            pass
        self.close()

    def _pump_down(self):
        seen = bytearray()      # the server's stream so far, while the plan needs it
        need_stream = getattr(self.plan, "after_records", None) is not None
        delayed = isinstance(self.plan, Delay)
        try:
            while not self.closed.is_set():
                data = self.server.recv(65536)
                if not data:
                    break
                if delayed:
                    delayed = False
                    if self.closed.wait(self.plan.seconds):
                        break
                if self.stalled.is_set():
                    continue    # swallowed: the stall is total
                if need_stream:
                    seen += data
                limit = self.plan.limit(seen)
                if limit is not None and self.down + len(data) >= limit:
                    head = data[:max(0, limit - self.down)]
                    if head:
                        self.client.sendall(head)
                        self.down += len(head)
                        self._note_records(head)
                    self._fault()
                    return
                self.client.sendall(data)
                self.down += len(data)
                self._note_records(data)
        except OSError:
            pass
        self.close()

    def stall(self):
        """From now on forwards nothing either way and keeps both sockets open: a
        connection that went silent (a NAT or firewall that forgot it), until the
        client gives up or the proxy closes."""
        self.fault = "stall"
        self.stalled.set()
        self.proxy._event(self)

    def _note_records(self, data):
        # Keeps at most one partial record (records are at most 2^14 + 2048 bytes).
        buf = self._rec_buf + data
        off = 0
        while len(buf) - off >= 5:
            length = int.from_bytes(buf[off + 3:off + 5], "big")
            if len(buf) - off < 5 + length:
                break
            self.records.append((buf[off], length))
            off += 5 + length
        self._rec_buf = buf[off:]

    def _fault(self):
        if isinstance(self.plan, Stall):
            self.fault = "stall"
            self.stalled.set()
            self.proxy._event(self)
            # _pump_up swallows what the client sends and closes when it gives up;
            # the proxy's close() ends the stall too.
            self.closed.wait()
        else:
            self.fault = "cut"
            self.proxy._event(self)
            self.close()

    def close(self):
        with self._lock:
            if self.closed.is_set():
                return
            self.closed.set()
        for s in (self.client, self.server):
            if s is None:
                continue
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.proxy._event(self)


class FaultProxy:
    """Listens on 127.0.0.1:port (port chosen by the system) and forwards to target.
    plan: a list of Cut/Stall/Delay/Pass, one per connection in the order they
    arrive.  source: the local address of the connections to the server (any
    127.x.y.z works on Linux), so that the server tells this proxy's clients apart
    from others on loopback."""

    def __init__(self, host, port, plan=(), source=None):
        self.target = (host, port)
        self.source = source
        self.plan = list(plan)
        self.conns = []
        self._cond = threading.Condition()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._stop = False
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def _accept(self):
        while not self._stop:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            if self._stop:
                client.close()
                return
            with self._cond:
                index = len(self.conns)
                plan = self.plan[index] if index < len(self.plan) else Pass()
                conn = _Conn(self, index, client, plan)
                self.conns.append(conn)
                self._cond.notify_all()
            threading.Thread(target=conn.run, daemon=True).start()

    def _event(self, conn):
        with self._cond:
            self._cond.notify_all()

    def wait(self, predicate, timeout):
        """Waits until predicate(self) is true; returns whether it became true."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
            return True

    def faults(self):
        """[(connection index, "cut"|"stall", bytes forwarded down)] so far."""
        return [(c.index, c.fault, c.down) for c in self.conns if c.fault]

    def close(self):
        self._stop = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)    # wakes the accept()
        except OSError:
            pass
        try:
            self._sock.close()
        except OSError:
            pass
        for c in list(self.conns):
            c.close()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False


def loopback_address(index):
    """A loopback address of this process's own (index 0..255), never 127.0.0.x:
    servers keep per-address state (Dovecot delays logins from an address after a
    failed one), and tests running at the same time must not share it."""
    pid = os.getpid()
    return f"127.{100 + index % 100}.{(pid >> 8) & 255}.{pid & 255 or 1}"


def closed_port():
    """A loopback port that nothing listens on: bound, then released."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
