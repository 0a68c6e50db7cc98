"""Protocol corners, end to end against the scripted server (mirror_fakeimap):

- a PREAUTH greeting on a `tls = starttls` account: the session is already
  authenticated, so STARTTLS can no longer be issued; mboxmirror must refuse rather than
  go on in plaintext;
- a server without LITERAL+ (or LITERAL-): every literal mboxmirror sends (a password
  with 8-bit bytes in LOGIN, a mailbox name with 8-bit bytes in STATUS and EXAMINE) is
  synchronising, and its bytes go only after the server's "+"."""

import os
import unittest

import mirror_fakeimap
import mirror_util as mu
import mmtest


def account(tmp, port, name="test", **keys):
    acct = {"__name__": name, "host": "127.0.0.1", "port": str(port), "tls": "none",
            "allow_plaintext": "yes", "user": "u", "password": "p",
            "output": os.path.join(tmp, "out", name)}
    acct.update(keys)
    return acct


class Preauth(unittest.TestCase):

    def test_preauth_on_starttls_account_refused(self):
        srv = mirror_fakeimap.FakeImap([(b"/", b"INBOX", [mmtest.make_message("x")])])
        srv.start()
        self.addCleanup(srv.stop)
        for caps in (b"IMAP4rev1 STARTTLS", b"IMAP4rev1"):
            with self.subTest(caps=caps), mmtest.TempDir() as tmp:
                srv.hooks["greeting"] = lambda conn, ctx, caps=caps: [
                    b"* PREAUTH [CAPABILITY " + caps + b"] logged in as you\r\n"]
                srv.log.clear()
                acct = account(tmp, srv.port, tls="starttls")
                del acct["allow_plaintext"]
                conf = mmtest.write_config(tmp, [acct])
                res = mmtest.run_mboxmirror("-c", conf, "--once")
                self.assertEqual(res.returncode, 1, res.stderr)
                self.assertRegex(res.stderr, r"error: account test: .*PREAUTH.*"
                                 r"refusing plaintext")
                self.assertRegex(res.stdout, r"^test: FAILED \(TLS error\)")
                # Not one command went out in plaintext, and nothing was written.
                self.assertEqual(srv.log, [])
                self.assertEqual([f for _, _, files in os.walk(tmp) for f in files
                                  if f.endswith(".mbox")], [])
        self.assertEqual(srv.errors, [])


class SynchronisingLiterals(unittest.TestCase):

    def test_literals_wait_for_continuation(self):
        umlaut = "Ärger".encode()           # 8-bit, as a server without UTF8=ACCEPT
        boxes = [(b"/", b"INBOX", [mmtest.make_message("in inbox")]),
                 (b"/", umlaut, [mmtest.make_message("in the 8-bit one")])]
        srv = mirror_fakeimap.FakeImap(boxes)
        srv.caps = b"IMAP4rev1"
        srv.login_caps = b"IMAP4rev1"
        # Long enough for a client that sends before the "+" to show it on loopback.
        srv.literal_hold = 0.3
        srv.start()
        self.addCleanup(srv.stop)
        password = 'pa"ss\\wörd'
        with mmtest.TempDir() as tmp:
            conf = mmtest.write_config(tmp, [account(tmp, srv.port, password=password,
                                                     auth="login")])
            res = mmtest.run_mboxmirror("-c", conf, "--once")
            self.assertEqual(res.returncode, 0, res.stderr)
            self.assertEqual(srv.errors, [])
            # The server took the password and the name whole ...
            self.assertIn((b"LOGIN", [b"u", password.encode()]), srv.log)
            self.assertIn((b"STATUS", [umlaut, b"(UIDVALIDITY UIDNEXT MESSAGES)"]),
                          srv.log)
            self.assertIn((b"EXAMINE", [umlaut]), srv.log)
            # ... each sent as a synchronising literal whose bytes waited for "+".
            sent = {line.split(b" ")[1]: (size, sync, early)
                    for line, size, sync, early in srv.literals}
            self.assertEqual(len(srv.literals), 3, srv.literals)
            self.assertEqual(sorted(sent), [b"EXAMINE", b"LOGIN", b"STATUS"],
                             srv.literals)
            self.assertEqual(sent[b"LOGIN"][0], len(password.encode()))
            self.assertEqual(sent[b"STATUS"][0], len(umlaut))
            self.assertEqual(sent[b"EXAMINE"][0], len(umlaut))
            for verb, (size, sync, early) in sent.items():
                self.assertTrue(sync, f"{verb}: {{n+}} to a server without LITERAL+")
                self.assertEqual(early, b"", f"{verb}: literal bytes sent before the "
                                 "server's continuation")
            # (A name that is not modified UTF-7 keeps its bytes, escaped.)
            for (_, _, msgs), file in zip(boxes, ["INBOX", "%C3%84rger"]):
                mu.assert_mbox_holds(self, mu.mbox_path(tmp, "test", file), msgs)


if __name__ == "__main__":
    unittest.main(verbosity=2)
