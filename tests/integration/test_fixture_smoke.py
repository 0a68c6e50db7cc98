"""The Dovecot fixture is what the other integration tests take it to be: each listener
offers what it should, certificates verify (or fail) as they should, and the mmtest
helpers do what they say."""

import imaplib
import os
import re
import socket
import ssl
import subprocess
import threading
import time
import unittest

import mmtest


def gnutls_cli_greeting(port, cafile, host="127.0.0.1"):
    """(exit status, output) of a gnutls-cli session that waits for the greeting, then
    logs out.  A failed verification ends gnutls-cli before any greeting."""
    proc = subprocess.Popen(["gnutls-cli", "--x509cafile", cafile, "-p", str(port), host],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    timer = threading.Timer(30, proc.kill)
    timer.start()
    out = b""
    try:
        for line in proc.stdout:
            out += line
            if line.startswith(b"* OK"):
                proc.stdin.write(b"a1 LOGOUT\r\n")
                proc.stdin.flush()
                break
        rest = proc.stdout.read()
        out += rest
        return proc.wait(), out.decode(errors="replace")
    finally:
        timer.cancel()
        proc.stdin.close()
        proc.stdout.close()


class Listeners(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fx = mmtest.Fixture()

    def test_imaps_verified_handshake_gnutls_cli(self):
        status, out = gnutls_cli_greeting(self.fx.imaps_port, self.fx.ca_file)
        self.assertIn("* OK", out)
        self.assertIn("a1 OK", out)
        self.assertEqual(status, 0, out)

    def test_imaps_login_user1(self):
        conn = imaplib.IMAP4_SSL(self.fx.host, self.fx.imaps_port,
                                 ssl_context=self.fx.ssl_context(), timeout=30)
        with conn:
            typ, _ = conn.login("user1", self.fx.users["user1"])
            self.assertEqual(typ, "OK")
            typ, data = conn.capability()
            caps = data[0].split()
            self.assertIn(b"IDLE", caps)
            if os.path.exists("/usr/lib/dovecot/modules/lib30_imap_zlib_plugin.so"):
                self.assertIn(b"COMPRESS=DEFLATE", caps)

    def test_imaps_wrong_password_refused(self):
        conn = imaplib.IMAP4_SSL(self.fx.host, self.fx.imaps_port,
                                 ssl_context=self.fx.ssl_context(), timeout=30)
        with self.assertRaises(imaplib.IMAP4.error):
            conn.login("user1", "not-the-password")
        conn.shutdown()

    def test_no_login_delay_after_a_wrong_password(self):
        # Tests share 127.0.0.1 and run side by side: one test's wrong password
        # must not hold up the next login from there (Dovecot's auth penalty).
        for _ in range(2):
            conn = imaplib.IMAP4_SSL(self.fx.host, self.fx.imaps_port,
                                     ssl_context=self.fx.ssl_context(), timeout=30)
            with self.assertRaises(imaplib.IMAP4.error):
                conn.login("user2", "not-the-password")
            conn.shutdown()
        t0 = time.monotonic()
        self.fx.imap("user2", self.fx.users["user2"]).logout()
        self.assertLess(time.monotonic() - t0, 1.5)

    def test_new_users_are_known_at_once(self):
        # new_user() is called by every test: it must not wait for the servers.
        t0 = time.monotonic()
        user, pw = self.fx.new_user()
        self.assertLess(time.monotonic() - t0, 0.5)
        self.fx.imap(user, pw).logout()
        self.assertNotEqual(self.fx.new_user()[0], user)

    def test_starttls_port_offers_starttls(self):
        conn = imaplib.IMAP4(self.fx.host, self.fx.imap_port, timeout=30)
        self.assertIn("STARTTLS", conn.capabilities)
        conn.starttls(ssl_context=self.fx.ssl_context())
        typ, _ = conn.login("user2", self.fx.users["user2"])
        self.assertEqual(typ, "OK")
        conn.logout()

    def test_nostarttls_port_has_no_starttls(self):
        conn = imaplib.IMAP4(self.fx.host, self.fx.nostarttls_port, timeout=30)
        self.assertNotIn("STARTTLS", conn.capabilities)
        self.assertNotIn("LOGINDISABLED", conn.capabilities)
        typ, _ = conn.login("user3", self.fx.users["user3"])
        self.assertEqual(typ, "OK")
        conn.logout()

    def test_logindisabled_port(self):
        offset = self.fx.log_offset()
        conn = imaplib.IMAP4(self.fx.logindisabled_host, self.fx.logindisabled_port,
                             timeout=30)
        self.assertIn("LOGINDISABLED", conn.capabilities)
        self.assertNotIn("STARTTLS", conn.capabilities)
        self.assertFalse([c for c in conn.capabilities if c.startswith("AUTH=")])
        with self.assertRaises(imaplib.IMAP4.error):
            conn.login("user4", self.fx.users["user4"])
        conn.shutdown()
        # The refusal is in the log the tests read, tied to the listener's port.
        self.fx.wait_log(offset, r"Plaintext authentication disabled.*lport=%d"
                         % self.fx.logindisabled_port)

    def test_badca_port_fails_verification(self):
        with self.assertRaises(ssl.SSLCertVerificationError):
            imaplib.IMAP4_SSL(self.fx.host, self.fx.badca_port,
                              ssl_context=self.fx.ssl_context(), timeout=30)
        status, out = gnutls_cli_greeting(self.fx.badca_port, self.fx.ca_file)
        self.assertNotEqual(status, 0, out)
        self.assertNotIn("* OK", out)
        # The chain is the only fault: with the other CA the same port verifies.
        conn = imaplib.IMAP4_SSL(self.fx.host, self.fx.badca_port,
                                 ssl_context=self.fx.ssl_context(self.fx.badca_file),
                                 timeout=30)
        conn.logout()

    def test_wrongname_port_fails_hostname_verification(self):
        with self.assertRaises(ssl.SSLCertVerificationError) as cm:
            imaplib.IMAP4_SSL(self.fx.host, self.fx.wrongname_port,
                              ssl_context=self.fx.ssl_context(), timeout=30)
        self.assertIn("mismatch", str(cm.exception))
        status, out = gnutls_cli_greeting(self.fx.wrongname_port, self.fx.ca_file)
        self.assertNotEqual(status, 0, out)
        # Trusted chain, other name: verifying for that name succeeds.
        ctx = self.fx.ssl_context()
        with ctx.wrap_socket(socket.create_connection(
                (self.fx.host, self.fx.wrongname_port), timeout=30),
                server_hostname=self.fx.wrongname_hostname) as s:
            self.assertTrue(s.recv(100).startswith(b"* OK"))

    def test_pins_are_distinct_base64_sha256(self):
        pins = {self.fx.server_pin, self.fx.badca_pin, self.fx.wrongname_pin}
        self.assertEqual(len(pins), 3)
        for pin in pins:
            self.assertRegex(pin, r"^[A-Za-z0-9+/]{43}=$")


class Helpers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fx = mmtest.Fixture()

    def test_mutf7(self):
        for utf8, wire in [("INBOX", "INBOX"), ("Ärger", "&AMQ-rger"), ("a&b", "a&-b"),
                           ("日本語/メール", "&ZeVnLIqe-/&MOEw,DDr-"), ("~peter/mail/台北",
                                                                    "~peter/mail/&U,BTFw-")]:
            self.assertEqual(mmtest.mutf7_encode(utf8), wire)
            self.assertEqual(mmtest.mutf7_decode(wire), utf8)

    def test_new_user_mailboxes_and_messages(self):
        fx = self.fx
        user, pw = fx.new_user()
        offset = fx.log_offset()
        fx.create_mailbox(user, pw, "Archive/2023")
        fx.create_mailbox(user, pw, "Ärger & Co")
        names = fx.list_mailboxes(user, pw)
        for n in ("INBOX", "Archive", "Archive/2023", "Ärger & Co"):
            self.assertIn(n, names)
        raw = fx.doveadm("mailbox", "list", "-u", user).decode()
        self.assertIn("Ärger & Co", raw)
        fx.wait_log(offset, r"Login: user=<%s>" % re.escape(user))

        m1 = mmtest.make_message("first", "From the start\r\n>From quoted\r\n")
        m2 = mmtest.make_message("second")
        uids = fx.append_many(user, pw, "Archive/2023", [m1, m2], date=1700000000)
        self.assertEqual(uids, [1, 2])
        uid3 = fx.append(user, pw, "Archive/2023", mmtest.make_message("third"),
                         flags=(r"\Seen", r"\Flagged"))
        self.assertEqual(uid3, 3)
        flags = fx.flags(user, pw, "Archive/2023")
        self.assertEqual(set(flags), {1, 2, 3})
        self.assertEqual(flags[3] & {r"\Seen", r"\Flagged"}, {r"\Seen", r"\Flagged"})
        self.assertNotIn(r"\Seen", flags[1])

        fx.deliver(user, "INBOX", mmtest.make_message("delivered"))
        self.assertEqual(len(fx.flags(user, pw, "INBOX")), 1)

        old = fx.uidvalidity(user, pw, "Archive/2023")
        new = fx.recreate_mailbox(user, pw, "Archive/2023")
        self.assertNotEqual(old, new)
        self.assertEqual(fx.flags(user, pw, "Archive/2023"), {})

    def test_mbox_round_trip(self):
        msgs = [mmtest.make_message("a", "From here\r\n>From there\r\n>>From x\r\nFrom\r\n"),
                mmtest.make_message("b", "ends without newline"),
                mmtest.make_message("c", "blank lines at the end\r\n\r\n\r\n"),
                mmtest.make_message("d", b"lone\rcr and \xff bytes\r\n")]
        with mmtest.TempDir() as tmp:
            path = os.path.join(tmp, "x.mbox")
            with open(path, "wb") as f:
                for m in msgs:
                    f.write(mmtest.mbox_escape_entry(m, "MAILER-DAEMON Sat Nov 21 09:05:03 2026"))
            with open(path, "rb") as f:
                text = f.read()
            self.assertIn(b"\n>From here\n>>From there\n>>>From x\nFrom\n", text)
            entries = mmtest.read_mbox(path)
        self.assertEqual(len(entries), 4)
        self.assertEqual(entries[0].from_line, "MAILER-DAEMON Sat Nov 21 09:05:03 2026")
        self.assertEqual(entries[0].data, msgs[0])
        self.assertEqual(entries[1].data, msgs[1] + b"\r\n")  # the writer adds the LF
        self.assertEqual(entries[2].data, msgs[2])
        self.assertEqual(entries[3].data, msgs[3])

    def test_write_config(self):
        with mmtest.TempDir() as tmp:
            acct = self.fx.account(tmp, "user1", "secret1", name="one", tls="starttls",
                                   mailboxes="INBOX, Archive/*")
            path = mmtest.write_config(tmp, [acct], general={"interval": "1m"})
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
            self.assertEqual(os.stat(acct["password_file"]).st_mode & 0o777, 0o600)
            with open(path) as f:
                text = f.read()
            with open(acct["password_file"]) as f:
                self.assertEqual(f.read(), "secret1\n")
        self.assertIn("[one]\n", text)
        self.assertIn(f"port = {self.fx.imap_port}\n", text)
        self.assertIn("tls = starttls\n", text)
        self.assertIn("mailboxes = INBOX, Archive/*\n", text)
        self.assertIn("interval = 1m\n", text)
        self.assertNotIn("secret1", text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
