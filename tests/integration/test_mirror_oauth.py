"""XOAUTH2 and OAUTHBEARER: the token from the password source goes in the SASL
initial response (SASL-IR) or after the server's "+"; a refused token comes back as an
error challenge ("+ <base64 JSON>") that wants an empty line before the tagged NO, and
must end as an authentication failure (slow backoff), not a protocol error.  The scripted
server (mirror_fakeimap) plays the provider."""

import base64
import unittest

import mirror_fakeimap as fi
import mmtest

TOKEN = "ya29.token-for-test"
CHALLENGE = base64.b64encode(b'{"status":"401","schemes":"Bearer"}')


def provider(sasl_ir, accept):
    """A started scripted server playing the provider: it offers AUTH=XOAUTH2 and
    AUTH=OAUTHBEARER (and SASL-IR if sasl_ir), takes the client's response (after a
    "+" without SASL-IR), then logs in, or refuses with the error challenge and a
    tagged NO once the client has answered it."""
    srv = fi.FakeImap([])
    srv.caps = b"IMAP4rev1 AUTH=XOAUTH2 AUTH=OAUTHBEARER" + (b" SASL-IR" if sasl_ir
                                                            else b"")

    def authenticate(conn, ctx):
        acts = [] if len(ctx["args"]) > 1 else [b"+ \r\n", ("read",)]
        if accept:
            return acts + [ctx["tag"] + b" OK [CAPABILITY IMAP4rev1] welcome\r\n"]
        return acts + [b"+ " + CHALLENGE + b"\r\n", ("read",),
                       ctx["tag"] + b" NO [AUTHENTICATIONFAILED] Invalid credentials\r\n"]
    srv.hooks["AUTHENTICATE"] = authenticate
    return srv.start()


def initial_response(srv):
    """The decoded SASL response the client sent first (initial or after "+")."""
    args = next(a for v, a in srv.log if v == b"AUTHENTICATE")
    return base64.b64decode(args[1] if len(args) > 1 else srv.reads[0])


class OAuth(unittest.TestCase):
    def run_against(self, mech, sasl_ir, accept, user="alice@example.org"):
        srv = provider(sasl_ir, accept)
        try:
            with mmtest.TempDir() as tmp:
                acct = {"__name__": "test", "host": "127.0.0.1", "port": str(srv.port),
                        "tls": "none", "allow_plaintext": "yes", "user": user,
                        "password_command": f"echo {TOKEN}", "auth": mech,
                        "output": tmp + "/out/test"}
                conf = mmtest.write_config(tmp, [acct], general={"timeout": "10s"})
                res = mmtest.run_mboxmirror("-c", conf, "--once", "-v", timeout=60)
        finally:
            srv.stop()
        self.assertNotIn(TOKEN, res.stdout + res.stderr)
        return srv, res

    def test_refused_token_is_an_authentication_failure(self):
        for mech in ("xoauth2", "oauthbearer"):
            for sasl_ir in (True, False):
                with self.subTest(mech=mech, sasl_ir=sasl_ir):
                    srv, res = self.run_against(mech, sasl_ir, accept=False)
                    self.assertEqual(res.returncode, 1, res.stderr)
                    self.assertIn("FAILED (authentication failed)", res.stdout)
                    self.assertIn("Invalid credentials", res.stderr)
                    # The challenge was answered with an empty line.
                    self.assertEqual(srv.reads[-1], b"")
                    self.assertEqual(srv.errors, [])

    def test_token_in_the_initial_response(self):
        for mech, want in (("xoauth2", b"user=alice@example.org\x01auth=Bearer " +
                            TOKEN.encode() + b"\x01\x01"),
                           ("oauthbearer", b"n,a=alice@example.org,\x01host=127.0.0.1\x01")):
            with self.subTest(mech=mech):
                srv, res = self.run_against(mech, True, accept=True)
                self.assertEqual(res.returncode, 0, res.stderr)
                response = initial_response(srv)
                self.assertTrue(response.startswith(want), response)
                self.assertTrue(response.endswith(b"auth=Bearer " + TOKEN.encode() +
                                                  b"\x01\x01"), response)
                self.assertEqual(srv.errors, [])

    def test_gs2_authzid_is_escaped(self):
        # RFC 7628 3.1 / RFC 5801 4: in "a=" ',' is "=2C" and '=' is "=3D", or the
        # server reads the header wrong ("a=x" and a bogus attribute "y@z" here).
        srv, res = self.run_against("oauthbearer", True, accept=True,
                                    user="tech,ops=x@example.org")
        self.assertEqual(res.returncode, 0, res.stderr)
        response = initial_response(srv)
        self.assertTrue(response.startswith(b"n,a=tech=2Cops=3Dx@example.org,\x01host="),
                        response)


if __name__ == "__main__":
    unittest.main(verbosity=2)
