"""Authentication and TLS: wrong passwords, untrusted or misnamed certificates, pins,
STARTTLS without fallback, LOGINDISABLED; --probe; exit codes with a failed account
beside a good one; passwords never printed."""

import os
import re
import time
import unittest

import mmtest
import mirror_util as mu


class Security(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fx = mmtest.Fixture()

    def setUp(self):
        self.tmp = mmtest.temp_dir(self)

    def user_with_mail(self):
        user, pw = self.fx.new_user("sec")
        offset = self.fx.log_offset()
        self.fx.append(user, pw, "INBOX", mmtest.make_message("hello"))
        # The server logs asynchronously: let this login's lines land before a
        # test takes its own offset, or they would look like mboxmirror's.
        self.fx.wait_log(offset, r"imap\(%s\).*Disconnected" % re.escape(user))
        return user, pw

    def run_account(self, acct, *extra):
        conf = mmtest.write_config(self.tmp, [acct])
        return mmtest.run_mboxmirror("-c", conf, "--once", "-v", *extra, timeout=60)

    def assert_secret_not_printed(self, res, *secrets):
        for s in secrets:
            self.assertNotIn(s, res.stdout)
            self.assertNotIn(s, res.stderr)

    def assert_refused_before_auth(self, offset, user, port):
        """The server logged the connection on port, and no authentication attempt of
        user (auth_verbose logs every attempt with the user name; other tests' lines
        interleave, so the unique user name is what tells)."""
        self.fx.wait_log(offset, r"Disconnected.*lport=%d" % port)
        time.sleep(0.5)
        log = self.fx.log_since(offset)
        # Login and failed-login lines carry user=<name>, auth_verbose lines
        # passwd-file(name,...); our own helper's earlier session may still log
        # its logout as imap(name).
        self.assertNotRegex(log, r"user=<%s>" % re.escape(user))
        self.assertNotRegex(log, r"auth: .*\(%s," % re.escape(user))

    def assert_failed(self, res, pattern):
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertRegex(res.stderr, pattern)
        self.assertIn("test: FAILED", res.stdout)
        self.assertFalse(os.path.exists(mu.mbox_path(self.tmp, "test", "INBOX")))

    # -- authentication --

    def test_wrong_password(self):
        """Exit 1, "authentication failed", and the server saw the attempt."""
        user, pw = self.user_with_mail()
        wrong = "not-" + pw
        offset = self.fx.log_offset()
        res = self.run_account(self.fx.account(self.tmp, user, wrong))
        self.assert_failed(res, r"(?i)authentication failed")
        self.assert_secret_not_printed(res, wrong, pw)
        self.fx.wait_log(offset, r"user=<%s>.*lport=%d" % (re.escape(user), self.fx.imaps_port))

    def test_wrong_password_inline_and_login(self):
        user, pw = self.user_with_mail()
        wrong = "inline-" + pw
        acct = self.fx.account(self.tmp, user, wrong, auth="login")
        del acct["password_file"]
        acct["password"] = wrong
        res = self.run_account(acct)
        self.assert_failed(res, r"(?i)authentication failed")
        self.assert_secret_not_printed(res, wrong, pw)

    def test_right_password_not_printed(self):
        user, pw = self.user_with_mail()
        for auth in ("plain", "login", "auto"):
            with self.subTest(auth=auth):
                acct = self.fx.account(self.tmp, user, pw, name=f"a{auth}", auth=auth)
                res = self.run_account(acct)
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assert_secret_not_printed(res, pw)
                self.assertTrue(os.path.exists(mu.mbox_path(self.tmp, f"a{auth}", "INBOX")))

    # -- certificates --

    def test_untrusted_ca_refused(self):
        user, pw = self.user_with_mail()
        offset = self.fx.log_offset()
        acct = self.fx.account(self.tmp, user, pw, port=self.fx.badca_port)
        res = self.run_account(acct)
        self.assert_failed(res, r"(?i)certificate|TLS")
        self.assertRegex(res.stderr, r"(?i)(not trusted|untrusted|issuer|verif)")
        self.assert_refused_before_auth(offset, user, self.fx.badca_port)
        self.assert_secret_not_printed(res, pw)

    def test_wrong_hostname_refused(self):
        user, pw = self.user_with_mail()
        offset = self.fx.log_offset()
        acct = self.fx.account(self.tmp, user, pw, port=self.fx.wrongname_port)
        res = self.run_account(acct)
        self.assert_failed(res, r"(?i)certificate|TLS")
        self.assertRegex(res.stderr, r"(?i)(name|host)")
        self.assert_refused_before_auth(offset, user, self.fx.wrongname_port)

    def test_pin_mismatch_refused(self):
        user, pw = self.user_with_mail()
        offset = self.fx.log_offset()
        acct = self.fx.account(self.tmp, user, pw, pin_sha256=self.fx.badca_pin)
        res = self.run_account(acct)
        self.assert_failed(res, r"(?i)pin")
        self.assert_refused_before_auth(offset, user, self.fx.imaps_port)

    def test_correct_pin_accepted(self):
        user, pw = self.user_with_mail()
        acct = self.fx.account(self.tmp, user, pw, pin_sha256=self.fx.server_pin)
        res = self.run_account(acct)
        self.assertEqual(res.returncode, 0, res.stderr)
        mu.assert_mirror_exact(self, self.fx, user, pw, "INBOX",
                               mu.mbox_path(self.tmp, "test", "INBOX"))

    # -- STARTTLS and plaintext --

    def test_starttls_required_but_not_offered(self):
        user, pw = self.user_with_mail()
        offset = self.fx.log_offset()
        acct = self.fx.account(self.tmp, user, pw, tls="starttls",
                               port=self.fx.nostarttls_port)
        res = self.run_account(acct)
        self.assert_failed(res, r"(?i)STARTTLS")
        self.assertNotRegex(res.stderr, r" C: \S+ (LOGIN|AUTHENTICATE)")
        self.assert_refused_before_auth(offset, user, self.fx.nostarttls_port)
        self.assert_secret_not_printed(res, pw)

    def test_starttls_works(self):
        user, pw = self.user_with_mail()
        offset = self.fx.log_offset()
        acct = self.fx.account(self.tmp, user, pw, tls="starttls")
        res = self.run_account(acct)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertRegex(res.stderr, r" C: \S+ STARTTLS")
        mu.assert_mirror_exact(self, self.fx, user, pw, "INBOX",
                               mu.mbox_path(self.tmp, "test", "INBOX"))
        log = self.fx.wait_log(offset, r"Login: user=<%s>.*lport=%d.*TLS" %
                               (re.escape(user), self.fx.imap_port))
        self.assertNotRegex(log, r"user=<%s>.*lport=%d.*(?<!TLS), session" %
                            (re.escape(user), self.fx.imap_port))
        self.assert_secret_not_printed(res, pw)

    def test_logindisabled_honoured(self):
        user, pw = self.user_with_mail()
        for auth in ("login", "auto"):
            with self.subTest(auth=auth):
                offset = self.fx.log_offset()
                acct = self.fx.account(self.tmp, user, pw, tls="none", auth=auth,
                                       host=self.fx.logindisabled_host,
                                       port=self.fx.logindisabled_port)
                res = self.run_account(acct)
                self.assert_failed(res, r"LOGINDISABLED")
                self.assertNotRegex(res.stderr, r" C: \S+ (LOGIN|AUTHENTICATE)")
                self.assert_refused_before_auth(offset, user, self.fx.logindisabled_port)
                self.assertNotRegex(self.fx.log_since(offset), r"Plaintext authentication")
                self.assert_secret_not_printed(res, pw)

    def test_plaintext_refused_without_allow(self):
        user, pw = "user1", self.fx.users["user1"]
        acct = self.fx.account(self.tmp, user, pw, tls="none")
        del acct["allow_plaintext"]
        conf = mmtest.write_config(self.tmp, [acct])
        res = mmtest.run_mboxmirror("-c", conf, "--once")
        self.assertEqual(res.returncode, 78, res.stderr)
        self.assertIn("allow_plaintext", res.stderr)

    # -- probe --

    def test_probe_starttls(self):
        user, pw = self.user_with_mail()
        acct = self.fx.account(self.tmp, user, pw, tls="starttls")
        conf = mmtest.write_config(self.tmp, [acct])
        res = mmtest.run_mboxmirror("-c", conf, "--probe", "test", "-v", timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)
        out = res.stdout
        sections = {}
        for m in re.finditer(r"^capabilities ([^:\n]*):\n((?:  .*\n)*)", out, re.MULTILINE):
            sections[m.group(1)] = m.group(2).split()
        self.assertEqual(list(sections), ["before TLS", "after TLS", "after login"], out)
        before, after, login = (sections[k] for k in ("before TLS", "after TLS",
                                                       "after login"))
        # (Dovecot counts loopback as secure, so it offers AUTH=PLAIN before TLS
        # here; the client must not use it: see test_starttls_works.)
        self.assertIn("STARTTLS", before)
        self.assertNotIn("STARTTLS", after)
        self.assertIn("AUTH=PLAIN", after)
        self.assertIn("IDLE", login)
        self.assertTrue(any(c.upper().startswith("IMAP4REV1") for c in login))
        self.assertRegex(out, r"(?m)^greeting: \* OK")
        self.assertLess(out.index("before TLS"), out.index("TLS:"))
        self.assertLess(out.index("TLS:"), out.index("after TLS"))
        self.assert_secret_not_printed(res, pw)

    def test_probe_wrong_password(self):
        user, pw = self.user_with_mail()
        acct = self.fx.account(self.tmp, user, "x" + pw)
        conf = mmtest.write_config(self.tmp, [acct])
        res = mmtest.run_mboxmirror("-c", conf, "--probe", "test", "-v", timeout=60)
        self.assertEqual(res.returncode, 1)
        self.assertRegex(res.stderr, r"(?i)authentication failed")
        self.assert_secret_not_printed(res, pw, "x" + pw)

    # -- exit status --

    def test_failed_account_beside_a_good_one(self):
        good_user, good_pw = self.user_with_mail()
        bad_user, bad_pw = self.user_with_mail()
        good = self.fx.account(self.tmp, good_user, good_pw, name="good")
        bad = self.fx.account(self.tmp, bad_user, "wrong-" + bad_pw, name="bad")
        conf = mmtest.write_config(self.tmp, [bad, good])
        res = mmtest.run_mboxmirror("-c", conf, "--once", "-v")
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertRegex(res.stdout, r"(?m)^bad: FAILED")
        self.assertRegex(res.stdout, r"(?m)^good: ok")
        self.assertRegex(res.stderr, r"(?i)bad.*authentication failed")
        mu.assert_mirror_exact(self, self.fx, good_user, good_pw, "INBOX",
                               mu.mbox_path(self.tmp, "good", "INBOX"))
        self.assertFalse(os.path.exists(mu.mbox_path(self.tmp, "bad", "INBOX")))
        self.assert_secret_not_printed(res, good_pw, bad_pw, "wrong-" + bad_pw)
        # The good one alone: 0.
        res = mmtest.run_mboxmirror("-c", conf, "--once", "-a", "good")
        self.assertEqual(res.returncode, 0, res.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
