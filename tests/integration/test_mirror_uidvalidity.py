"""A mailbox deleted and created again on the server (new UIDVALIDITY): the old mirror
is kept under a name carrying the old UIDVALIDITY, the new one is complete, and a
warning says so (DESIGN.md section 5)."""

import os
import re
import unittest

import mmtest
import mirror_util as mu


class UidValidity(unittest.TestCase):
    def check_recreate(self, box):
        fx = mmtest.Fixture()
        user, pw = fx.new_user("uidv")
        fx.create_mailbox(user, pw, box)
        mk = mmtest.make_message
        fx.append_many(user, pw, box, [mk(f"old {i}", f"From old {i}\r\n") for i in range(4)])
        fx.append(user, pw, "INBOX", mk("inbox"))
        with mmtest.TempDir() as tmp:
            conf = mmtest.write_config(tmp, [fx.account(tmp, user, pw)])
            res = mmtest.run_mboxmirror("-c", conf, "--once")
            self.assertEqual(res.returncode, 0, res.stderr)
            path = mu.mbox_path(tmp, "test", box)
            old_msgs = mu.assert_mirror_exact(self, fx, user, pw, box, path)
            with open(path, "rb") as f:
                old_bytes = f.read()
            inbox_before = mu.snapshot(os.path.join(tmp, "out"))["test/INBOX.mbox"]

            old_uv = fx.uidvalidity(user, pw, box)
            new_uv = fx.recreate_mailbox(user, pw, box)
            self.assertNotEqual(old_uv, new_uv)
            fx.append_many(user, pw, box, [mk(f"new {i}", f"new {i}\r\n") for i in range(3)])

            res = mmtest.run_mboxmirror("-c", conf, "--once")
            self.assertEqual(res.returncode, 0, res.stderr)
            # A warning naming the mailbox and UIDVALIDITY.
            warn = [l for l in res.stderr.splitlines() if "UIDVALIDITY" in l.upper()]
            self.assertTrue(warn, res.stderr)
            self.assertIn("warning", " ".join(warn).lower())
            self.assertIn(str(old_uv), " ".join(warn))
            # The old file, whole, under a name carrying the old UIDVALIDITY, next to
            # the new one (same directory).
            d = os.path.dirname(path)
            base = os.path.basename(path)[:-len(".mbox")]
            kept = [f for f in os.listdir(d) if f != os.path.basename(path)
                    and str(old_uv) in f and f.startswith(base) and not f.endswith(".lock")]
            self.assertEqual(len(kept), 1, os.listdir(d))
            with open(os.path.join(d, kept[0]), "rb") as f:
                mu.assert_bytes_equal(self, f.read(), old_bytes, "kept old mirror")
            self.assertEqual(len(mmtest.read_mbox(os.path.join(d, kept[0]))), len(old_msgs))
            # The new mirror holds the new messages only, complete.
            new_msgs = mu.assert_mirror_exact(self, fx, user, pw, box, path)
            self.assertEqual(len(new_msgs), 3)
            self.assertEqual([e.data for e in mmtest.read_mbox(path)],
                             [mu.read_back(b) for _, _, b in new_msgs])
            self.assertEqual(mu.snapshot(os.path.join(tmp, "out"))["test/INBOX.mbox"],
                             inbox_before)
            mu.assert_modes(self, os.path.join(tmp, "out"))

            # Settled: nothing more happens.
            fx.append(user, pw, box, mk("newer"))
            res = mmtest.run_mboxmirror("-c", conf, "--once", "-v")
            self.assertEqual(res.returncode, 0, res.stderr)
            self.assertNotRegex(res.stderr, r"(?i)uidvalidity changed")
            self.assertEqual(mu.count_opened(res.stdout)[1:], (1, 1))
            mu.assert_mirror_exact(self, fx, user, pw, box, path)
            res = mmtest.run_mboxmirror("-c", conf, "--once")
            self.assertEqual(mu.count_opened(res.stdout)[1:], (0, 0))
            self.assertEqual(len([f for f in os.listdir(d) if str(old_uv) in f]), 1)

    def test_top_level_mailbox(self):
        self.check_recreate("Projects")

    def test_nested_non_ascii_mailbox(self):
        self.check_recreate("Archive/Ärger")

    def test_recreated_empty_keeps_old_and_waits(self):
        """Recreated without messages: the old mirror must not be lost either."""
        fx = mmtest.Fixture()
        user, pw = fx.new_user("uidv")
        fx.create_mailbox(user, pw, "Box")
        fx.append_many(user, pw, "Box", [mmtest.make_message(f"m {i}") for i in range(2)])
        with mmtest.TempDir() as tmp:
            conf = mmtest.write_config(tmp, [fx.account(tmp, user, pw)])
            mmtest.run_mboxmirror("-c", conf, "--once", check=True)
            path = mu.mbox_path(tmp, "test", "Box")
            with open(path, "rb") as f:
                old_bytes = f.read()
            old_uv = fx.uidvalidity(user, pw, "Box")
            fx.recreate_mailbox(user, pw, "Box")
            res = mmtest.run_mboxmirror("-c", conf, "--once")
            self.assertEqual(res.returncode, 0, res.stderr)
            fx.append(user, pw, "Box", mmtest.make_message("after"))
            res = mmtest.run_mboxmirror("-c", conf, "--once")
            self.assertEqual(res.returncode, 0, res.stderr)
            d = os.path.dirname(path)
            kept = [f for f in os.listdir(d) if str(old_uv) in f]
            self.assertEqual(len(kept), 1, os.listdir(d))
            with open(os.path.join(d, kept[0]), "rb") as f:
                mu.assert_bytes_equal(self, f.read(), old_bytes, "kept old mirror")
            mu.assert_mirror_exact(self, fx, user, pw, "Box", path)


if __name__ == "__main__":
    unittest.main(verbosity=2)
