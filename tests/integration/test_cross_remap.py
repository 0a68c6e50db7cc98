"""A remap meets the features that read the mirror afterwards: --restore uploads each
message of the mirror once, those the server deleted before the remap (kept in the
mbox, indexed under the old UIDVALIDITY) included; --verify finds the mirror whole.  A
mailbox whose old mbox a sync kept aside (recreated on the server, too little of it
there to match): --restore says that file is not restored."""

import collections
import unittest

import mmtest
import test_mirror_remap as tr
import test_restore


class RemapThenRestore(unittest.TestCase):
    # Remap's set-up and helpers, not its tests.
    tearDown = tr.Remap.tearDown
    first_sync, reset, sync = tr.Remap.first_sync, tr.Remap.reset, tr.Remap.sync
    assert_verifies = tr.Remap.assert_verifies

    def setUp(self):
        tr.Remap.setUp(self)
        self.dst = self.fx.new_user()
        self.conf = mmtest.write_config(self.tmp, [
            self.fx.account(self.tmp, self.user, self.pw),
            self.fx.account(self.tmp, *self.dst, name="dst")])

    def test_restore_after_remap_uploads_each_message_once(self):
        old = tr.old_corpus()[:40]
        self.first_sync(old)
        # Renumbered: ten of the old messages gone from the server, five new.
        new = tr.new_corpus(5)
        self.reset(old[10:] + new)
        self.sync()
        self.assert_verifies(deep=True)
        # The mirror keeps all 40 old messages and the 5 new ones.
        in_mirror = collections.Counter(m for m, _ in old + new)

        res = mmtest.run_mboxmirror("-c", self.conf, "--restore", "test", "--to", "dst",
                                    timeout=300)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        got = collections.Counter(body for body, _, _ in
                                  test_restore.fetch_all(self.fx, *self.dst, tr.BOX))
        self.assertEqual(got, in_mirror)
        # Again: nothing more.
        res = mmtest.run_mboxmirror("-c", self.conf, "--restore", "test", "--to", "dst",
                                    timeout=300)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        got = collections.Counter(body for body, _, _ in
                                  test_restore.fetch_all(self.fx, *self.dst, tr.BOX))
        self.assertEqual(got, in_mirror)

    def test_restore_names_a_file_kept_aside(self):
        old = tr.old_corpus()[:10]
        self.first_sync(old)
        # Recreated empty on the server, and synced before any restore.
        self.reset([])
        res = self.sync()
        self.assertIn("mirroring it afresh", res.stderr)
        res = mmtest.run_mboxmirror("-c", self.conf, "--restore", "test", "--to", "dst",
                                    timeout=300)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertRegex(res.stderr, rf"warning: account test: mailbox {tr.BOX}: 1 file "
                         rf"kept aside after a UIDVALIDITY change beside \S+/"
                         rf"{tr.BOX}\.mbox is not restored")
        self.assertIn("0 uploaded", res.stdout)
        # A mailbox without such a file: no word of it.
        res = mmtest.run_mboxmirror("-c", self.conf, "--restore", "dst", "--to", "test",
                                    timeout=300)
        self.assertNotIn("kept aside", res.stderr)


if __name__ == "__main__":
    unittest.main()
