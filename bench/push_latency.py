#!/usr/bin/env python3
"""push_latency.py - how long pushed mail takes to reach the mbox, and what logins it costs.

Against a running test fixture (tests/dovecot/start.sh; its env file), runs the daemon
(`mboxmirror -c CONFIG` in the foreground) with one account, `idle = yes` and a 10-minute
interval (only push brings mail in time), connected through a proxy from a loopback
address of its own.  Once push is up, appends --deliveries messages one at a time (IMAP
APPEND from 127.0.0.1, not the daemon's address) and times each until it is in the mbox.
With --penalty the account is on the fixture's PENALTY_PORT (Dovecot's authentication
penalty on) and every delivery follows a failed login of another user from the daemon's
address: a client that logs in again for each push waits out the penalty (seconds).

Prints a summary and appends one JSON line to --out:

  binary, penalty, deliveries, latency_s (each), min_s, median_s, p90_s, max_s,
  notify_median_s (append to the daemon's "new mail announced": the server's part),
  daemon_median_s, daemon_max_s (from there to the message in the mbox),
  daemon_logins (the server's login lines for the account from the daemon's address,
  during the deliveries)

  push_latency.py --env build/dovecot/env --mboxmirror build/daemon/mboxmirror \\
      [--penalty] [--deliveries 20] [--out F.jsonl]
"""
import argparse
import imaplib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))


def mbox_count(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return 0
    return data.startswith(b"From ") + data.count(b"\n\nFrom ") if data else 0


def wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"push_latency: timed out waiting for {what}")
        time.sleep(0.002)


def failed_login(fx, port, source, user, n):
    """A login with a wrong password from source: Dovecot's penalty for the address
    (a new password each time: Dovecot does not count the same one twice)."""
    class FromSource(imaplib.IMAP4_SSL):
        def _create_socket(self, timeout):
            s = socket.create_connection((self.host, self.port), timeout,
                                         source_address=(source, 0))
            return self.ssl_context.wrap_socket(s, server_hostname=self.host)

    conn = FromSource(fx.host, port, ssl_context=fx.ssl_context(), timeout=60)
    try:
        conn.login(user, f"not-the-password-{n}")
        raise SystemExit("push_latency: a wrong password was accepted")
    except imaplib.IMAP4.error:
        pass
    try:
        conn.logout()
    except (imaplib.IMAP4.error, OSError):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--env", required=True, help="the fixture's env file")
    ap.add_argument("--mboxmirror", required=True)
    ap.add_argument("--deliveries", type=int, default=20)
    ap.add_argument("--penalty", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import mmtest
    from faultproxy import FaultProxy, loopback_address

    fx = mmtest.Fixture(args.env)
    port = fx.penalty_port if args.penalty else fx.imaps_port
    source = loopback_address(40 + args.penalty)
    proxy = FaultProxy(fx.host, port, source=source).start()
    user, password = fx.new_user("bench")
    other, _ = fx.new_user("bench")
    fx.append(user, password, "INBOX", mmtest.make_message("first"))
    with tempfile.TemporaryDirectory(prefix="mmpush.") as tmp:
        acct = fx.account(tmp, user, password, name="push", idle="yes", interval="10m",
                          port=str(proxy.port))
        conf = mmtest.write_config(tmp, [acct])
        path = os.path.join(tmp, "out", "push", "INBOX.mbox")
        daemon = subprocess.Popen([args.mboxmirror, "-c", conf], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # The log as it comes, each line with the time it came: when the daemon
        # heard of new mail parts the server's notification from the daemon's work.
        lines = []
        threading.Thread(target=lambda: lines.extend(
            (time.monotonic(), line) for line in daemon.stderr), daemon=True).start()

        def announced_after(t):
            return next((when for when, line in list(lines)
                         if when >= t and b"new mail announced" in line), None)
        try:
            wait(lambda: mbox_count(path) == 1, 30, "the first sync")
            wait(lambda: any(b"waiting for new mail (IDLE)" in line
                             for _, line in list(lines)), 30, "push")
            time.sleep(1)  # the look at INBOX that follows push coming up
            srv_off = fx.log_offset()
            latencies, notified, daemon_part = [], [], []
            for i in range(args.deliveries):
                if args.penalty:
                    failed_login(fx, port, source, other, i)
                t0 = time.monotonic()
                fx.append(user, password, "INBOX", mmtest.make_message(f"pushed {i}"))
                wait(lambda: mbox_count(path) == i + 2, 60, f"delivery {i}")
                t1 = time.monotonic()
                latencies.append(t1 - t0)
                heard = announced_after(t0)
                if heard is not None and heard <= t1:
                    notified.append(heard - t0)
                    daemon_part.append(t1 - heard)
            server_log = fx.log_since(srv_off)
        finally:
            daemon.terminate()
            daemon.wait(10)
            proxy.close()
    logins = len(re.findall(rf"Login: user=<{re.escape(user)}>.* rip={re.escape(source)},",
                            server_log))
    ordered = sorted(latencies)
    row = {
        "binary": args.mboxmirror,
        "penalty": args.penalty,
        "deliveries": args.deliveries,
        "latency_s": [round(x, 4) for x in latencies],
        "min_s": round(ordered[0], 4),
        "median_s": round(statistics.median(latencies), 4),
        "p90_s": round(ordered[int(0.9 * (len(ordered) - 1))], 4),
        "max_s": round(ordered[-1], 4),
        "notify_median_s": round(statistics.median(notified), 4) if notified else None,
        "daemon_median_s": round(statistics.median(daemon_part), 4) if daemon_part else None,
        "daemon_max_s": round(max(daemon_part), 4) if daemon_part else None,
        "daemon_logins": logins,
    }
    print(f"{args.mboxmirror}{' (penalty)' if args.penalty else ''}: {args.deliveries} "
          f"pushes, min {row['min_s']:.3f}s, median {row['median_s']:.3f}s, p90 {row['p90_s']:.3f}s, max "
          f"{row['max_s']:.3f}s (of that the server's notice: median "
          f"{row['notify_median_s']}s; the daemon's part: median {row['daemon_median_s']}s, "
          f"max {row['daemon_max_s']}s), {logins} daemon logins")
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
