"""Helpers for mboxmirror integration tests against the Dovecot fixture.

The fixture (tests/dovecot/start.sh) is started by ctest; a test finds it through
$MM_DOVECOT_ENV and the binary under test through $MBOXMIRROR.  A typical test:

    import unittest, mmtest

    class T(unittest.TestCase):
        def test_sync(self):
            fx = mmtest.Fixture()
            user, password = fx.new_user()
            fx.create_mailbox(user, password, "Archive/Ärger")
            uid = fx.append(user, password, "INBOX", mmtest.make_message("hello"))
            with mmtest.TempDir() as tmp:
                conf = mmtest.write_config(tmp, [fx.account(tmp, user, password)])
                res = mmtest.run_mboxmirror("-c", conf, "--once")
                self.assertEqual(res.returncode, 0, res.stderr)
                entries = mmtest.read_mbox(f"{tmp}/out/test/INBOX.mbox")

    if __name__ == "__main__":
        unittest.main(verbosity=2)

Messages are bytes with CRLF line ends, as a server stores them.  Mailbox names are
given as people read them (UTF-8, "/" as separator); the helpers encode them to modified
UTF-7 for IMAP.
"""

import base64
import ctypes
import email.utils
import fcntl
import imaplib
import itertools
import mailbox
import os
import random
import re
import shlex
import shutil
import ssl
import subprocess
import tempfile
import time
import unittest

__all__ = [
    "Fixture", "TempDir", "MboxEntry", "make_message", "mutf7_encode", "mutf7_decode",
    "write_config", "run_mboxmirror", "read_mbox", "mbox_escape_entry", "wait_for",
    "private_mount_namespace", "mount", "umount",
]

_counter = itertools.count(1)


def read_env(path=None):
    """The fixture's env file as a dict (shell quoting undone)."""
    path = path or os.environ.get("MM_DOVECOT_ENV")
    if not path:
        raise RuntimeError("MM_DOVECOT_ENV is not set: run through ctest, or point it "
                           "at the env file written by tests/dovecot/start.sh")
    env = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, value = line.split("=", 1)
            parts = shlex.split(value)
            env[key] = parts[0] if parts else ""
    return env


# ---- modified UTF-7 (RFC 3501 section 5.1.3) -------------------------------------------

def mutf7_encode(name):
    """UTF-8 mailbox name -> modified UTF-7 (str of ASCII)."""
    out, pending = [], []

    def flush():
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            b64 = base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",")
            out.append("&" + b64 + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def mutf7_decode(name):
    """Modified UTF-7 -> str."""
    def repl(m):
        body = m.group(1)
        if body == "":
            return "&"
        b64 = body.replace(",", "/")
        b64 += "=" * (-len(b64) % 4)
        return base64.b64decode(b64).decode("utf-16-be")
    return re.sub(r"&([A-Za-z0-9+,]*)-", repl, name)


def _quote(s):
    """An IMAP quoted string for imaplib (which sends arguments as given)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(typ, data, what):
    if typ != "OK":
        raise RuntimeError(f"{what}: {typ} {data!r}")
    return data


# ---- the fixture -----------------------------------------------------------------------

class Fixture:
    """The running Dovecot fixture: ports, files, users, and mail operations.

    Attributes: host, imaps_port, imap_port (STARTTLS offered), nostarttls_port,
    logindisabled_host, logindisabled_port, badca_port, wrongname_port,
    wrongname_hostname, penalty_port, ca_file, badca_file, server_pin, badca_pin, wrongname_pin,
    mail_root, log_path, users ({name: password} of the fixed users user1..user5),
    env (the raw dict).
    """

    def __init__(self, env_path=None):
        e = self.env = read_env(env_path)
        self.dir = e["FIXTURE_DIR"]
        self.host = e["HOST"]
        self.imaps_port = int(e["IMAPS_PORT"])
        self.imap_port = int(e["IMAP_PORT"])
        self.nostarttls_port = int(e["NOSTARTTLS_PORT"])
        self.logindisabled_host = e["LOGINDISABLED_HOST"]
        self.logindisabled_port = int(e["LOGINDISABLED_PORT"])
        self.badca_port = int(e["BADCA_PORT"])
        self.wrongname_port = int(e["WRONGNAME_PORT"])
        self.wrongname_hostname = e["WRONGNAME_HOSTNAME"]
        # Implicit TLS with Dovecot's authentication penalty on (off elsewhere).
        self.penalty_port = int(e["PENALTY_PORT"])
        self.ca_file = e["CA_FILE"]
        self.badca_file = e["BADCA_FILE"]
        self.server_pin = e["SERVER_PIN_SHA256"]
        self.badca_pin = e["BADCA_PIN_SHA256"]
        self.wrongname_pin = e["WRONGNAME_PIN_SHA256"]
        self.mail_root = e["MAIL_ROOT"]
        self.log_path = e["DOVECOT_LOG"]
        self.doveadm_cmd = shlex.split(e["DOVEADM"])
        self.adduser_cmd = shlex.split(e["ADDUSER"])
        self.users = dict(u.split(":", 1) for u in e["USERS"].split())

    # -- users and connections --

    def add_user(self, name, password):
        """Adds a user to the passwd-file (usable at once)."""
        subprocess.run(self.adduser_cmd + [name, password], check=True,
                       stdout=subprocess.DEVNULL)
        self.users[name] = password

    def new_user(self, prefix="t"):
        """A fresh user with an empty mailbox tree: (name, password).  Tests that run in
        parallel stay out of each other's mail this way.  Taken from the pool of users
        the fixture made before the servers started (no wait); once that is used up, a
        user named prefix... is added (add_user, which waits for the servers)."""
        taken = self._take_pool_user()
        if taken:
            return taken
        n = next(_counter)
        name = f"{prefix}{os.getpid()}x{n}"
        password = f"pw-{name}-{random.randrange(1 << 30):x}"
        self.add_user(name, password)
        return name, password

    def _take_pool_user(self):
        """The next untaken (name, password) of the fixture's pool, or None.  The
        counter file is locked, so concurrent tests never take the same user."""
        pool, counter = self.env.get("USER_POOL"), self.env.get("USER_POOL_NEXT")
        if not pool or not counter:
            return None
        with open(counter, "r+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            n = int(f.read().strip() or 0)
            with open(pool, encoding="utf-8") as p:
                lines = p.read().splitlines()
            if n >= len(lines):
                return None
            f.seek(0)
            f.write(f"{n + 1}\n")
            f.truncate()
        name, password = lines[n].split(":", 1)
        self.users[name] = password
        return name, password

    def ssl_context(self, cafile=None):
        """A verifying client context trusting our test CA (or cafile)."""
        return ssl.create_default_context(cafile=cafile or self.ca_file)

    def imap(self, user, password):
        """A logged-in imaplib connection over implicit TLS (verified).  Use as a
        context manager, or call logout()."""
        conn = imaplib.IMAP4_SSL(self.host, self.imaps_port, ssl_context=self.ssl_context(),
                                 timeout=30)
        _check(*conn.login(user, password), "LOGIN")
        return conn

    # -- mailboxes --

    def create_mailbox(self, user, password, name):
        """Creates a mailbox (parents as needed).  name is UTF-8 with "/" as separator."""
        with self.imap(user, password) as c:
            _check(*c.create(_quote(mutf7_encode(name))), f"CREATE {name}")

    def delete_mailbox(self, user, password, name):
        with self.imap(user, password) as c:
            _check(*c.delete(_quote(mutf7_encode(name))), f"DELETE {name}")

    def list_mailboxes(self, user, password):
        """Selectable and \\Noselect mailbox names, decoded to UTF-8."""
        with self.imap(user, password) as c:
            data = _check(*c.list(), "LIST")
        names = []
        for line in data:
            m = re.match(rb'\(([^)]*)\) (?:"[^"]*"|NIL) (.*)$', line)
            raw = m.group(2).decode("ascii")
            if raw.startswith('"'):
                raw = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            names.append(mutf7_decode(raw))
        return names

    def uidvalidity(self, user, password, name):
        with self.imap(user, password) as c:
            data = _check(*c.status(_quote(mutf7_encode(name)), "(UIDVALIDITY)"), "STATUS")
        return int(re.search(rb"UIDVALIDITY (\d+)", data[0]).group(1))

    def recreate_mailbox(self, user, password, name):
        """Deletes and creates name again: the messages go, the UIDVALIDITY changes.
        Returns the new UIDVALIDITY."""
        old = self.uidvalidity(user, password, name)
        self.delete_mailbox(user, password, name)
        while True:
            self.create_mailbox(user, password, name)
            new = self.uidvalidity(user, password, name)
            if new != old:
                return new
            # Dovecot derives UIDVALIDITY from the clock: same second, try again
            # in the next one.
            second = int(time.time())
            wait_for(lambda: int(time.time()) > second, 2, what="the next second")
            self.delete_mailbox(user, password, name)

    # -- messages --

    def append(self, user, password, mailbox_name, message, flags=(), date=None):
        """APPENDs message (bytes) and returns its UID.  date: INTERNALDATE as a
        Unix time (default now)."""
        return self.append_many(user, password, mailbox_name, [message], flags, date)[0]

    def append_many(self, user, password, mailbox_name, messages, flags=(), date=None):
        """APPENDs every message over one connection; returns their UIDs in order.
        flags (a tuple of flags) and date apply to all; or either is a list with one
        entry (a tuple of flags, a Unix time) per message.  Line ends become CRLF, as
        imaplib's append() makes them.  The APPENDs are pipelined (LITERAL+), a window
        at a time: thousands of messages take seconds, not one round trip each."""
        n = len(messages)
        per_msg = (isinstance(flags, list) and len(flags) == n
                   and not any(isinstance(f, str) for f in flags))
        flag_list = flags if per_msg else [flags] * n
        date_list = date if isinstance(date, list) else [date] * n
        if len(date_list) != n:
            raise ValueError("one date per message, or one for all")
        box = _quote(mutf7_encode(mailbox_name)).encode()
        commands = []
        for msg, fl, dt in zip(messages, flag_list, date_list):
            args = [box]
            if fl:
                args.append(("(" + " ".join(fl) + ")").encode())
            args.append(imaplib.Time2Internaldate(
                dt if dt is not None else time.time()).encode())
            msg = imaplib.MapCRLF.sub(b"\r\n", msg)
            commands.append(b" ".join(args) + b" {%d+}\r\n" % len(msg) + msg + b"\r\n")
        uids = []
        with self.imap(user, password) as c:
            # Small enough that the server's answers to a window fit in the socket
            # buffers while we still send.
            window = 64
            for start in range(0, n, window):
                tags = [b"mmA%d" % i for i in range(start, min(n, start + window))]
                c.send(b"".join(t + b" APPEND " + cmd
                                for t, cmd in zip(tags, commands[start:])))
                done = {}
                while len(done) < len(tags):
                    line = c.readline()
                    if not line:
                        raise RuntimeError(f"APPEND {mailbox_name}: connection closed")
                    tag, _, rest = line.partition(b" ")
                    if tag in tags:
                        done[tag] = rest
                for t in tags:
                    m = re.match(rb"OK \[APPENDUID \d+ (\d+)\]", done[t])
                    if not m:
                        raise RuntimeError(f"APPEND {mailbox_name}: {done[t]!r}")
                    uids.append(int(m.group(1)))
        return uids

    def deliver(self, user, mailbox_name, message):
        """Saves message with `doveadm save`, as local delivery would (no IMAP)."""
        self.doveadm("save", "-u", user, "-m", mailbox_name, input=message)

    def flags(self, user, password, mailbox_name):
        """{uid: set of flags} of every message, read with EXAMINE (changes nothing)."""
        with self.imap(user, password) as c:
            _check(*c.select(_quote(mutf7_encode(mailbox_name)), readonly=True), "EXAMINE")
            typ, data = c.uid("FETCH", "1:*", "(FLAGS)")
            _check(typ, data, "UID FETCH")
        out = {}
        for item in data:
            if not item:
                continue
            line = item if isinstance(item, bytes) else item[0]
            m_uid = re.search(rb"UID (\d+)", line)
            m_fl = re.search(rb"FLAGS \(([^)]*)\)", line)
            if m_uid and m_fl:
                out[int(m_uid.group(1))] = set(m_fl.group(1).decode().split())
        return out

    def doveadm(self, *args, input=None):
        """Runs doveadm against this fixture; returns stdout (bytes), raises on failure."""
        res = subprocess.run(self.doveadm_cmd + list(args), input=input,
                             capture_output=True, timeout=60)
        if res.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)}: {res.stderr.decode(errors='replace')}")
        return res.stdout

    # -- the server's log --

    def log_offset(self):
        """The current size of the server log: pass it to log_since() later."""
        try:
            return os.path.getsize(self.log_path)
        except FileNotFoundError:
            return 0

    def log_since(self, offset):
        """Server log text written after offset (auth attempts, logins: each login line
        carries lport=<port> and user=<name>)."""
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", errors="replace")

    def wait_log(self, offset, pattern, timeout=10):
        """Waits until the log after offset matches the regular expression pattern (the
        server writes its log asynchronously) and returns that text; raises
        AssertionError on timeout."""
        def matched():
            text = self.log_since(offset)
            return text if re.search(pattern, text) else None
        return wait_for(matched, timeout,
                        what=lambda: f"server log to match {pattern!r}:\n"
                                     f"{self.log_since(offset)}")

    # -- mboxmirror configuration --

    def account(self, tmpdir, user, password, name="test", tls="implicit", **keys):
        """An account section (dict) for user on the matching listener: implicit ->
        imaps port, starttls -> the STARTTLS port, none -> the port without STARTTLS
        (with allow_plaintext = yes).  The password goes into a 0600 file under tmpdir;
        output is tmpdir/out/NAME.  keys override or add config keys."""
        port = {"implicit": self.imaps_port, "starttls": self.imap_port,
                "none": self.nostarttls_port}[tls]
        pw_file = os.path.join(tmpdir, f"{name}.password")
        fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        acct = {"__name__": name, "host": self.host, "port": str(port), "tls": tls,
                "user": user, "password_file": pw_file,
                "output": os.path.join(tmpdir, "out", name)}
        if tls != "none":
            acct["ca_file"] = self.ca_file
        else:
            acct["allow_plaintext"] = "yes"
        acct.update({k: str(v) for k, v in keys.items()})
        return acct


class TempDir:
    """A temporary directory removed on exit, unless $MM_KEEP_TMP is set (then its path
    is printed, for looking at a failure)."""

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="mmtest.")
        return self.path

    def __exit__(self, *exc):
        if os.environ.get("MM_KEEP_TMP"):
            print(f"mmtest: kept {self.path}")
        else:
            shutil.rmtree(self.path, ignore_errors=True)
        return False


def temp_dir(tc):
    """A TempDir for the unittest.TestCase tc, removed when its test ends; returns
    its path."""
    ctx = TempDir()
    path = ctx.__enter__()
    tc.addCleanup(ctx.__exit__, None, None, None)
    return path


def write_password_file(tmpdir, password="secret"):
    """Writes password (and a newline) to tmpdir/pw, mode 0600; returns its path."""
    path = os.path.join(tmpdir, "pw")
    with open(path, "w") as f:
        f.write(password + "\n")
    os.chmod(path, 0o600)
    return path


def write_config(tmpdir, accounts, general=None, filename="mboxmirror.ini"):
    """Writes a config with a [general] section (state_dir under tmpdir, short timeout)
    and one section per account dict (its "__name__" is the section name).  Returns the
    path; the file is 0600."""
    gen = {"state_dir": os.path.join(tmpdir, "state"), "timeout": "20s",
           "log_level": "debug"}
    gen.update(general or {})
    lines = ["[general]"] + [f"{k} = {v}" for k, v in gen.items()]
    for acct in accounts:
        lines += ["", f"[{acct['__name__']}]"]
        lines += [f"{k} = {v}" for k, v in acct.items() if k != "__name__"]
    path = os.path.join(tmpdir, filename)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def run_mboxmirror(*args, timeout=120, env=None, check=False):
    """Runs $MBOXMIRROR args... and returns a CompletedProcess with text stdout/stderr.
    On timeout the process is killed and AssertionError raised with what it printed."""
    binary = os.environ.get("MBOXMIRROR")
    if not binary or not os.access(binary, os.X_OK):
        raise AssertionError("MBOXMIRROR does not name the built mboxmirror binary "
                             f"({binary!r})")
    full_env = dict(os.environ)
    full_env.update(env or {})
    try:
        res = subprocess.run([binary] + list(args), capture_output=True, text=True,
                             errors="replace", timeout=timeout, env=full_env,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"mboxmirror {' '.join(args)} still running after {timeout}s;"
                             f"\nstdout: {e.stdout!r}\nstderr: {e.stderr!r}") from None
    if check and res.returncode != 0:
        raise AssertionError(f"mboxmirror {' '.join(args)} exited {res.returncode}:"
                             f"\n{res.stderr}")
    return res


# ---- waiting ---------------------------------------------------------------------------

def wait_for(predicate, timeout, interval=0.02, what="condition"):
    """Polls predicate() until it returns something true and returns that value; raises
    AssertionError after timeout seconds.  what names the condition in the message (a
    callable is called then, for a message that needs the latest state).  The one way
    tests wait for something to happen: never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            text = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout}s waiting for {text}")
        time.sleep(interval)


# ---- a private mount namespace ---------------------------------------------------------

_CLONE_NEWNS = 0x00020000
_in_private_namespace = False


def private_mount_namespace():
    """Moves this process into a mount namespace of its own (unshare(2), then every
    mount made private), so that mount() below changes nothing outside it: the
    mounts go when the process ends.  Threads started before the call stay in the
    old namespace (call it first); processes started after it see the mounts.
    Raises unittest.SkipTest, saying why, where that is impossible (not root, no
    CAP_SYS_ADMIN in a container)."""
    global _in_private_namespace
    if _in_private_namespace:
        return
    if os.geteuid() != 0:
        raise unittest.SkipTest("a private mount namespace needs root")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        raise unittest.SkipTest(f"unshare(CLONE_NEWNS) failed: {os.strerror(err)}")
    res = subprocess.run(["mount", "--make-rprivate", "/"], capture_output=True,
                         text=True)
    if res.returncode != 0:
        raise unittest.SkipTest(f"mount --make-rprivate / failed: {res.stderr.strip()}")
    _in_private_namespace = True


def mount(*args):
    """mount(8) args... inside the private namespace (private_mount_namespace() first);
    raises AssertionError with mount's message on failure."""
    if not _in_private_namespace:
        raise AssertionError("mount() outside a private mount namespace")
    res = subprocess.run(["mount"] + list(args), capture_output=True, text=True)
    if res.returncode != 0:
        raise AssertionError(f"mount {' '.join(args)}: {res.stderr.strip()}")


def umount(path):
    """Undoes a mount() on path, also while a process still uses it (umount -l: it
    goes from the tree at once), so that path can be removed right after."""
    res = subprocess.run(["umount", "-l", path], capture_output=True, text=True)
    if res.returncode != 0:
        raise AssertionError(f"umount {path}: {res.stderr.strip()}")


# ---- messages and mbox files -----------------------------------------------------------

def make_message(subject, body="Hello.\r\n", sender="alice@example.org",
                 to="bob@example.org", date=None, extra_headers=()):
    """A small RFC 5322 message (bytes, CRLF).  body may be str or bytes."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    hdrs = [f"From: {sender}", f"To: {to}", f"Subject: {subject}",
            "Date: " + email.utils.formatdate(date, localtime=False),
            f"Message-ID: <{next(_counter)}.{os.getpid()}.{random.randrange(1 << 40):x}"
            "@mmtest.invalid>",
            "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    hdrs += list(extra_headers)
    return ("\r\n".join(hdrs) + "\r\n\r\n").encode("utf-8") + body


class MboxEntry:
    """One message read back from a mbox: from_line (str, without "From " and the LF)
    and data (the server's bytes, per DESIGN.md section 4)."""

    def __init__(self, from_line, data):
        self.from_line = from_line
        self.data = data

    def __repr__(self):
        return f"MboxEntry({self.from_line!r}, {len(self.data)} bytes)"


_QUOTED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)
_FROM = re.compile(rb"^(>*From )", re.MULTILINE)


def read_mbox(path):
    """Reads a mboxrd file with Python's mailbox module and undoes the mboxrd
    transformation: drop the From_ line and the final empty line, strip one ">" from
    ^>+From lines, LF to CRLF.  Returns [MboxEntry] in file order.  Each entry must end
    in LF (the writer adds one), which this checks."""
    box = mailbox.mbox(path, create=False)
    try:
        entries = []
        for key in sorted(box.keys()):
            raw = box.get_bytes(key, from_=True)
            nl = raw.index(b"\n")
            from_line, body = raw[:nl], raw[nl + 1:]
            if not from_line.startswith(b"From "):
                raise AssertionError(f"{path}: entry {key} does not start with From_")
            # An empty message is its From_ line alone (then the empty line
            # that ends every entry, which mailbox strips).
            if body and not body.endswith(b"\n"):
                raise AssertionError(f"{path}: entry {key} does not end in LF")
            body = _QUOTED_FROM.sub(rb"\1", body)
            entries.append(MboxEntry(from_line[5:].decode("utf-8", errors="replace"),
                                     body.replace(b"\n", b"\r\n")))
        return entries
    finally:
        box.close()


def mbox_escape_entry(message, from_line):
    """The exact bytes DESIGN.md section 4 prescribes for message (server bytes) under
    from_line ("sender date", without "From "), for byte-for-byte comparisons."""
    body = message.replace(b"\r\n", b"\n")
    body = _FROM.sub(rb">\1", body)
    # An empty message gets no LF: its entry reads back as empty.
    if body and not body.endswith(b"\n"):
        body += b"\n"
    return b"From " + from_line.encode() + b"\n" + body + b"\n"
