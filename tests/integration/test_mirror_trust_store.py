"""A TLS account without ca_file verifies the server against the system trust store
(DESIGN.md section 2: "default: the system trust store").

The machine is left alone: this process moves into a mount namespace of its own
(mmtest.private_mount_namespace) and bind-mounts the fixture's CA over the bundle GnuTLS
reads as the system store; mboxmirror, started from here, sees it, nothing else does."""

import os
import unittest

import mirror_util as mu
import mmtest

# The file GnuTLS on Debian is built to read as the system trust store
# (--with-default-trust-store-file).
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


class SystemTrustStore(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not os.path.isfile(SYSTEM_BUNDLE):
            raise unittest.SkipTest(f"no system CA bundle at {SYSTEM_BUNDLE}")
        mmtest.private_mount_namespace()
        cls.fx = mmtest.Fixture()

    def run_account(self, tmp, user, password, port, name):
        acct = self.fx.account(tmp, user, password, name=name, port=str(port))
        del acct["ca_file"]
        conf = mmtest.write_config(tmp, [acct], filename=f"{name}.ini")
        return mmtest.run_mboxmirror("-c", conf, "--once", timeout=60)

    def test_no_ca_file_uses_system_store(self):
        fx = self.fx
        user, password = fx.new_user()
        msg = mmtest.make_message("trusted through the system store")
        fx.append(user, password, "INBOX", msg)
        with mmtest.TempDir() as tmp:
            # The real system store does not know the fixture's CA: refused.
            res = self.run_account(tmp, user, password, fx.imaps_port, "before")
            self.assertEqual(res.returncode, 1, res.stderr)
            self.assertRegex(res.stdout, r"^before: FAILED \(TLS error\)")
            self.assertRegex(res.stderr, r"error: account before: certificate verification "
                             r"failed for 127\.0\.0\.1: signer not found")
            self.assertFalse(os.path.exists(mu.mbox_path(tmp, "before", "INBOX")))

            # With the fixture's CA as the system bundle: verified, and mirrored.
            mmtest.mount("--bind", fx.ca_file, SYSTEM_BUNDLE)
            self.addCleanup(mmtest.umount, SYSTEM_BUNDLE)
            res = self.run_account(tmp, user, password, fx.imaps_port, "system")
            self.assertEqual(res.returncode, 0, res.stderr)
            mu.assert_mbox_holds(self, mu.mbox_path(tmp, "system", "INBOX"), [msg])

            # Still verifying: a certificate from another CA is refused ...
            res = self.run_account(tmp, user, password, fx.badca_port, "badca")
            self.assertEqual(res.returncode, 1, res.stderr)
            self.assertRegex(res.stderr, r"error: account badca: certificate verification "
                             r"failed for 127\.0\.0\.1: signer not found")
            # ... and so is one from the trusted CA issued to another name.
            res = self.run_account(tmp, user, password, fx.wrongname_port, "wrongname")
            self.assertEqual(res.returncode, 1, res.stderr)
            self.assertRegex(res.stderr, r"error: account wrongname: certificate "
                             r"verification failed for 127\.0\.0\.1: hostname does not "
                             r"match")
            for name in ("badca", "wrongname"):
                self.assertFalse(os.path.exists(mu.mbox_path(tmp, name, "INBOX")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
