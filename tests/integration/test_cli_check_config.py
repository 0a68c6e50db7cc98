"""--check-config refuses what a sync would certainly fail on, each problem one line
"FILE:LINE: [account] key: ..." on stderr (no timestamp, no level: as a compiler
writes them) and exit status 78: a password_file or ca_file that is missing, a
directory or unusable, host = name:port, and two outputs that are one directory
through a symlink.  A good file still passes.  Nothing here contacts a server."""

import os
import unittest

import mmtest


class CheckConfig(unittest.TestCase):
    def setUp(self):
        self.dir = mmtest.temp_dir(self)
        self.pw = mmtest.write_password_file(self.dir)
        self.ca = mmtest.read_env()["CA_FILE"]

    def config(self, *accounts):
        """Writes [general] (lines 1-2) and the accounts, each a list of "key = value"
        lines after its header; returns the path."""
        lines = ["[general]", f"state_dir = {self.dir}/state"]
        for i, body in enumerate(accounts):
            lines += [f"[{chr(ord('a') + i)}]"] + body
        path = os.path.join(self.dir, "mboxmirror.ini")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def account(self, name, **keys):
        """host, user, password_file, output (lines 1-4 after the header), then keys."""
        body = {"host": "127.0.0.1", "user": "u", "password_file": self.pw,
                "output": os.path.join(self.dir, "out", name)}
        body.update(keys)
        return [f"{k} = {v}" for k, v in body.items()]

    def check(self, path, *args, env=None):
        return mmtest.run_mboxmirror("-c", path, "--check-config", *args,
                                     timeout=30, env=env)

    def assert_refused(self, res, *lines):
        """Exit 78, nothing on stdout, and exactly these lines on stderr."""
        self.assertEqual(res.returncode, 78, res.stderr)
        self.assertNotIn("configuration OK", res.stdout)
        self.assertEqual(res.stderr.splitlines(), list(lines))

    def test_good_config_passes(self):
        path = self.config(self.account("a", ca_file=self.ca),
                           self.account("b", host="[::1]"))
        res = self.check(path)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stderr, "")
        self.assertIn("a: u @ 127.0.0.1:993 implicit TLS", res.stdout)
        self.assertIn("b: u @ [::1]:993 implicit TLS", res.stdout)
        self.assertTrue(res.stdout.endswith(f"configuration OK: 2 accounts in {path}\n"),
                        res.stdout)

    def test_password_file_missing(self):
        missing = os.path.join(self.dir, "absent")
        path = self.config(self.account("a", password_file=missing))
        self.assert_refused(self.check(path), f"{path}:6: [a] password_file: {missing}: "
                            "No such file or directory")

    def test_password_file_directory(self):
        path = self.config(self.account("a", password_file=self.dir))
        self.assert_refused(self.check(path),
                            f"{path}:6: [a] password_file: {self.dir}: is a directory")

    @unittest.skipIf(os.geteuid() == 0, "root reads a file of mode 000")
    def test_password_file_unreadable(self):
        os.chmod(self.pw, 0)
        path = self.config(self.account("a"))
        self.assert_refused(self.check(path), f"{path}:6: [a] password_file: {self.pw}: "
                            "Permission denied")

    def test_ca_file_missing(self):
        missing = os.path.join(self.dir, "ca.pem")
        path = self.config(self.account("a", ca_file="ca.pem"))
        self.assert_refused(self.check(path), f"{path}:8: [a] ca_file: {missing}: "
                            "No such file or directory")

    def test_ca_file_not_pem(self):
        bad = os.path.join(self.dir, "bad.pem")
        with open(bad, "w") as f:
            f.write("-----BEGIN NOTHING-----\nnot a certificate\n")
        path = self.config(self.account("a", ca_file=bad))
        self.assert_refused(self.check(path),
                            f"{path}:8: [a] ca_file: {bad}: no PEM certificate in it")

    def test_only_selected_accounts_are_checked(self):
        missing = os.path.join(self.dir, "absent")
        path = self.config(self.account("a"), self.account("b", password_file=missing))
        res = self.check(path, "-a", "a")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assert_refused(self.check(path, "-a", "b"),
                            f"{path}:11: [b] password_file: {missing}: "
                            "No such file or directory")

    def test_every_problem_reported(self):
        missing = os.path.join(self.dir, "absent")
        path = self.config(self.account("a", password_file=missing),
                           self.account("b", ca_file=self.dir))
        self.assert_refused(
            self.check(path),
            f"{path}:6: [a] password_file: {missing}: No such file or directory",
            f"{path}:13: [b] ca_file: {self.dir}: is a directory")

    def test_host_with_port(self):
        path = self.config(self.account("a", host="127.0.0.1:42039"))
        line = (f'{path}:4: [a] host: "127.0.0.1:42039" holds a port; '
                "write host = 127.0.0.1 and port = 42039")
        self.assert_refused(self.check(path), line)
        # A run refuses it the same way, before contacting anything.
        for mode in (["--once"], ["--status"]):
            with self.subTest(mode=mode):
                res = mmtest.run_mboxmirror("-c", path, *mode, timeout=30)
                self.assertEqual(res.returncode, 78, res.stderr)
                self.assertEqual(res.stderr.splitlines(), [line])

    def test_outputs_one_directory_through_symlink(self):
        real = os.path.join(self.dir, "mail")
        alias = os.path.join(self.dir, "alias")
        os.mkdir(real)
        os.symlink(real, alias)
        path = self.config(self.account("a", output=real),
                           self.account("b", output=alias))
        self.assert_refused(
            self.check(path),
            f'{path}:12: [b] output: "{alias}" is also the output of [a] (line 7) '
            f"(resolved: {os.path.realpath(real)} and {os.path.realpath(real)}); "
            "each account needs a directory of its own")

    def test_dotdot_beside_is_not_inside(self):
        path = self.config(self.account("a", output="~/mail/a"),
                           self.account("b", output="~/mail/a/../b"))
        res = self.check(path, env={"HOME": self.dir})
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn(f"-> {self.dir}/mail/a/../b\n", res.stdout)

    def test_warnings_name_their_level(self):
        os.chmod(self.pw, 0o644)
        path = self.config(self.account("a"))
        res = self.check(path)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stderr.splitlines(), [
            f"warning: {path}:6: [a] password_file: {self.pw} is readable by others "
            f"(mode 0644); run chmod 600 {self.pw}"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
