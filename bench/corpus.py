#!/usr/bin/env python3
"""Seeded mail corpora for bench/run.sh.

    corpus.py generate NAME CACHE_DIR [--seed N]   build CACHE_DIR/<key>/ unless present
    corpus.py incr CACHE_DIR ROUND [--count 100]   100 new messages for resync round ROUND
    corpus.py info DIR                             print the manifest of a built corpus

A corpus is a Maildir++ tree (INBOX at the top, ".Archive.2023" for Archive/2023, names
in modified UTF-7 as Dovecot expects) with every message in cur/, its mtime set to the
message's date so that `doveadm import` turns it into the INTERNALDATE.  Next to it,
manifest.json lists the mailboxes (UTF-8 and wire names), message counts and bytes.
The tree is written under a temporary name and renamed when complete, so an interrupted
run never leaves a half corpus that a later run would trust.

Corpora (same seed, same bytes, on any machine with the same Python major version):
  mail  20,000 messages over 7 mailboxes, most 2-50 KB, 4 % multipart/mixed with
        attachments up to 2 MB, and the mbox edge cases (From lines, CRLF, no final
        newline, 8-bit bytes, long lines, missing or empty Return-Path)
  mail5k  the same generator, 5,000 messages (for the slow peers)
  big   20 messages of 10-50 MB (attachments, big text bodies, one 2 MB line)
  many  50 small messages over 2 mailboxes; run.sh imports the same tree into every
        one of the many accounts
"""
import argparse
import base64
import binascii
import datetime as dt
import json
import os
import random
import shutil
import sys

VERSION = 3  # bump when the output of a seed changes: the cache key carries it

MAIL_BOXES = [  # UTF-8 name, share of the messages
    ("INBOX", 0.30),
    ("Archive", 0.22),
    ("Archive/2023", 0.18),
    ("Sent", 0.15),
    ("Lists/dev", 0.10),
    ("Entwürfe", 0.03),
    ("Café & Co", 0.02),
]
BIG_BOXES = [("INBOX", 0.6), ("Archive", 0.4)]
MANY_BOXES = [("INBOX", 0.7), ("Archive", 0.3)]

WORDS = """the of and to in is it that was for on are with as be at one have this from or
had by but some what there we can out other were all your when up use word how said each
she which do their time if will way about many then them would write like so these her long
make thing see him two has look more day could go come did sound no most number who over
know water than call first people may down side been now find any new work part take get
place made live where after back little only round man year came show every good give our
under name very through just form much great think say help low line before turn cause same
mean differ move right old too does tell sentence set three want air well also play small
end put home read hand port large spell add even land here must big high such follow act
why ask men change went light kind off need house meeting report budget server deadline
invoice release patch review schedule quarter backup mirror archive mailbox folder retry
network latency cluster storage upgrade ticket customer contract draft agenda minutes""".split()
UTF8_BITS = ["Grüße", "Straße", "façade", "naïve", "déjà vu", "smørrebrød", "Ελληνικά",
             "русский", "日本語", "中文", "한국어", "żółć", "€", "½"]
NAMES = ["Anna Adler", "Bernd Becker", "Chloé Costa", "David Dubois", "Eva Eriksen",
         "Frank Fischer", "Gita García", "Hans Hoffmann", "Ines Ivanova", "Jürgen Jensen",
         "Kim Kowalski", "Lena Lund", "Marco Müller", "Nadia Nguyen", "Olaf Olsen",
         "Priya Petrov", "Rosa Rossi", "Sven Schmidt", "Tomás Tanaka", "Zoë Zimmermann"]
DOMAINS = ["example.org", "example.net", "example.com", "lists.example.net"]
ATTACH_TYPES = [("application/pdf", "report.pdf"), ("image/jpeg", "photo.jpg"),
                ("image/png", "scan.png"), ("application/zip", "logs.zip"),
                ("application/vnd.oasis.opendocument.spreadsheet", "Übersicht.ods")]
TRICKY_LINES = [b"From the desk of the release manager:",
                b">From an earlier thread, quoted once:",
                b">>From: quoted twice",
                b"From 1999 until today nothing changed.",
                b"From ",
                b">From",
                b"From"]


def mutf7(name):
    """UTF-8 mailbox name -> IMAP modified UTF-7 (RFC 3501 section 5.1.3)."""
    out, run = [], []

    def flush():
        if run:
            b = base64.b64encode("".join(run).encode("utf-16-be")).decode()
            out.append("&" + b.rstrip("=").replace("/", ",") + "-")
            run.clear()
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out)


def maildir_dir(root, name):
    if name == "INBOX":
        return root
    return os.path.join(root, "." + mutf7(name).replace("/", "."))


class Writer:
    """Text and message building from one seeded generator."""

    def __init__(self, seed):
        self.r = random.Random(seed)
        r = self.r
        # A few MB of wrapped prose; bodies are windows into it (cheap, and no two
        # messages are alike because windows start anywhere).
        lines, total = [], 0
        while total < 4_000_000:
            words = [r.choice(WORDS) for _ in range(r.randint(40, 120))]
            line, para = [], []
            for w in words:
                if sum(len(x) + 1 for x in line) + len(w) > 72:
                    para.append(" ".join(line))
                    line = []
                line.append(w)
            para.append(" ".join(line))
            para[0] = para[0][:1].upper() + para[0][1:]
            for p in para:
                lines.append(p.encode())
                total += len(p) + 1
            lines.append(b"")
        self.prose = b"\n".join(lines)

    def text(self, n):
        """About n bytes of prose, LF line ends, starting at a line start."""
        p = self.prose
        if n >= len(p):
            return (p + b"\n") * (n // (len(p) + 1)) + self.text(n % (len(p) + 1))
        i = p.find(b"\n", self.r.randrange(len(p) - n)) + 1
        j = p.find(b"\n", i + n)
        return p[i:j if j > 0 else len(p)] + b"\n"

    def person(self):
        name = self.r.choice(NAMES)
        local = name.split()[0].lower().encode("ascii", "ignore").decode() or "x"
        return name, f"{local}.{self.r.randrange(1000)}@{self.r.choice(DOMAINS)}"

    @staticmethod
    def mime_word(s):
        try:
            s.encode("ascii")
            return s
        except UnicodeEncodeError:
            return "=?UTF-8?B?" + base64.b64encode(s.encode()).decode() + "?="

    def subject(self):
        r = self.r
        s = " ".join(r.choice(WORDS) for _ in range(r.randint(2, 8))).capitalize()
        if r.random() < 0.1:
            s += " " + r.choice(UTF8_BITS)
        return r.choice(["", "", "Re: ", "Fwd: ", "[dev] "]) + s

    def header(self, box, seq, when, corpus, me):
        r = self.r
        name, addr = self.person()
        date = when.strftime("%a, %d %b %Y %H:%M:%S +0000")
        h = []
        x = r.random()
        if box not in ("Sent", "Entwürfe"):
            # Return-Path decides the From_ line's sender: mostly present, sometimes
            # empty (a bounce) or absent, both of which mean MAILER-DAEMON.
            if x < 0.9:
                h.append(f"Return-Path: <{addr}>")
            elif x < 0.95:
                h.append("Return-Path: <>")
            h.append(f"Delivered-To: {me}")
            for hop in range(r.randint(1, 3)):
                h.append(f"Received: from mx{hop}.{r.choice(DOMAINS)} ([192.0.2.{r.randint(1, 254)}])\n"
                         f"\tby mail.example.org (Postfix) with ESMTPS id {r.getrandbits(40):010X}\n"
                         f"\tfor <{me}>; {date}")
            if r.random() < 0.5:
                sig = base64.b64encode(r.randbytes(256)).decode()
                h.append("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.net;\n"
                         "\ts=mail; h=from:to:subject:date:message-id;\n\tb="
                         + "\n\t ".join(sig[i:i + 72] for i in range(0, len(sig), 72)))
            frm, to = (name, addr), ("Bench User", me)
        else:
            frm, to = ("Bench User", me), (name, addr)
        h.append(f"Date: {date}")
        h.append(f"From: {self.mime_word(frm[0])} <{frm[1]}>")
        h.append(f"To: {self.mime_word(to[0])} <{to[1]}>")
        h.append(f"Subject: {self.mime_word(self.subject())}")
        h.append(f"Message-ID: <{corpus}.{seq}.{r.getrandbits(32):08x}@bench.example>")
        if box == "Lists/dev":
            h.append("List-Id: Developers <dev.lists.example.net>")
            h.append("List-Unsubscribe: <mailto:dev-leave@lists.example.net>")
        if r.random() < 0.01:
            h.append("X-Long-Header: " + " ".join(r.choice(WORDS) for _ in range(250)))
        h.append("MIME-Version: 1.0")
        return "\n".join(h).encode()

    def body_size(self):
        # Log-normal around 7 KB: ~90 % of text bodies land between 2 and 50 KB.
        return int(min(max(self.r.lognormvariate(8.85, 0.95), 200), 400_000))

    def plain(self, size):
        r = self.r
        body = self.text(size)
        hdr = b'Content-Type: text/plain; charset="utf-8"\nContent-Transfer-Encoding: 8bit'
        return hdr, body

    def alternative(self, size):
        text = self.text(size // 2)
        html = b"<html><body><p>" + binascii.b2a_qp(self.text(size // 2)).replace(
            b"\n\n", b"</p>\n<p>") + b"</p></body></html>\n"
        b = f"alt-{self.r.getrandbits(48):012x}".encode()
        hdr = b'Content-Type: multipart/alternative; boundary="' + b + b'"'
        body = (b"--" + b + b'\nContent-Type: text/plain; charset="us-ascii"\n\n' + text
                + b"\n--" + b + b'\nContent-Type: text/html; charset="utf-8"\n'
                b"Content-Transfer-Encoding: quoted-printable\n\n" + html
                + b"\n--" + b + b"--\n")
        return hdr, body

    def mixed(self, size, attach_bytes):
        r = self.r
        b = f"mix-{r.getrandbits(48):012x}".encode()
        parts = [b"--" + b + b'\nContent-Type: text/plain; charset="utf-8"\n\n' + self.text(size)]
        left = attach_bytes
        for _ in range(r.randint(1, 3)):
            if left <= 0:
                break
            n = max(1000, left if r.random() < 0.5 else left // 2)
            left -= n
            ctype, fname = r.choice(ATTACH_TYPES)
            enc = self.mime_word(fname)
            data = base64.encodebytes(r.randbytes(n * 3 // 4))
            parts.append(b"--" + b + f'\nContent-Type: {ctype}; name="{enc}"\n'
                         f'Content-Disposition: attachment; filename="{enc}"\n'
                         "Content-Transfer-Encoding: base64\n\n".encode() + data)
        hdr = b'Content-Type: multipart/mixed; boundary="' + b + b'"'
        return hdr, b"\n".join(parts) + b"\n--" + b + b"--\n"

    def edge(self, body):
        """Mix the mbox edge cases into some bodies; returns (body, crlf, no_final_lf)."""
        r = self.r
        x = r.random()
        crlf = nofinal = False
        if x < 0.02:
            lines = body.split(b"\n")
            for _ in range(r.randint(1, 4)):
                lines.insert(r.randrange(len(lines)), r.choice(TRICKY_LINES))
            body = b"\n".join(lines)
        elif x < 0.03:
            body += "Grüße aus Łódź — 日本語\n".encode() + bytes([0xE4, 0xF6, 0xFC]) + b" latin-1\n"
        elif x < 0.035:
            body += b" ".join(r.choice(WORDS).encode() for _ in range(r.randint(2000, 30000))) + b"\n"
        elif x < 0.045:
            crlf = True
        elif x < 0.05:
            nofinal = True
        elif x < 0.051:
            body = b""
        elif x < 0.053:
            body = body.replace(b"\n", b"\r\n", r.randint(1, 20))  # mixed line ends
        elif x < 0.054:
            body += b"a lone\rCR and a trailing CR\r"
        return body, crlf, nofinal

    def message(self, box, seq, when, corpus, me, kind=None, size=None, attach=None):
        r = self.r
        if kind is None:
            x = r.random()
            kind = "plain" if x < 0.62 else ("alt" if x < 0.96 else "mixed")
        if size is None:
            size = self.body_size()
        if kind == "plain":
            ctype, body = self.plain(size)
        elif kind == "alt":
            ctype, body = self.alternative(size)
        else:
            if attach is None:
                attach = int(min(2_000_000, r.lognormvariate(11.0, 1.2)))
            ctype, body = self.mixed(size // 3, attach)
        body, crlf, nofinal = self.edge(body)
        msg = self.header(box, seq, when, corpus, me) + b"\n" + ctype + b"\n\n" + body
        if crlf:
            msg = msg.replace(b"\n", b"\r\n")
        if nofinal:
            msg = msg.rstrip(b"\r\n")
        return msg


def allocate(boxes, count):
    out, left = [], count
    for i, (name, share) in enumerate(boxes):
        k = left if i == len(boxes) - 1 else min(left, round(count * share))
        out.append((name, k))
        left -= k
    return out


def build(kind, dest, seed):
    spec = {"mail": (MAIL_BOXES, 20000), "mail5k": (MAIL_BOXES, 5000), "big": (BIG_BOXES, 20),
            "many": (MANY_BOXES, 50)}
    boxes, count = spec[kind]
    w = Writer(seed)
    r = w.r
    me = "bench@example.org"
    start = dt.datetime(2019, 1, 1, tzinfo=dt.timezone.utc).timestamp()
    span = 6 * 365 * 86400
    manifest = {"corpus": kind, "seed": seed, "version": VERSION, "mailboxes": []}
    seq = 0
    for name, k in allocate(boxes, count):
        d = maildir_dir(dest, name)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        if d != dest:
            open(os.path.join(d, "maildirfolder"), "wb").close()
        stamps = sorted(int(start + r.random() * span) for _ in range(k))
        nbytes = 0
        for j, t in enumerate(stamps):
            seq += 1
            when = dt.datetime.fromtimestamp(t, dt.timezone.utc)
            if kind == "big":
                if j % 5 == 4:
                    msg = w.message(name, seq, when, kind, me, kind="plain",
                                    size=r.randint(10_000_000, 50_000_000))
                    if j == 4:  # one 2 MB line, one block of From lines
                        cut = msg.index(b"\n", len(msg) // 2) + 1
                        msg = (msg[:cut] + b"x" * 2_000_000 + b"\n"
                               + b"\n".join(TRICKY_LINES) + b"\n" + msg[cut:])
                else:
                    msg = w.message(name, seq, when, kind, me, kind="mixed", size=30_000,
                                    attach=r.randint(10_000_000, 50_000_000))
            else:
                msg = w.message(name, seq, when, kind, me)
            flags = "S" if (name != "INBOX" or j < k - k // 10) else ""
            if r.random() < 0.05:
                flags = "F" + flags
            path = os.path.join(d, "cur", f"{t}.M{seq}.bench:2,{flags}")
            with open(path, "wb") as f:
                f.write(msg)
            os.utime(path, (t, t))
            nbytes += len(msg)
        manifest["mailboxes"].append({"name": name, "wire": mutf7(name), "messages": k,
                                      "bytes": nbytes})
    manifest["messages"] = sum(m["messages"] for m in manifest["mailboxes"])
    manifest["bytes"] = sum(m["bytes"] for m in manifest["mailboxes"])
    with open(os.path.join(dest, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
    return manifest


def build_incr(dest, rnd, count):
    """count new messages: 80 % to INBOX, 20 % to Archive (every corpus has both)."""
    w = Writer(7_000_003 + rnd)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    t = int(now.timestamp())
    boxes = {"INBOX": 0, "Archive": 0}
    for name in boxes:
        d = maildir_dir(dest, name)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        if d != dest:
            open(os.path.join(d, "maildirfolder"), "wb").close()
    nbytes = 0
    for j in range(count):
        name = "Archive" if j % 5 == 4 else "INBOX"
        msg = w.message(name, j, now, f"incr{rnd}", "bench@example.org")
        path = os.path.join(maildir_dir(dest, name), "cur", f"{t}.M{j}.incr{rnd}:2,")
        with open(path, "wb") as f:
            f.write(msg)
        os.utime(path, (t, t))
        boxes[name] += 1
        nbytes += len(msg)
    return {"messages": count, "bytes": nbytes, "per_mailbox": boxes}


def publish(dest, fill):
    """Run fill(tmpdir) and rename the result to dest atomically."""
    tmp = dest + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    res = fill(tmp)
    shutil.rmtree(dest, ignore_errors=True)
    os.rename(tmp, dest)
    # The mail processes (an unprivileged user) read the tree during the import.
    for d, dirs, files in os.walk(dest):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o644)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("name", choices=["mail", "mail5k", "big", "many"])
    g.add_argument("cache")
    g.add_argument("--seed", type=int, default=20250101)
    i = sub.add_parser("incr")
    i.add_argument("dest")
    i.add_argument("round", type=int)
    i.add_argument("--count", type=int, default=100)
    n = sub.add_parser("info")
    n.add_argument("dir")
    u = sub.add_parser("mutf7")
    u.add_argument("names", nargs="+")
    a = ap.parse_args()
    if a.cmd == "generate":
        dest = os.path.join(os.path.abspath(a.cache), f"{a.name}-v{VERSION}-s{a.seed}")
        if os.path.exists(os.path.join(dest, "manifest.json")):
            print(dest)
            return
        m = publish(dest, lambda tmp: build(a.name, tmp, a.seed))
        print(f"corpus {a.name}: {m['messages']} messages, {m['bytes'] / 1e6:.1f} MB",
              file=sys.stderr)
        print(dest)
    elif a.cmd == "incr":
        res = publish(os.path.abspath(a.dest), lambda tmp: build_incr(tmp, a.round, a.count))
        print(json.dumps(res))
    elif a.cmd == "mutf7":
        for name in a.names:
            print(mutf7(name))
    else:
        with open(os.path.join(a.dir, "manifest.json")) as f:
            print(json.dumps(json.load(f), indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
