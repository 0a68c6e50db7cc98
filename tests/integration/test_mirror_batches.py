"""More messages than one batch holds: several UID FETCH batches in flight against the
real Dovecot, which runs pipelined fetches side by side (the next batch's messages can
come before the previous one's OK).  Every message exactly once, byte for byte, and a
second run adds nothing."""

import unittest

import mirror_util as mu
import mmtest

COUNT = 4300    # over two batches of 2000 messages


class Batches(unittest.TestCase):
    def test_many_small_messages(self):
        fx = mmtest.Fixture()
        user, pw = fx.new_user("b")
        fx.append_many(user, pw, "INBOX", [
            mmtest.make_message(f"b{i}", f"line {i}\r\nFrom {i}\r\n" * (1 + i % 7))
            for i in range(COUNT)])
        with mmtest.TempDir() as tmp:
            conf = mmtest.write_config(tmp, [fx.account(tmp, user, pw)])
            res = mmtest.run_mboxmirror("-c", conf, "--once", "-v", check=True)
            fetches = [ln for ln in res.stderr.splitlines()
                       if "UID INTERNALDATE RFC822.SIZE FLAGS BODY.PEEK[]" in ln]
            self.assertGreaterEqual(len(fetches), 3, "expected several batches")
            mu.assert_mirror_exact(self, fx, user, pw, "INBOX",
                                   mu.mbox_path(tmp, "test", "INBOX"))
            res = mmtest.run_mboxmirror("-c", conf, "--once", check=True)
            self.assertEqual(mu.count_opened(res.stdout), (1, 0, 0))


if __name__ == "__main__":
    unittest.main(verbosity=2)
