#!/usr/bin/env python3
"""daemon_scale.py - the daemon's footprint with many accounts, for bench/run.sh.

Starts `mboxmirror -c CONFIG` (the daemon, in the foreground), waits until every
account has synced once (`--status --json`), then watches it idle for --idle seconds:
its resident memory (VmRSS, and the peak VmHWM) and the CPU it used meanwhile, from
/proc.  Stops it with SIGTERM and appends one JSON line to --out:

  accounts, first_round_s, rss_kb, hwm_kb, idle_s, idle_cpu_s, idle_cpu_pct,
  stop_s, rc

  daemon_scale.py --mboxmirror BIN --config INI --accounts N --idle 60 --out F.jsonl
"""
import argparse
import json
import os
import signal
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mboxmirror", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--accounts", type=int, required=True)
    ap.add_argument("--idle", type=float, default=60.0)
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--log", default=os.devnull)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    log = open(a.log, "ab")
    t0 = time.monotonic()
    daemon = subprocess.Popen([a.mboxmirror, "-c", a.config, "-q"],
                              stdout=log, stderr=log)
    result = {"accounts": a.accounts}
    try:
        done = 0
        while done < a.accounts:
            if daemon.poll() is not None:
                sys.exit(f"daemon_scale: the daemon exited ({daemon.returncode})")
            if time.monotonic() - t0 > a.timeout:
                sys.exit(f"daemon_scale: only {done} of {a.accounts} accounts "
                         f"synced within {a.timeout:.0f} s")
            time.sleep(0.5)
            done = synced_accounts(a.mboxmirror, a.config)
        result["first_round_s"] = round(time.monotonic() - t0, 2)
        # Let the last connections close before watching it idle.
        time.sleep(2)
        c0, w0 = cpu_seconds(daemon.pid), time.monotonic()
        time.sleep(a.idle)
        c1, w1 = cpu_seconds(daemon.pid), time.monotonic()
        st = proc_status(daemon.pid)
        result["rss_kb"] = int(st["VmRSS"].split()[0])
        result["hwm_kb"] = int(st["VmHWM"].split()[0])
        result["idle_s"] = round(w1 - w0, 1)
        result["idle_cpu_s"] = round(c1 - c0, 3)
        result["idle_cpu_pct"] = round(100 * (c1 - c0) / (w1 - w0), 3)
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
    print(f"daemon with {a.accounts} accounts: first round {result['first_round_s']} s; "
          f"idle {result['idle_s']} s: RSS {result['rss_kb'] / 1024:.1f} MiB "
          f"(peak {result['hwm_kb'] / 1024:.1f} MiB), CPU {result['idle_cpu_s']} s "
          f"= {result['idle_cpu_pct']} %; SIGTERM to exit {result['stop_s']} s")


if __name__ == "__main__":
    main()
