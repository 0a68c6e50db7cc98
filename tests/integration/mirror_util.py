"""Shared checks for the mirror integration tests: what the server holds, what the
mbox must hold (DESIGN.md section 4), and the file-system rules of section 3.

The expected mbox is computed from the server's own bytes, fetched here with imaplib
(EXAMINE + BODY.PEEK[], so nothing changes on the server), independently of the
program under test."""

import base64
import calendar
import hashlib
import os
import random
import re
import signal
import stat
import subprocess
import time

import mmtest

_MONTHS = {m: i for i, m in enumerate(
    "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


def internaldate_epoch(text):
    """'03-Sep-2023 14:05:09 +0200' (IMAP date-time) -> Unix time."""
    m = re.match(r"\s*(\d{1,2})-(\w{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$",
                 text)
    if not m:
        raise ValueError(f"bad INTERNALDATE {text!r}")
    day, mon, year, hh, mm, ss, sign, zh, zm = m.groups()
    t = calendar.timegm((int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss)))
    off = (int(zh) * 60 + int(zm)) * 60
    return t - off if sign == "+" else t + off


def asctime_utc(epoch):
    """asctime layout in UTC: 'Sun Sep  3 12:05:09 2023'."""
    return time.asctime(time.gmtime(epoch))


def sender_of(message):
    """The From_ sender DESIGN.md section 4 asks for, read from the header here."""
    head = message.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    m = re.search(rb"^Return-Path:[ \t]*(.*?)[ \t]*\r?$", head, re.MULTILINE | re.IGNORECASE)
    if not m:
        return "MAILER-DAEMON"
    addr = m.group(1)
    if addr.startswith(b"<") and addr.endswith(b">"):
        addr = addr[1:-1]
    return addr.decode() if addr else "MAILER-DAEMON"


def server_messages(fx, user, password, mailbox_name):
    """[(uid, internaldate as Unix time, bytes)] in UID order, read with EXAMINE and
    BODY.PEEK[]."""
    with fx.imap(user, password) as c:
        typ, data = c.select(mmtest._quote(mmtest.mutf7_encode(mailbox_name)), readonly=True)
        if typ != "OK":
            raise RuntimeError(f"EXAMINE {mailbox_name}: {data!r}")
        if int(data[0]) == 0:
            return []
        typ, data = c.uid("FETCH", "1:*", "(UID INTERNALDATE BODY.PEEK[])")
        if typ != "OK":
            raise RuntimeError(f"UID FETCH {mailbox_name}: {data!r}")
    out = []
    for item in data:
        if not isinstance(item, tuple):
            continue
        head, body = item
        uid = int(re.search(rb"UID (\d+)", head).group(1))
        date = re.search(rb'INTERNALDATE "([^"]+)"', head).group(1).decode()
        out.append((uid, internaldate_epoch(date), body))
    out.sort()
    return out


def read_back(message):
    """What the DESIGN.md reverse transformation yields for a message (server bytes):
    line ends become CRLF, and the LF the writer adds to an unterminated message."""
    body = message.replace(b"\r\n", b"\n")
    if body and not body.endswith(b"\n"):
        body += b"\n"
    return body.replace(b"\n", b"\r\n")


def expected_mbox(messages):
    """The exact bytes of a mbox holding messages [(uid, date, bytes)] in order."""
    return b"".join(mmtest.mbox_escape_entry(body, f"{sender_of(body)} {asctime_utc(date)}")
                    for _, date, body in messages)


def first_difference(a, b):
    n = min(len(a), len(b))
    for i in range(0, n, 1 << 16):
        if a[i:i + (1 << 16)] != b[i:i + (1 << 16)]:
            for j in range(i, min(i + (1 << 16), n)):
                if a[j] != b[j]:
                    return j
    return n if len(a) != len(b) else -1


def assert_bytes_equal(tc, actual, expected, what):
    """assertEqual for large byte strings, reporting where they part."""
    if actual == expected:
        return
    at = first_difference(actual, expected)
    tc.fail(f"{what}: {len(actual)} bytes, expected {len(expected)}; first difference at "
            f"offset {at}:\n  got      {actual[max(0, at - 80):at + 80]!r}\n"
            f"  expected {expected[max(0, at - 80):at + 80]!r}")


def assert_mbox_holds(tc, path, bodies):
    """The mbox at path holds exactly bodies (server bytes), once each, in order, byte
    for byte as DESIGN.md section 4 prescribes, each under a From_ line with the
    sender section 4 asks for (the date is not known here: assert_mirror_exact checks
    it against the server's INTERNALDATE)."""
    with open(path, "rb") as f:
        actual = f.read()
    entries = mmtest.read_mbox(path)
    tc.assertEqual(len(entries), len(bodies), f"{path}: message count")
    for i, (e, body) in enumerate(zip(entries, bodies)):
        tc.assertTrue(e.from_line.startswith(sender_of(body) + " "),
                      f"{path}: message {i}: From_ line {e.from_line!r}")
    assert_bytes_equal(tc, actual, b"".join(mmtest.mbox_escape_entry(body, e.from_line)
                                            for e, body in zip(entries, bodies)), path)


def assert_mirror_exact(tc, fx, user, password, mailbox_name, path, messages=None,
                        readback=True):
    """The mbox at path holds every message of the mailbox exactly once, in UID order,
    byte for byte as DESIGN.md section 4 prescribes, with the From_ lines the
    server's data asks for, and (unless readback is false: it is slow on large files)
    reads back through Python's mailbox module to the server's bytes."""
    if messages is None:
        messages = server_messages(fx, user, password, mailbox_name)
    with open(path, "rb") as f:
        actual = f.read()
    assert_bytes_equal(tc, actual, expected_mbox(messages), f"{mailbox_name} ({path})")
    if not readback:
        return messages
    entries = mmtest.read_mbox(path)
    tc.assertEqual(len(entries), len(messages), f"{mailbox_name}: entry count")
    for e, (uid, date, body) in zip(entries, messages):
        tc.assertEqual(e.from_line, f"{sender_of(body)} {asctime_utc(date)}",
                       f"{mailbox_name} UID {uid}: From_ line")
        if e.data != read_back(body):
            assert_bytes_equal(tc, e.data, read_back(body),
                               f"{mailbox_name} UID {uid} read back")
    return messages


def mbox_path(tmp, account, mailbox_name):
    return os.path.join(tmp, "out", account, mailbox_name + ".mbox")


def snapshot(root):
    """{relative path: (mode, sha256)} of every file and directory under root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            digest = None
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(p, root)] = (st.st_mode, digest)
    return out


def assert_modes(tc, root, file_mode=0o600, dir_mode=0o700):
    """Every regular file under root (and root itself, a directory) has the mode."""
    tc.assertEqual(stat.S_IMODE(os.stat(root).st_mode), dir_mode, root)
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            tc.assertEqual(stat.S_IMODE(os.lstat(p).st_mode), dir_mode, p)
        for f in filenames:
            p = os.path.join(dirpath, f)
            st = os.lstat(p)
            tc.assertTrue(stat.S_ISREG(st.st_mode), f"{p} is not a regular file")
            tc.assertEqual(stat.S_IMODE(st.st_mode), file_mode, p)


def count_opened(stdout, account="test"):
    m = re.search(rf"^{re.escape(account)}: ok: (\d+) mailbox(?:es)? checked, (\d+) opened, "
                  r"(\d+) messages?", stdout, re.MULTILINE)
    if not m:
        raise AssertionError(f"no summary line for {account} in {stdout!r}")
    return tuple(int(x) for x in m.groups())


def examined(stderr):
    """Mailbox arguments (as sent) of every EXAMINE in a -v debug log."""
    return re.findall(r" C: \S+ EXAMINE (.*)$", stderr, re.MULTILINE)


def random_text_body(rng, size, from_lines=True):
    """About size bytes of CRLF text: base64 lines of random data, with a sprinkling
    of lines that mboxrd must quote (and some that it must not)."""
    tricky = [b"From here", b">From there", b">>From far", b"From", b"From:", b" From x",
              b">From", b"From  double"]
    lines, total = [], 0
    raw = rng.randbytes(size * 3 // 4 + 64)
    b64 = base64.b64encode(raw)
    pos = 0
    while total < size:
        if from_lines and rng.random() < 0.02:
            line = rng.choice(tricky)
        else:
            line = b64[pos:pos + 76]
            pos += 76
            if len(line) < 76:
                pos = 0
        lines.append(line)
        total += len(line) + 2
    return b"\r\n".join(lines) + b"\r\n"


def attachment_message(subject, size, seed=1):
    """A multipart message with a base64 attachment of about size bytes (encoded)."""
    rng = random.Random(seed)
    raw = rng.randbytes(size * 3 // 4)
    enc = base64.encodebytes(raw).replace(b"\n", b"\r\n")
    boundary = b"=_mmtest_boundary_%d" % seed
    head = mmtest.make_message(subject, b"", extra_headers=[
        "Return-Path: <big@example.net>"])
    head = head.replace(b"Content-Type: text/plain; charset=utf-8",
                        b"Content-Type: multipart/mixed; boundary=\"" + boundary + b"\"")
    return (head + b"--" + boundary + b"\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
            + b"--" + boundary + b"\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"big.bin\"\r\n\r\n"
            + enc + b"--" + boundary + b"--\r\n")


def start_mboxmirror(*args, env=None):
    """Popen of $MBOXMIRROR args... with captured output (for signals); env: the
    whole environment (default: this process's)."""
    return subprocess.Popen([os.environ["MBOXMIRROR"]] + list(args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=env)


def wait_file_size(path, minimum, proc, timeout=60):
    """Waits until path holds at least minimum bytes; False if proc ended first."""
    def size_or_end():
        try:
            if os.path.getsize(path) >= minimum:
                return "reached"
        except FileNotFoundError:
            pass
        return "ended" if proc.poll() is not None else None
    return mmtest.wait_for(size_or_end, timeout, interval=0.005,
                           what=f"{path} to reach {minimum} bytes") == "reached"


def kill(proc, sig=signal.SIGKILL):
    if proc.poll() is None:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    return out.decode(errors="replace"), err.decode(errors="replace")
