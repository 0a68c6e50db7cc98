#!/usr/bin/env python3
"""The "raw limit" row of bench/run.sh: the least work a mirroring IMAP client can do.

Per account, over one TLS connection (certificate checked against --ca):
  round trip 1   LOGIN, then LIST "" "*"
  round trip 2   resync only: STATUS (UIDNEXT UIDVALIDITY) for every mailbox, pipelined
  round trip 3   EXAMINE + UID FETCH <next>:* (BODY.PEEK[]) for every mailbox that has
                 new mail, all pipelined; each literal goes to OUT/<mailbox>.raw as it
                 arrives, unchanged (no From_ line, no quoting, no fsync)
  then LOGOUT, sent only once the last FETCH has completed.

State (--state, JSON): UIDVALIDITY, the next UID to fetch and the message and byte counts
per mailbox, so the verifier can check the mirror.  The next UID comes from UIDNEXT, not
from the last UID seen: `UID FETCH n:*` returns the newest message even when n is past it.

  rawfetch.py --host H --port P --ca CA --user U --password W --out DIR [--state F]
  rawfetch.py --host H --port P --ca CA --accounts FILE [--jobs 16]
      FILE: "user password outdir" per line; state in outdir/state.json
  --discard   read and drop the bytes (warm-up; no files)

Prints one summary line; exit status 0 when every account synced.
"""
import argparse
import json
import os
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import imapio


def file_name(wire):
    return urllib.parse.quote(wire, safe="") + ".raw"


def sync_account(host, port, ca, server_name, user, password, out, state_path, discard):
    state = {}
    if state_path and os.path.exists(state_path):
        with open(state_path) as f:
            state = json.load(f)
    c = imapio.Connection(host, port, ca, server_name)
    fetched_msgs = fetched_bytes = 0
    try:
        c.login(user, password)
        boxes = c.list_mailboxes()
        # Resync: ask every mailbox for UIDNEXT/UIDVALIDITY in one pipelined round.
        todo = {}
        known = [b for b in boxes if b in state]
        if known:
            tags = [(c.next_tag(), f"STATUS {imapio.quote(b)} (UIDNEXT UIDVALIDITY)") for b in known]
            c.send(tags)
            for (t, _), b in zip(tags, known):
                seen = {}
                c.wait(t, lambda parts: seen.update(imapio.parse_status(parts))
                       if parts[0].startswith(b"* STATUS") else None)
                st = state[b]
                if seen.get("UIDVALIDITY") != st["uidvalidity"]:
                    todo[b] = 1  # a new mailbox under an old name: all of it again
                    st.update(uidvalidity=None, next=1, messages=0, bytes=0)
                elif seen.get("UIDNEXT", 0) > st["next"]:
                    todo[b] = st["next"]
        for b in boxes:
            if b not in state:
                state[b] = {"uidvalidity": None, "next": 1, "messages": 0, "bytes": 0}
                todo[b] = 1
        if todo:
            if not discard:
                os.makedirs(out, exist_ok=True)
            cmds, meta = [], []
            for b, first in todo.items():
                te, tf = c.next_tag(), c.next_tag()
                cmds += [(te, f"EXAMINE {imapio.quote(b)}"),
                         (tf, f"UID FETCH {first}:* (BODY.PEEK[])")]
                meta.append((b, first, te, tf))
            c.send(cmds)
            for b, first, te, tf in meta:
                codes = {}

                def on_examine(parts):
                    for k, v in imapio.CODE.findall(parts[0]):
                        codes[k.decode()] = int(v)
                c.wait(te, on_examine)
                st = state[b]
                if st["uidvalidity"] is not None and codes.get("UIDVALIDITY") != st["uidvalidity"]:
                    raise imapio.IMAPError(f"{b}: UIDVALIDITY changed during the sync")
                st["uidvalidity"] = codes.get("UIDVALIDITY")
                f = None if discard else open(os.path.join(out, file_name(b)), "ab")
                top = [st["next"] - 1]
                counts = [0, 0]

                def on_literal(parts, n):
                    m = imapio.UID_ITEM.search(parts[-1])
                    uid = int(m.group(1)) if m else 0
                    if uid < first:  # the "n:*" answer when nothing is new
                        return lambda chunk: None
                    top[0] = max(top[0], uid)
                    counts[0] += 1
                    counts[1] += n
                    return (lambda chunk: None) if f is None else f.write
                try:
                    c.wait(tf, on_literal=on_literal)
                finally:
                    if f is not None:
                        f.close()
                st["next"] = max(codes.get("UIDNEXT", 1), top[0] + 1)
                st["messages"] += counts[0]
                st["bytes"] += counts[1]
                fetched_msgs += counts[0]
                fetched_bytes += counts[1]
        c.logout()
    finally:
        c.close()
    if state_path and not discard:
        tmp = state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f, ensure_ascii=False)
        os.replace(tmp, state_path)
    return fetched_msgs, fetched_bytes


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--server-name", help="name to check the certificate against (default: host)")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--out")
    ap.add_argument("--state")
    ap.add_argument("--accounts")
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--discard", action="store_true")
    a = ap.parse_args()
    if a.accounts:
        with open(a.accounts) as f:
            accts = [ln.split() for ln in f if ln.strip()]
        jobs = [(u, p, o, os.path.join(o, "state.json")) for u, p, o in accts]
    else:
        if not (a.user and a.password and (a.out or a.discard)):
            ap.error("--user, --password and --out (or --discard) are required")
        jobs = [(a.user, a.password, a.out, a.state)]
    t0 = time.monotonic()
    failures = []
    lock = threading.Lock()

    def one(job):
        u, p, o, s = job
        try:
            return sync_account(a.host, a.port, a.ca, a.server_name, u, p, o, s, a.discard)
        except (OSError, imapio.IMAPError) as e:
            with lock:
                failures.append(f"{u}: {e}")
            return 0, 0
    if len(jobs) == 1:
        results = [one(jobs[0])]
    else:
        with ThreadPoolExecutor(max_workers=a.jobs) as ex:
            results = list(ex.map(one, jobs))
    n = sum(r[0] for r in results)
    b = sum(r[1] for r in results)
    dt = time.monotonic() - t0
    print(f"rawfetch: {len(jobs)} account(s), {n} messages, {b / 1e6:.1f} MB in {dt:.2f} s",
          file=sys.stderr)
    for f in failures:
        print(f"rawfetch: FAILED {f}", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
