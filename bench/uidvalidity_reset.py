#!/usr/bin/env python3
"""One measurement: a mailbox of N messages mirrored, its UIDVALIDITY reset on the
server (the mailbox recreated and the same messages appended again, renumbered) with
NEW new messages, then the next sync: how many bodies it fetched, how long it took,
beside the first sync (what downloading everything again would cost).

Runs against the integration tests' private Dovecot:

    tests/dovecot/start.sh /tmp/mmdc
    MM_DOVECOT_ENV=/tmp/mmdc/env MBOXMIRROR=build/daemon/mboxmirror \\
        PYTHONPATH=tests/integration python3 bench/uidvalidity_reset.py [N [NEW]]
    tests/dovecot/stop.sh /tmp/mmdc
"""

import os
import random
import re
import sys
import time

import mmtest

BOX = "Archive"


def body_uids(stderr):
    n = 0
    for m in re.finditer(r" C: \S+ UID FETCH (\S+) \([^)]*BODY\.PEEK\[\]\)", stderr):
        for part in m.group(1).split(","):
            lo, _, hi = part.partition(":")
            n += (int(hi) - int(lo) + 1) if hi and hi != "*" else 1
    return n


def timed_sync(conf):
    t0 = time.monotonic()
    res = mmtest.run_mboxmirror("-c", conf, "--once", "-v", timeout=3600)
    secs = time.monotonic() - t0
    if res.returncode != 0:
        sys.exit(f"sync failed:\n{res.stderr[-3000:]}")
    return secs, res.stderr


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    n_new = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    rng = random.Random(1)
    base = 1_600_000_000
    old = [(mmtest.make_message(f"m {i}", "x" * rng.randrange(200, 4000) + "\r\n"),
            base + 60 * i) for i in range(n)]
    new = [(mmtest.make_message(f"new {i}"), base + 60 * n + i) for i in range(n_new)]
    fx = mmtest.Fixture()
    user, pw = fx.new_user("bench")
    fx.create_mailbox(user, pw, BOX)
    fx.append_many(user, pw, BOX, [m for m, _ in old], date=[d for _, d in old])
    with mmtest.TempDir() as tmp:
        conf = mmtest.write_config(tmp, [fx.account(tmp, user, pw)])
        first, err = timed_sync(conf)
        first_bodies = body_uids(err)
        size = os.path.getsize(os.path.join(tmp, "out", "test", BOX + ".mbox"))
        old_uv = fx.uidvalidity(user, pw, BOX)
        fx.recreate_mailbox(user, pw, BOX)
        again = list(old)
        rng.shuffle(again)
        again += new
        fx.append_many(user, pw, BOX, [m for m, _ in again], date=[d for _, d in again])
        new_uv = fx.uidvalidity(user, pw, BOX)
        after, err = timed_sync(conf)
        warn = [l for l in err.splitlines() if "UIDVALIDITY changed" in l]
        print(f"mailbox of {n} messages ({size} bytes of mbox), UIDVALIDITY "
              f"{old_uv} -> {new_uv}, {n_new} new")
        print(f"first sync:           {first:7.2f} s, {first_bodies} bodies fetched")
        print(f"sync after the reset: {after:7.2f} s, {body_uids(err)} bodies fetched")
        out = os.path.join(tmp, "out", "test")
        print(f"size after: {os.path.getsize(os.path.join(out, BOX + '.mbox'))} bytes; "
              f"files: {sorted(os.listdir(out))}")
        for line in warn:
            print(line)


if __name__ == "__main__":
    main()
