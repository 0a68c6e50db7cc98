"""COMPRESS=DEFLATE (RFC 4978): with compress = yes the whole session after login
runs compressed and the mirror is byte-identical to an uncompressed one; compress =
auto leaves it off on loopback (compressing costs the server more than a local
network saves); compress = no never asks."""

import random
import unittest

import mirror_util as mu
import mmtest


class Compress(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fx = mmtest.Fixture()
        cls.user, cls.pw = cls.fx.new_user("z")
        rng = random.Random(11)
        msgs = [mmtest.make_message(f"z{i}", mu.random_text_body(rng, rng.choice(
            [300, 5000, 60000]))) for i in range(60)]
        msgs.append(mu.attachment_message("big", 3 * 1024 * 1024, seed=3))
        cls.fx.append_many(cls.user, cls.pw, "INBOX", msgs)
        cls.fx.create_mailbox(cls.user, cls.pw, "Lists/zlib")
        cls.fx.append_many(cls.user, cls.pw, "Lists/zlib", msgs[:10])

    def run_with(self, tmp, compress):
        acct = self.fx.account(tmp, self.user, self.pw, compress=compress)
        conf = mmtest.write_config(tmp, [acct])
        return mmtest.run_mboxmirror("-c", conf, "--once", "-v", check=True)

    def test_compressed_mirror_is_exact(self):
        with mmtest.TempDir() as tmp:
            res = self.run_with(tmp, "yes")
            self.assertIn("COMPRESS DEFLATE", res.stderr)
            self.assertIn("compression on", res.stderr)
            for box in ("INBOX", "Lists/zlib"):
                mu.assert_mirror_exact(self, self.fx, self.user, self.pw, box,
                                       mu.mbox_path(tmp, "test", box))
            # An incremental run over a compressed session too.
            self.fx.append(self.user, self.pw, "INBOX", mmtest.make_message("late"))
            res = self.run_with(tmp, "yes")
            self.assertIn("compression on", res.stderr)
            mu.assert_mirror_exact(self, self.fx, self.user, self.pw, "INBOX",
                                   mu.mbox_path(tmp, "test", "INBOX"))

    def test_auto_is_off_on_loopback_and_no_never_asks(self):
        for mode in ("auto", "no"):
            with mmtest.TempDir() as tmp:
                res = self.run_with(tmp, mode)
                self.assertNotIn("COMPRESS DEFLATE", res.stderr, mode)
                mu.assert_mirror_exact(self, self.fx, self.user, self.pw, "INBOX",
                                       mu.mbox_path(tmp, "test", "INBOX"))

    def test_probe_says_compression(self):
        with mmtest.TempDir() as tmp:
            acct = self.fx.account(tmp, self.user, self.pw, compress="yes")
            conf = mmtest.write_config(tmp, [acct])
            res = mmtest.run_mboxmirror("-c", conf, "--probe", "test", check=True)
            self.assertIn("compression: DEFLATE", res.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
