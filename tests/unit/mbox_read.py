#!/usr/bin/env python3
"""Reads an mbox written by the mbox writer back with Python's mailbox
module and with an independent mboxrd reader (DESIGN.md section 4), and
checks both give the original messages, senders and dates.

Usage: mbox_read.py TEST_MBOX_BINARY
(the binary is run with --write-fixture DIR to produce the fixture)."""

import mailbox
import os
import re
import subprocess
import sys
import tempfile
import time

FROM_QUOTED = re.compile(rb"^>+From ")


def unquote(body):
    """Strips one '>' from ^>+From lines (mboxrd)."""
    lines = body.split(b"\n")
    return b"\n".join(l[1:] if FROM_QUOTED.match(l) else l for l in lines)


def entries(data):
    """Splits an mboxrd file: From_ lines after an empty line (or at the
    start) begin entries; each entry ends in one empty line."""
    if not data:
        return []
    assert data.startswith(b"From "), "file does not start with From_"
    out = []
    starts = [0] + [m.start() + 2 for m in re.finditer(rb"\n\nFrom ", data)]
    for i, s in enumerate(starts):
        e = starts[i + 1] if i + 1 < len(starts) else len(data)
        entry = data[s:e]
        assert entry.endswith(b"\n\n"), "entry without its empty line"
        from_line, _, rest = entry.partition(b"\n")
        assert rest.endswith(b"\n")
        out.append((from_line, rest[:-1]))
    return out


def expected_body(orig):
    """The original as it reads back: LF line ends, a final LF added to a
    message that lacks one."""
    lf = orig.replace(b"\r\n", b"\n")
    if lf and not lf.endswith(b"\n"):
        lf += b"\n"
    return lf


def main():
    binary = sys.argv[1]
    failures = 0
    with tempfile.TemporaryDirectory(prefix="mbox_read.") as d:
        subprocess.run([binary, "--write-fixture", d], check=True)
        with open(os.path.join(d, "fixture.mbox"), "rb") as f:
            data = f.read()
        expected = []
        with open(os.path.join(d, "expected")) as f:
            for line in f:
                idx, sender, date = line.split()
                with open(os.path.join(d, "msg%s.eml" % idx), "rb") as m:
                    orig = m.read()
                asc = time.asctime(time.gmtime(int(date)))
                expected.append((orig, "%s %s" % (sender, asc)))

        # Python's mailbox module.
        box = mailbox.mbox(os.path.join(d, "fixture.mbox"), create=False)
        keys = box.keys()
        if len(keys) != len(expected):
            print("mailbox.mbox: %d messages, want %d" %
                  (len(keys), len(expected)))
            failures += 1
        for key, (orig, from_) in zip(keys, expected):
            got_from = box.get_message(key).get_from()
            if got_from != from_:
                print("mailbox.mbox #%s: From_ %r, want %r" %
                      (key, got_from, from_))
                failures += 1
            got = unquote(box.get_bytes(key))
            want = expected_body(orig)
            if got != want:
                print("mailbox.mbox #%s: body %r, want %r" %
                      (key, got, want))
                failures += 1
        box.close()

        # The independent reader, and the exact bytes for CRLF messages.
        ents = entries(data)
        if len(ents) != len(expected):
            print("reader: %d entries, want %d" % (len(ents), len(expected)))
            failures += 1
        for i, ((from_line, body), (orig, from_)) in \
                enumerate(zip(ents, expected)):
            if from_line != b"From " + from_.encode():
                print("reader #%d: %r" % (i, from_line))
                failures += 1
            back = unquote(body).replace(b"\n", b"\r\n")
            if orig.endswith(b"\n") or not orig:
                ok = back == orig
            else:
                ok = back == orig + b"\r\n"
            if not ok:
                print("reader #%d: %r, want %r" % (i, back, orig))
                failures += 1
    if failures:
        print("%d failures" % failures)
        return 1
    print("ok: %d messages read back" % len(expected))
    return 0


if __name__ == "__main__":
    sys.exit(main())
