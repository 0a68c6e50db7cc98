#!/usr/bin/env python3
"""daemon_scale.py - the daemon's footprint with many accounts, for bench/run.sh.

Starts `mboxmirror -c CONFIG` (the daemon, in the foreground) and records how long it
took to load the configuration and start (its "running" log line) and its resident
memory then; waits until every account has synced once (`--status --json`: the *first
round*) and, with --push N, until N accounts hold a push connection (the log's
"waiting for new mail (IDLE)" lines); then watches it idle for --idle seconds: its
resident memory (VmRSS, and the peak VmHWM), its descriptors and the CPU it used
meanwhile, from /proc.  With --push-sample K it then delivers one message to each of K
accounts picked at random (`DELIVER... -u USER -m INBOX`, one after the other) and
times each until the account's INBOX.mbox holds it (push latency: from just before the
delivery command starts to the message in the file).  With --check-config it also
times `mboxmirror -c CONFIG --check-config` (the median of three).  Stops the daemon
with SIGTERM and appends one JSON line to --out:

  label, accounts, push_accounts, ready_s, rss_ready_kb, first_round_s, rss_kb,
  hwm_kb, fds, idle_s, idle_cpu_s, idle_cpu_pct, push_latency_s (list),
  push_latency_max_s, push_latency_median_s, check_config_s, stop_s, rc

  daemon_scale.py --mboxmirror BIN --config INI --accounts N --idle 60 --out F.jsonl
      [--push N --push-sample 20 --deliver doveadm -c CONF save] [--check-config]
"""
import argparse
import configparser
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def kib(pid, key):
    return int(proc_status(pid)[key].split()[0])


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # Fields after the command name (which may hold spaces) start at ")".
    rest = stat[stat.rindex(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK  # utime + stime


def synced_accounts(binary, config):
    out = subprocess.run([binary, "-c", config, "--status", "--json"],
                         capture_output=True, text=True).stdout
    try:
        accounts = json.loads(out)
    except ValueError:
        return 0
    return sum(1 for a in accounts if a.get("last_success"))


def log_count(path, rx):
    with open(path, "rb") as f:
        return len(rx.findall(f.read()))


def read_accounts(config):
    """{section: (user, output)} of every account in the INI file."""
    cp = configparser.ConfigParser(interpolation=None, comment_prefixes=(";", "#"))
    cp.read(config)
    return {s: (cp[s]["user"], cp[s]["output"]) for s in cp.sections() if s != "general"}


def inbox_holds(output, marker):
    try:
        with open(os.path.join(output, "INBOX.mbox"), "rb") as f:
            return marker in f.read()
    except FileNotFoundError:
        return False


def push_latency(accounts, sample, deliver, timeout):
    """Seconds from delivery to the message in the mbox, for sample accounts."""
    out = []
    for name in random.sample(sorted(accounts), sample):
        user, output = accounts[name]
        marker = f"push-{name}-{time.time_ns()}".encode()
        msg = (b"From: bench@example.org\r\nTo: " + user.encode() + b"@example.org\r\n"
               b"Subject: " + marker + b"\r\n\r\npushed\r\n")
        t0 = time.monotonic()
        subprocess.run(deliver + ["-u", user, "-m", "INBOX"], input=msg, check=True,
                       capture_output=True)
        while not inbox_holds(output, marker):
            if time.monotonic() - t0 > timeout:
                sys.exit(f"daemon_scale: account {name}: pushed mail not mirrored "
                         f"within {timeout:.0f} s")
            time.sleep(0.01)
        out.append(round(time.monotonic() - t0, 3))
        # Apart, so each delivery is timed alone.
        time.sleep(0.5)
    return out


def time_check_config(binary, config):
    walls = []
    for _ in range(3):
        t0 = time.monotonic()
        res = subprocess.run([binary, "-c", config, "--check-config"],
                             capture_output=True)
        walls.append(time.monotonic() - t0)
        if res.returncode != 0:
            sys.exit(f"daemon_scale: --check-config exited {res.returncode}: "
                     f"{res.stderr.decode(errors='replace')[-2000:]}")
    return round(statistics.median(walls), 3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mboxmirror", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--accounts", type=int, required=True)
    ap.add_argument("--label", default="")
    ap.add_argument("--idle", type=float, default=60.0)
    ap.add_argument("--push", type=int, default=0,
                    help="wait for this many push connections before idling")
    ap.add_argument("--push-sample", type=int, default=0)
    ap.add_argument("--deliver", nargs=argparse.REMAINDER, default=None,
                    help="the rest of the line: the delivery command, e.g. doveadm -c "
                    "CONF save (-u USER -m INBOX is added)")
    ap.add_argument("--check-config", action="store_true")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--log", default=os.devnull)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    result = {"label": a.label, "accounts": a.accounts, "push_accounts": a.push}
    if a.check_config:
        result["check_config_s"] = time_check_config(a.mboxmirror, a.config)
    log = open(a.log, "ab")
    log_start = log.tell()
    t0 = time.monotonic()
    # The config's log_level must be info: the "running" and "waiting for new mail"
    # lines are.
    daemon = subprocess.Popen([a.mboxmirror, "-c", a.config],
                              stdout=log, stderr=log)
    running = re.compile(rb"mboxmirror \S+ running: ")
    watching = re.compile(rb"waiting for new mail \(IDLE\)|push restored")

    def new_log():
        with open(a.log, "rb") as f:
            f.seek(log_start)
            return f.read()

    def wait(what, done):
        while not done():
            if daemon.poll() is not None:
                sys.exit(f"daemon_scale: the daemon exited ({daemon.returncode}) "
                         f"while waiting for {what}")
            if time.monotonic() - t0 > a.timeout:
                sys.exit(f"daemon_scale: {what}: not within {a.timeout:.0f} s")
            time.sleep(0.05)

    try:
        wait("its start", lambda: running.search(new_log()))
        result["ready_s"] = round(time.monotonic() - t0, 3)
        result["rss_ready_kb"] = kib(daemon.pid, "VmRSS")
        done = 0

        def first_round():
            nonlocal done
            # --status reads every account's state: not too often for 10,000.
            time.sleep(max(0.5, a.accounts / 5000))
            done = synced_accounts(a.mboxmirror, a.config)
            return done >= a.accounts
        wait("the first round", first_round)
        result["first_round_s"] = round(time.monotonic() - t0, 2)
        if a.push:
            wait(f"{a.push} push connections",
                 lambda: len(watching.findall(new_log())) >= a.push)
            result["push_up_s"] = round(time.monotonic() - t0, 2)
        # Let the last connections close (and the rerun syncs that push connections
        # ask for end) before watching it idle.
        time.sleep(5 if a.push else 2)
        c0, w0 = cpu_seconds(daemon.pid), time.monotonic()
        time.sleep(a.idle)
        c1, w1 = cpu_seconds(daemon.pid), time.monotonic()
        result["rss_kb"] = kib(daemon.pid, "VmRSS")
        result["hwm_kb"] = kib(daemon.pid, "VmHWM")
        result["fds"] = len(os.listdir(f"/proc/{daemon.pid}/fd"))
        result["idle_s"] = round(w1 - w0, 1)
        result["idle_cpu_s"] = round(c1 - c0, 3)
        result["idle_cpu_pct"] = round(100 * (c1 - c0) / (w1 - w0), 3)
        if a.push_sample:
            if not a.deliver:
                sys.exit("daemon_scale: --push-sample needs --deliver")
            lat = push_latency(read_accounts(a.config), a.push_sample, a.deliver, 60)
            result["push_latency_s"] = lat
            result["push_latency_max_s"] = max(lat)
            result["push_latency_median_s"] = statistics.median(lat)
            result["rss_after_push_kb"] = kib(daemon.pid, "VmRSS")
        t1 = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        result["rc"] = daemon.wait(timeout=30)
        result["stop_s"] = round(time.monotonic() - t1, 2)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    with open(a.out, "a") as f:
        f.write(json.dumps(result) + "\n")
    line = (f"daemon with {a.accounts} accounts ({a.push} on push): started in "
            f"{result['ready_s']} s (RSS {result['rss_ready_kb'] / 1024:.1f} MiB); first "
            f"round {result['first_round_s']} s; idle {result['idle_s']} s: RSS "
            f"{result['rss_kb'] / 1024:.1f} MiB (peak {result['hwm_kb'] / 1024:.1f} MiB), "
            f"{result['fds']} descriptors, CPU {result['idle_cpu_s']} s = "
            f"{result['idle_cpu_pct']} %")
    if "push_latency_s" in result:
        line += (f"; push latency median {result['push_latency_median_s']} s, max "
                 f"{result['push_latency_max_s']} s over {a.push_sample} accounts")
    if "check_config_s" in result:
        line += f"; --check-config {result['check_config_s']} s"
    print(line + f"; SIGTERM to exit {result['stop_s']} s")


if __name__ == "__main__":
    main()
