#!/usr/bin/env python3
"""Check a mirror made by one row of bench/run.sh against what the server holds now.

    verify.py --kind KIND --dir DIR --port P --ca CA --user U --password W
    verify.py --kind KIND --accounts FILE --port P --ca CA     ("user password dir" lines)

KIND
  mbox      mboxmirror: DIR/<mailbox>.mbox (UTF-8 names, "/" as subdirectories) must be
            byte for byte what shared/DESIGN.md section 4 says: for every message on the
            server, in UID order, "From <sender> <INTERNALDATE as UTC asctime>\\n", the
            message with CRLF -> LF and one more ">" on every ^>*From line, an LF if it
            lacks one, and an empty line.  The expected bytes are computed here from the
            server's own (EXAMINE + BODY.PEEK[]), independently of the program.
  mboxcount an mbox written by another program: count its From_ lines
  maildir   count the files in cur/ and new/ of the mailbox's Maildir (the layouts of
            mbsync and offlineimap are both recognised)
  raw       rawfetch output:   DIR/<mailbox>.raw must be the concatenation of the
            server's messages (checked by size) and state.json must count them all

Every selectable server mailbox must be in the mirror with the server's message count.
Prints one line per account with a problem and a summary; --json appends the result as a
JSON line.  Exit status 0 when everything matched.
"""
import argparse
import calendar
import collections
import hashlib
import json
import os
import re
import sys
import time
import urllib.parse

import imapio

MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}
INTERNALDATE = re.compile(rb'INTERNALDATE "\s?(\d{1,2})-(\w{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"')
SIZE_ITEM = re.compile(rb"RFC822\.SIZE (\d+)")
FROM_QUOTE = re.compile(rb"(?m)^(>*From )")
RETURN_PATH = re.compile(rb"(?im)^Return-Path:[ \t]*([^\r\n]*)")
FROM_LINE = re.compile(rb"From \S+ (?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
                       rb"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d "
                       rb"\d\d:\d\d:\d\d \d{4}$")


def epoch_of(head):
    m = INTERNALDATE.search(head)
    if not m:
        raise ValueError(f"no INTERNALDATE in {head[:200]!r}")
    d, mon, y, hh, mm, ss, sign, zh, zm = m.groups()
    t = calendar.timegm((int(y), MONTHS[mon.decode()], int(d), int(hh), int(mm), int(ss)))
    off = (int(zh) * 60 + int(zm)) * 60
    return t - off if sign == b"+" else t + off


def sender_of(msg):
    end = len(msg)
    for sep in (b"\r\n\r\n", b"\n\n"):
        i = msg.find(sep)
        if 0 <= i < end:
            end = i
    m = RETURN_PATH.search(msg, 0, end + 1)
    if not m:
        return b"MAILER-DAEMON"
    v = m.group(1).strip()
    if v.startswith(b"<") and v.endswith(b">"):
        v = v[1:-1]
    if not v:
        return b"MAILER-DAEMON"
    v = bytes(b if 0x20 < b != 0x7F else 0x5F for b in v)
    return v[:512]


def mbox_entry(msg, internaldate):
    date = time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime(internaldate)).encode()
    body = FROM_QUOTE.sub(rb">\1", msg.replace(b"\r\n", b"\n"))
    if body and not body.endswith(b"\n"):
        body += b"\n"
    return b"From " + sender_of(msg) + b" " + date + b"\n" + body + b"\n"


def count_from_lines(path):
    with open(path, "rb") as f:
        return sum(1 for ln in f if ln.startswith(b"From ") and FROM_LINE.match(ln.rstrip(b"\n")))


def find_maildir(root, name, wire):
    cands = []
    for n in (name, wire):
        cands += [n, n.replace("/", "."), "." + n.replace("/", ".")]
    if name == "INBOX":
        cands += ["inbox", ""]
    for c in cands:
        p = os.path.join(root, c) if c else root
        if os.path.isdir(os.path.join(p, "cur")):
            return p
    return None


class Checker:
    def __init__(self, args):
        self.a = args
        self.problems = []
        self.server_msgs = self.mirror_msgs = self.exact = 0

    def problem(self, user, text):
        self.problems.append(f"{user}: {text}")

    def account(self, user, password, root):
        a = self.a
        c = imapio.Connection(a.host, a.port, a.ca)
        try:
            c.login(user, password)
            for wire in c.list_mailboxes():
                name = imapio.mutf7_decode(wire)
                t1, t2 = c.next_tag(), c.next_tag()
                items = "(UID INTERNALDATE BODY.PEEK[])" if a.kind == "mbox" else "(UID RFC822.SIZE)"
                c.send([(t1, f"EXAMINE {imapio.quote(wire)}"), (t2, f"UID FETCH 1:* {items}")])
                exists = [0]

                def on_examine(parts):
                    m = re.match(rb"\* (\d+) EXISTS", parts[0])
                    if m:
                        exists[0] = int(m.group(1))
                c.wait(t1, on_examine)
                getattr(self, "check_" + a.kind)(c, t2, user, root, name, wire, exists[0])
            c.logout()
        finally:
            c.close()

    def sizes(self, c, tag, exists):
        out = []
        if exists == 0:
            c.wait(tag)
            return out

        def untagged(parts):
            m = SIZE_ITEM.search(parts[0])
            if m and b" FETCH " in parts[0]:
                out.append(int(m.group(1)))
        c.wait(tag, untagged)
        return out

    def check_mbox(self, c, tag, user, root, name, wire, exists):
        path = os.path.join(root, name + ".mbox")
        f = open(path, "rb") if os.path.exists(path) else None
        state = {"n": 0, "ok": 0, "offset": 0, "bad": None, "rest": collections.Counter()}
        cur = {}

        def on_literal(parts, n):
            cur["head"] = parts[-1]
            chunks = cur["chunks"] = []
            return lambda c: chunks.append(bytes(c))

        def untagged(parts):
            if b" FETCH " not in parts[0]:
                return
            msg = b"".join(cur.pop("chunks", []))
            state["n"] += 1
            if f is None:
                return
            exp = mbox_entry(msg, epoch_of(cur["head"]))
            if state["bad"]:
                state["rest"][hashlib.sha256(exp).digest()] += 1
                return
            got = f.read(len(exp))
            if got == exp:
                state["ok"] += 1
                state["offset"] += len(exp)
                return
            i = next((k for k in range(min(len(got), len(exp))) if got[k] != exp[k]),
                     min(len(got), len(exp)))
            uid = imapio.UID_ITEM.search(cur["head"])
            state["bad"] = (f"{name}.mbox: message {state['n']} (UID {uid.group(1).decode() if uid else '?'}) "
                            f"differs at file offset {state['offset'] + i}: expected "
                            f"{exp[max(0, i - 30):i + 50]!r}, found {got[max(0, i - 30):i + 50]!r}")
            state["rest"][hashlib.sha256(exp).digest()] += 1
        if exists:
            c.wait(tag, untagged, on_literal)
        else:
            c.wait(tag)
        self.server_msgs += state["n"]
        if f is None:
            if state["n"]:
                self.problem(user, f"{name}.mbox missing ({state['n']} messages on the server)")
            return
        rest = f.read(200)
        f.close()
        mirrored = count_from_lines(path)
        self.mirror_msgs += mirrored
        self.exact += state["ok"]
        if state["bad"]:
            # Tell a reordering from a loss or a corruption: compare the entries from
            # the first difference on as multisets (entries split at From_ lines, which
            # mboxrd quoting keeps unambiguous).
            with open(path, "rb") as g:
                g.seek(state["offset"])
                tail = g.read()
            got = collections.Counter(hashlib.sha256(e).digest()
                                      for e in re.split(rb"(?m)^(?=From )", tail) if e)
            if got == state["rest"]:
                state["bad"] += (" -- the remaining entries are all present, each once and byte-identical, "
                                 "but not in UID order")
            else:
                state["bad"] += (f" -- from there on {sum((state['rest'] - got).values())} expected entries "
                                 f"are missing or altered and {sum((got - state['rest']).values())} "
                                 f"entries in the file are unexpected")
            self.problem(user, state["bad"])
        elif rest:
            self.problem(user, f"{name}.mbox: {os.path.getsize(path) - state['offset']} bytes after "
                               f"the last expected message, starting {rest[:80]!r}")
        if mirrored != state["n"]:
            self.problem(user, f"{name}.mbox: {mirrored} From_ lines, server has {state['n']} messages")

    def check_mboxcount(self, c, tag, user, root, name, wire, exists):
        n = len(self.sizes(c, tag, exists))
        self.server_msgs += n
        path = os.path.join(root, urllib.parse.quote(wire, safe="") + ".mbox")
        got = count_from_lines(path) if os.path.exists(path) else 0
        self.mirror_msgs += got
        if got != n:
            self.problem(user, f"{name}: mirror has {got} messages, server {n}")

    def check_maildir(self, c, tag, user, root, name, wire, exists):
        n = len(self.sizes(c, tag, exists))
        self.server_msgs += n
        d = find_maildir(root, name, wire)
        got = 0
        if d:
            got = sum(len(os.listdir(os.path.join(d, s))) for s in ("cur", "new")
                      if os.path.isdir(os.path.join(d, s)))
        self.mirror_msgs += got
        if got != n:
            self.problem(user, f"{name}: maildir {d or '(missing)'} has {got} messages, server {n}")

    def check_raw(self, c, tag, user, root, name, wire, exists):
        sizes = self.sizes(c, tag, exists)
        self.server_msgs += len(sizes)
        try:
            with open(os.path.join(root, "state.json")) as f:
                st = json.load(f).get(wire, {})
        except OSError:
            st = {}
        path = os.path.join(root, urllib.parse.quote(wire, safe="") + ".raw")
        size = os.path.getsize(path) if os.path.exists(path) else 0
        self.mirror_msgs += st.get("messages", 0)
        if st.get("messages", 0) != len(sizes) or size != sum(sizes):
            self.problem(user, f"{name}: raw mirror {st.get('messages', 0)} messages / {size} bytes, "
                               f"server {len(sizes)} / {sum(sizes)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", required=True, choices=["mbox", "mboxcount", "maildir", "raw"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--dir")
    ap.add_argument("--accounts")
    ap.add_argument("--json")
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    if a.accounts:
        with open(a.accounts) as f:
            accts = [ln.split() for ln in f if ln.strip()]
    else:
        accts = [(a.user, a.password, a.dir)]
    ck = Checker(a)
    for u, p, d in accts:
        try:
            ck.account(u, p, d)
        except (OSError, imapio.IMAPError, ValueError) as e:
            ck.problem(u, f"verification failed: {e}")
    ok = not ck.problems
    what = "byte-identical" if a.kind == "mbox" else "counts"
    summary = (f"{len(accts)} account(s): server {ck.server_msgs} messages, mirror {ck.mirror_msgs}"
               + (f", {ck.exact} byte-identical" if a.kind == "mbox" else "")
               + (f" -- {what} OK" if ok else f" -- {len(ck.problems)} problem(s)"))
    for p in ck.problems[:20]:
        print("verify: " + p)
    print(f"verify {a.label}: {summary}")
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps({"label": a.label, "kind": a.kind, "ok": ok, "summary": summary,
                                "server_messages": ck.server_msgs, "mirror_messages": ck.mirror_msgs,
                                "problems": ck.problems[:50]}, ensure_ascii=False) + "\n")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
