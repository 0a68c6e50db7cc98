"""XOAUTH2 and OAUTHBEARER: the token from the password source goes in the SASL
initial response (SASL-IR) or after the server's "+"; a refused token comes back as an
error challenge ("+ <base64 JSON>") that wants an empty line before the tagged NO, and
must end as an authentication failure (slow backoff), not a protocol error.  A small
scripted server on loopback plays the provider."""

import base64
import socket
import threading
import unittest

import mmtest

TOKEN = "ya29.token-for-test"
CHALLENGE = base64.b64encode(b'{"status":"401","schemes":"Bearer"}')


class OAuthServer:
    """Answers one connection: greeting, AUTHENTICATE, then OK or the error dance."""

    def __init__(self, sasl_ir, accept):
        self.sasl_ir, self.accept = sasl_ir, accept
        self.lines = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        f = conn.makefile("rb")

        def send(b):
            conn.sendall(b)

        def line():
            ln = f.readline()
            self.lines.append(ln)
            return ln.rstrip(b"\r\n")

        caps = b"IMAP4rev1 AUTH=XOAUTH2 AUTH=OAUTHBEARER" + (b" SASL-IR" if self.sasl_ir
                                                            else b"")
        send(b"* OK [CAPABILITY " + caps + b"] provider ready\r\n")
        try:
            cmd = line().split(b" ")
            tag = cmd[0]
            ir = cmd[3] if len(cmd) > 3 else None
            if ir is None:
                send(b"+ \r\n")
                ir = line()
            self.response = base64.b64decode(ir)
            if self.accept:
                send(tag + b" OK [CAPABILITY IMAP4rev1] welcome\r\n")
                while True:
                    ln = line()
                    if not ln:
                        return
                    t = ln.split(b" ")[0]
                    if b"LIST" in ln:
                        send(t + b" OK nothing here\r\n")
                    elif b"LOGOUT" in ln:
                        send(b"* BYE\r\n" + t + b" OK bye\r\n")
                        return
                    else:
                        send(t + b" BAD what\r\n")
            send(b"+ " + CHALLENGE + b"\r\n")
            self.after_challenge = line()
            send(tag + b" NO [AUTHENTICATIONFAILED] Invalid credentials\r\n")
            line()
        finally:
            conn.close()

    def stop(self):
        self.sock.close()


class OAuth(unittest.TestCase):
    def run_against(self, mech, sasl_ir, accept, user="alice@example.org"):
        srv = OAuthServer(sasl_ir, accept)
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
                    self.assertEqual(srv.after_challenge, b"")

    def test_token_in_the_initial_response(self):
        for mech, want in (("xoauth2", b"user=alice@example.org\x01auth=Bearer " +
                            TOKEN.encode() + b"\x01\x01"),
                           ("oauthbearer", b"n,a=alice@example.org,\x01host=127.0.0.1\x01")):
            with self.subTest(mech=mech):
                srv, res = self.run_against(mech, True, accept=True)
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertTrue(srv.response.startswith(want), srv.response)
                self.assertTrue(srv.response.endswith(b"auth=Bearer " + TOKEN.encode() +
                                                      b"\x01\x01"), srv.response)

    def test_gs2_authzid_is_escaped(self):
        # RFC 7628 3.1 / RFC 5801 4: in "a=" ',' is "=2C" and '=' is "=3D", or the
        # server reads the header wrong ("a=x" and a bogus attribute "y@z" here).
        srv, res = self.run_against("oauthbearer", True, accept=True,
                                    user="tech,ops=x@example.org")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertTrue(srv.response.startswith(b"n,a=tech=2Cops=3Dx@example.org,\x01host="),
                        srv.response)


if __name__ == "__main__":
    unittest.main(verbosity=2)
