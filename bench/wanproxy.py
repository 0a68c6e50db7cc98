#!/usr/bin/env python3
"""A TCP proxy on loopback that behaves like a WAN link, for bench/run.sh.

    wanproxy.py --listen PORT --target HOST:PORT [--rtt-ms 40] [--mbit 50]
                [--buffer-ms 50] [--ready FILE]

Each direction is one bottleneck link shared by every connection, as an access line is:
bytes leave it in arrival order at --mbit, then arrive --rtt-ms/2 later.  A link holds
at most --buffer-ms worth of bytes waiting to be sent; beyond that the proxy stops
reading from the sender, so TCP flow control pushes back to it as on a real path.  Each
connection's bytes stay in order.  The kernel here has no netem, hence a userspace proxy;
it does not model loss or TCP slow start over the long path, only delay and rate.
--ready FILE is written once the proxy listens.  SIGTERM stops it.
"""
import argparse
import asyncio
import signal
import time

CHUNK = 16384


class Link:
    """One direction of the path: a FIFO serialised at a fixed rate, then a fixed delay."""

    def __init__(self, rate_bytes, delay, buffer_s):
        self.rate = rate_bytes
        self.delay = delay
        self.buffer_s = buffer_s
        self.busy_until = 0.0

    def depart(self, n):
        """Reserve the link for n bytes; returns the time their last byte leaves it."""
        now = time.monotonic()
        self.busy_until = max(self.busy_until, now) + n / self.rate
        return self.busy_until

    def backlog(self):
        return self.busy_until - time.monotonic()


async def pump(reader, writer, link):
    """Copy reader to writer through link; EOF is forwarded after the last byte."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def deliver():
        while True:
            item = await queue.get()
            if item is None:
                break
            at, data = item
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(data)
            await writer.drain()
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except OSError:
            pass

    sender = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            leave = link.depart(len(data))
            # loop.time() and time.monotonic() share a clock on Linux, but keep the
            # arithmetic relative to be safe.
            queue.put_nowait((loop.time() + (leave - time.monotonic()) + link.delay, data))
            excess = link.backlog() - link.buffer_s
            if excess > 0:
                await asyncio.sleep(excess)
    except (ConnectionError, OSError):
        pass
    finally:
        queue.put_nowait(None)
        try:
            await sender
        except (ConnectionError, OSError):
            pass


async def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--rtt-ms", type=float, default=40)
    ap.add_argument("--mbit", type=float, default=50)
    ap.add_argument("--buffer-ms", type=float, default=50)
    ap.add_argument("--ready")
    a = ap.parse_args()
    thost, tport = a.target.rsplit(":", 1)
    rate = a.mbit * 1e6 / 8
    up = Link(rate, a.rtt_ms / 2000, a.buffer_ms / 1000)
    down = Link(rate, a.rtt_ms / 2000, a.buffer_ms / 1000)

    async def handle(creader, cwriter):
        try:
            sreader, swriter = await asyncio.open_connection(thost, int(tport))
        except OSError:
            cwriter.close()
            return
        # The TCP handshake to the far end costs one round trip too.
        await asyncio.sleep(a.rtt_ms / 1000)
        await asyncio.gather(pump(creader, swriter, up), pump(sreader, cwriter, down))
        for w in (cwriter, swriter):
            w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", a.listen, backlog=512)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    if a.ready:
        with open(a.ready, "w") as f:
            f.write(f"{a.listen}\n")
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
