#!/usr/bin/env python3
"""Time one command for bench/run.sh and append the figures as a JSON line.

    measure.py --out FILE [--server-pid FILE] [--timeout S] [--log FILE]
               [--set KEY=VALUE]... -- COMMAND ARG...

Figures: wall seconds (monotonic clock around fork..reap), user and system CPU and peak
RSS as /usr/bin/time reports them from wait4(), which covers the command and every
descendant it reaped (the RSS is that of the largest single process), the exit status, and the CPU that the
IMAP server spent meanwhile (its master process and all its children, live or reaped,
read from /proc).  The command runs in its own process group, stdin from /dev/null,
output to --log; on timeout the whole group is killed and the run is marked failed.
"""
import argparse
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time

HZ = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid, with_children):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # fields[11..14]: utime stime cutime cstime (after the state field at index 0)
    n = int(fields[11]) + int(fields[12])
    if with_children:
        n += int(fields[13]) + int(fields[14])
    return n


def tree_cpu(master):
    """Ticks used by master and its descendants, reaped ones included."""
    if master is None:
        return None
    children = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(p))
    total, todo = 0, [master]
    while todo:
        p = todo.pop()
        total += proc_cpu(p, True)
        todo += children.get(p, [])
    return total / HZ


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--server-pid")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--log")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        ap.error("no command")
    master = None
    if a.server_pid:
        try:
            master = int(open(a.server_pid).read().split()[0])
        except (OSError, ValueError, IndexError):
            master = None
    log = open(a.log, "ab") if a.log else subprocess.DEVNULL
    if a.log:
        log.write(("\n$ " + " ".join(cmd) + "\n").encode())
        log.flush()
    s0 = tree_cpu(master)
    t0 = time.monotonic()
    # GNU time runs the command: a process forked from this Python would start with
    # Python's RSS, and Linux keeps that high-water mark across exec.
    fd, tfile = tempfile.mkstemp(prefix="measure.")
    os.close(fd)
    proc = subprocess.Popen(["/usr/bin/time", "-o", tfile, "-f", "%U %S %M"] + cmd,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=True)
    timed_out = False

    def forward(signum, frame):
        # The command has a process group of its own: take it down with us.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        sys.exit(128 + signum)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, forward)
    # A pidfd becomes readable the moment the child exits: no polling delay in the wall.
    pidfd = os.pidfd_open(proc.pid)
    if not select.select([pidfd], [], [], a.timeout)[0]:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
    pid, status, ru = os.wait4(proc.pid, 0)
    os.close(pidfd)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    # The server's per-connection processes exit after LOGOUT; give the master time to
    # reap them so their CPU is counted.
    time.sleep(0.3)
    s1 = tree_cpu(master)
    # time's own line is the last one (a killed command leaves a "Command terminated"
    # line before it).
    try:
        with open(tfile) as f:
            user, sys_, rss = f.read().split("\n")[-2].split()
        user, sys_, rss = float(user), float(sys_), int(rss)
    except (OSError, ValueError, IndexError):
        user, sys_, rss = ru.ru_utime, ru.ru_stime, ru.ru_maxrss
    os.unlink(tfile)
    rec = dict(kv.split("=", 1) for kv in a.set)
    rec.update({"wall": round(wall, 4), "user": round(user, 3), "sys": round(sys_, 3),
                "cpu": round(user + sys_, 3), "rss_kb": rss,
                "rc": "timeout" if timed_out else proc.returncode,
                "server_cpu": None if s0 is None or s1 is None else round(s1 - s0, 3),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
    with open(a.out, "a") as f:
        f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"    wall {wall:7.2f} s  cpu {rec['cpu']:6.2f} s  rss {rss / 1024:6.1f} MB  "
          f"server {rec['server_cpu'] if rec['server_cpu'] is not None else '-'} s  rc {rec['rc']}",
          flush=True)
    sys.exit(0 if rec["rc"] == 0 else 1)


if __name__ == "__main__":
    main()
