"""A state directory that knows nothing of an output that holds a mirror (the state was
lost, or the command runs with another state_dir than the service): the sync stops
with an error naming the file and the state directory used, and changes nothing: no
file renamed, nothing downloaded again.  With the right state it goes on as before."""

import os
import unittest

import mirror_util as mu
import mmtest


class UnknownState(unittest.TestCase):
    def setUp(self):
        self.fx = mmtest.Fixture()
        self.user, self.pw = self.fx.new_user("unknown")
        self.fx.create_mailbox(self.user, self.pw, "Sent")
        for i in range(2):
            self.fx.append(self.user, self.pw, "INBOX", mmtest.make_message(f"in {i}"))
        self.fx.append(self.user, self.pw, "Sent", mmtest.make_message("sent"))
        self.tmpdir = mmtest.TempDir()
        self.tmp = self.tmpdir.__enter__()
        self.acct = self.fx.account(self.tmp, self.user, self.pw)

    def tearDown(self):
        self.tmpdir.__exit__(None, None, None)

    def conf(self, state):
        return mmtest.write_config(self.tmp, [self.acct], filename=f"{state}.ini",
                                   general={"state_dir": os.path.join(self.tmp, state)})

    def test_other_state_dir_stops_and_changes_nothing(self):
        right, wrong = self.conf("right"), self.conf("wrong")
        res = mmtest.run_mboxmirror("-c", right, "--once")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(mu.count_opened(res.stdout)[2], 3)
        out = os.path.join(self.tmp, "out")
        before = mu.snapshot(out)

        res = mmtest.run_mboxmirror("-c", wrong, "--once")
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        wrong_state = os.path.join(self.tmp, "wrong")
        self.assertRegex(res.stderr, r"account test: .*(INBOX|Sent)\.mbox")
        self.assertIn(wrong_state, res.stderr)
        self.assertIn("state_dir", res.stderr)
        self.assertEqual(before, mu.snapshot(out), "the output changed")
        # It said so before a single mailbox was examined.
        res = mmtest.run_mboxmirror("-c", wrong, "--once", "-v")
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertNotIn("EXAMINE", res.stderr)
        self.assertEqual(before, mu.snapshot(out), "the output changed")
        status = mmtest.run_mboxmirror("-c", wrong, "--status")
        self.assertEqual(status.returncode, 1, status.stdout)
        self.assertIn("FAILING", status.stdout)

        # The right state: nothing to fetch, then only what is new.
        res = mmtest.run_mboxmirror("-c", right, "--once")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(mu.count_opened(res.stdout)[2], 0)
        self.fx.append(self.user, self.pw, "INBOX", mmtest.make_message("new"))
        res = mmtest.run_mboxmirror("-c", right, "--once")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(mu.count_opened(res.stdout)[2], 1)
        mu.assert_mirror_exact(self, self.fx, self.user, self.pw, "INBOX",
                               mu.mbox_path(self.tmp, "test", "INBOX"))

    @unittest.skipUnless(os.geteuid() == 0, "needs root")
    def test_root_does_not_write_into_another_users_state(self):
        conf = self.conf("service")
        state = os.path.join(self.tmp, "service")
        os.mkdir(state, 0o700)
        os.chown(state, 4242, 4242)
        for mode in (["--once"], []):
            res = mmtest.run_mboxmirror("-c", conf, *mode, timeout=30)
            self.assertEqual(res.returncode, 1, res.stderr)
            self.assertIn(f"the state directory {state} belongs to uid 4242", res.stderr)
            self.assertEqual(os.listdir(state), [])
        self.assertFalse(os.path.exists(self.acct["output"]))

    def test_empty_output_is_not_a_mirror(self):
        # Empty mbox files and other files hold nothing to lose: a first sync goes on.
        out = self.acct["output"]
        os.makedirs(out, mode=0o700)
        open(os.path.join(out, "INBOX.mbox"), "wb").close()
        with open(os.path.join(out, "README"), "w") as f:
            f.write("my notes\n")
        res = mmtest.run_mboxmirror("-c", self.conf("fresh"), "--once")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(mu.count_opened(res.stdout)[2], 3)
        mu.assert_mirror_exact(self, self.fx, self.user, self.pw, "INBOX",
                               mu.mbox_path(self.tmp, "test", "INBOX"))


if __name__ == "__main__":
    unittest.main()
