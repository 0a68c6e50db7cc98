"""The daemon at scale, in small.

- The descriptor limit: the daemon raises its soft RLIMIT_NOFILE to the hard limit, and
  refuses to start, naming what it needs and LimitNOFILE=, when the push connections
  and sync sessions of its configuration cannot fit under the hard limit.
- TLS session resumption: an account's later connections resume its TLS session (the
  debug line of the handshake ends in "(resumed)"), with its pin still enforced, and a
  wrong pin is refused on every connection.  Against a Dovecot instance of the test's
  own whose imap-login serves many connections per process: the fixture's runs one
  process per connection, each with its own ticket key, so none resumes there.
"""

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import time
import unittest

import mmtest
from faultproxy import closed_port
from test_daemon_basic import DaemonTestCase, binary


def run_limited(conf, soft, hard, log_path, timeout=None):
    """The daemon on conf with RLIMIT_NOFILE soft:hard; a Popen (timeout None) or, once
    it has exited within timeout seconds, its exit status."""
    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "JOURNAL_STREAM")}
    log = open(log_path, "ab")
    proc = subprocess.Popen([binary(), "-c", conf], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log, env=env, preexec_fn=limit)
    log.close()
    if timeout is None:
        return proc
    return proc.wait(timeout)


def accounts(tmp, n, idle):
    """n accounts on a port nothing listens on (the limit is checked before any
    connection)."""
    port = closed_port()
    return [{"__name__": f"a{i:03d}", "host": "127.0.0.1", "port": str(port),
             "user": f"u{i}", "password": "x",
             "output": os.path.join(tmp, "out", f"a{i:03d}"), "idle": idle,
             "interval": "1h"} for i in range(n)]


class TestDescriptorLimit(DaemonTestCase):

    takes_turns = False

    def read(self, path):
        with open(path, errors="replace") as f:
            return f.read()

    def test_refused_when_push_connections_do_not_fit(self):
        conf = mmtest.write_config(self.tmp, accounts(self.tmp, 300, "yes"),
                                   general={"max_connections": "16"})
        log = os.path.join(self.tmp, "refused.log")
        rc = run_limited(conf, 64, 512, log, timeout=30)
        text = self.read(log)
        self.assertEqual(rc, 78, text)
        m = re.search(r"too many accounts for the file descriptor limit: 300 push "
                      r"connections \(idle = yes\) and max_connections = 16 need (\d+) "
                      r"descriptors, but RLIMIT_NOFILE allows 512; raise it "
                      r"\(LimitNOFILE=(\d+) or more in the service unit", text)
        self.assertIsNotNone(m, text)
        needed = int(m.group(1))
        self.assertEqual(int(m.group(2)), needed)
        # At least a descriptor per push connection and one per session.
        self.assertGreater(needed, 512)
        self.assertGreaterEqual(needed, 300 + 16)
        self.assertIn("set idle = no on some accounts", text)
        # Nothing was started: no state for any account.
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "state", "a000")))

    def test_soft_limit_raised_to_hard(self):
        # The same accounts polling fit in 512 once the soft limit of 64 is raised.
        conf = mmtest.write_config(self.tmp, accounts(self.tmp, 300, "no"),
                                   general={"max_connections": "16"})
        log = os.path.join(self.tmp, "raised.log")
        proc = run_limited(conf, 64, 512, log)
        try:
            mmtest.wait_for(lambda: "running: 300 accounts" in self.read(log)
                            or proc.poll() is not None, 20, what="the daemon's start")
            text = self.read(log)
            self.assertIsNone(proc.poll(), text)
            self.assertIn("file descriptor limit raised from 64 to 512", text)
            self.assertRegex(text, r"file descriptors: \d+ needed \(0 push connections, "
                                   r"16 sync sessions x 12, \d+ for the process, \d+ "
                                   r"spare\), limit 512")
            with open(f"/proc/{proc.pid}/limits") as f:
                self.assertRegex(f.read(), r"Max open files\s+512\s+512\s")
        finally:
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(15), 0, self.read(log))


class ResumingDovecot:
    """A Dovecot instance sharing the fixture's users and certificate, with imap-login
    in high-performance mode (one process for every connection), on a port of its
    own.  stop.sh stops it with the fixture if the test could not."""

    def __init__(self, fx):
        self.fx = fx
        root = os.path.dirname(fx.mail_root)
        tag = f"resume{os.getpid()}"
        self.run_dir = os.path.join(root, "run", tag)
        self.state_dir = os.path.join(root, "state", tag)
        os.makedirs(self.run_dir, exist_ok=True)
        os.makedirs(self.state_dir, exist_ok=True)
        os.chmod(self.run_dir, 0o755)
        self.port = closed_port()
        self.conf = os.path.join(fx.dir, f"{tag}.conf")
        ssl = os.path.join(fx.dir, "ssl")
        with open(self.conf, "w") as f:
            f.write(f"""# mboxmirror test: TLS resumption (test_daemon_scale.py)
!include {fx.dir}/common.conf
instance_name = mmtest-{tag}
base_dir = {self.run_dir}
state_dir = {self.state_dir}
listen = 127.0.0.1
ssl = required
disable_plaintext_auth = yes
ssl_cert = <{ssl}/server.pem
ssl_key = <{ssl}/server-key.pem
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {self.port}
    ssl = yes
  }}
  service_count = 0
  process_min_avail = 1
  process_limit = 1
}}
""")
        self.dovecot = shutil.which("dovecot") or "/usr/sbin/dovecot"
        # Its output to a file: the daemon would keep a pipe of ours open.
        self.startup_log = os.path.join(fx.dir, f"startup-{tag}.log")
        with open(self.startup_log, "wb") as out:
            rc = subprocess.run([self.dovecot, "-c", self.conf], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out, timeout=30).returncode
        if rc != 0:
            with open(self.startup_log, errors="replace") as f:
                why = f.read()
            self.stop()
            raise AssertionError(f"the resuming instance did not start ({rc}): {why}")

        def accepts():
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return True
            except OSError:
                return False
        mmtest.wait_for(accepts, 10, interval=0.05, what="the resuming instance")

    def stop(self):
        subprocess.run([self.dovecot, "-c", self.conf, "stop"], capture_output=True,
                       timeout=30)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        for path in (self.conf, self.startup_log):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


class TestTlsResumption(DaemonTestCase):

    takes_turns = False

    def test_reconnects_resume_and_pin_still_holds(self):
        fx = self.fx
        server = ResumingDovecot(fx)
        self.addCleanup(server.stop)
        good, user, password = self.new_account(
            "resume", port=str(server.port), idle="no", interval="1s",
            pin_sha256=fx.server_pin)
        fx.append(user, password, "INBOX", mmtest.make_message("before"))
        badpin, _, _ = self.new_account(
            "badpin", port=str(server.port), idle="no", pin_sha256=fx.badca_pin)
        conf = mmtest.write_config(self.tmp, [good, badpin], general={
            "retry_min": "1s", "retry_max": "1s"})
        d = self.daemon(conf)
        handshake = (r"^.*account {}: TLS1\.[23] / \S+ with 127\.0\.0\.1:"
                     + str(server.port) + r"( \(resumed\))?$")
        lines = d.wait_log(handshake.format("resume"), count=3, timeout=30)
        resumed = [m.group(1) is not None for m in lines]
        # The first is a full handshake; the later ones resume it, or its successor.
        self.assertFalse(resumed[0], d.tail())
        self.assertTrue(all(resumed[1:3]), d.tail())
        # Synced over the resumed sessions, too.
        d.wait_log(r"account resume: .*1 new message", timeout=10)
        # The wrong pin is refused every time, never resumed into.
        d.wait_log(r"account badpin: .*public key pin mismatch", count=2, timeout=30)
        self.assertNotRegex(d.log(), re.compile(handshake.format("badpin"), re.M))
        # A message arriving later comes over a resumed session.
        off = d.log_offset()
        fx.append(user, password, "INBOX", mmtest.make_message("after"))
        d.wait_log(r"account resume: .*1 new message", since=off, timeout=15)
        self.assertRegex(d.log_since(off), re.compile(handshake.format(
            "resume").replace(r"( \(resumed\))?$", r" \(resumed\)$"), re.M))


if __name__ == "__main__":
    unittest.main(verbosity=2)
