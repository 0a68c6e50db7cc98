"""The command line of DESIGN.md section 1, end to end: --help, --version and
--check-config (output and exit status), and usage errors (64).  None of them may
touch a server."""

import os
import re
import unittest

import mmtest
from faultproxy import closed_port

SOURCE_ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                            "..", ".."))


def project_version():
    """VERSION of project() in the top CMakeLists.txt."""
    with open(os.path.join(SOURCE_ROOT, "CMakeLists.txt"), encoding="utf-8") as f:
        m = re.search(r"^project\(\s*mboxmirror\s+VERSION\s+([0-9][0-9.]*)", f.read(),
                      re.MULTILINE)
    if not m:
        raise AssertionError("no project(mboxmirror VERSION ...) in CMakeLists.txt")
    return m.group(1)


def account(tmp, name, port, **keys):
    """An account on a port nothing listens on: a run that connected would fail."""
    acct = {"__name__": name, "host": "127.0.0.1", "port": str(port), "tls": "none",
            "allow_plaintext": "yes", "user": f"{name}@example.org", "password": "p",
            "output": os.path.join(tmp, "out", name), "idle": "no", "interval": "5m"}
    acct.update(keys)
    return acct


class Cli(unittest.TestCase):

    def test_help(self):
        for opt in ("--help", "-h"):
            with self.subTest(opt):
                res = mmtest.run_mboxmirror(opt, timeout=30)
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertEqual(res.stderr, "")
                self.assertTrue(res.stdout.startswith("usage: mboxmirror "), res.stdout)
                for word in ("--config FILE", "--once", "--account NAME",
                             "--check-config", "--probe NAME", "--version",
                             "$MBOXMIRROR_CONFIG", "/etc/mboxmirror/mboxmirror.ini",
                             "64", "78"):
                    self.assertIn(word, res.stdout)

    def test_version(self):
        res = mmtest.run_mboxmirror("--version", timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stderr, "")
        self.assertEqual(res.stdout, f"mboxmirror {project_version()}\n")

    def test_usage_errors(self):
        for args, text in ((["--bogus"], "--bogus"),
                           (["--version", "--help"], "cannot be used together"),
                           (["--once", "--check-config"], ""),
                           (["-c"], ""),
                           (["stray"], "")):
            with self.subTest(args=args):
                res = mmtest.run_mboxmirror(*args, timeout=30)
                self.assertEqual(res.returncode, 64, res.stderr)
                self.assertEqual(res.stdout, "")
                self.assertIn(text, res.stderr)
                self.assertIn("mboxmirror --help", res.stderr)

    def test_check_config(self):
        port = closed_port()
        with mmtest.TempDir() as tmp:
            conf = mmtest.write_config(tmp, [
                account(tmp, "one", port),
                account(tmp, "two", port, mailboxes="INBOX, Archive/*",
                        exclude="Trash")])
            res = mmtest.run_mboxmirror("-c", conf, "--check-config", timeout=30)
            self.assertEqual(res.returncode, 0, res.stderr)
            lines = res.stdout.splitlines()
            self.assertEqual(len(lines), 4, res.stdout)
            self.assertEqual(lines[0], f"one: one@example.org @ 127.0.0.1:{port} no TLS "
                             "(plaintext), auth auto, every 5m, no idle, mailboxes "
                             f"\"*\" -> {tmp}/out/one")
            self.assertEqual(lines[1], f"two: two@example.org @ 127.0.0.1:{port} no TLS "
                             "(plaintext), auth auto, every 5m, no idle, mailboxes "
                             f"\"INBOX\",\"Archive/*\" minus \"Trash\" -> {tmp}/out/two")
            self.assertEqual(lines[2], f"state: {tmp}/state (state_dir in [general])")
            self.assertEqual(lines[3], f"configuration OK: 2 accounts in {conf}")
            # -a picks accounts; the file is named also when the environment chose it.
            res = mmtest.run_mboxmirror("--check-config", "-a", "two", timeout=30,
                                        env={"MBOXMIRROR_CONFIG": conf})
            self.assertEqual(res.returncode, 0, res.stderr)
            self.assertEqual(res.stdout.splitlines()[-1],
                             f"configuration OK: 1 account in {conf}")
            self.assertTrue(res.stdout.startswith("two: "), res.stdout)
            # Nothing was written: no state, no output, no connection tried.
            self.assertEqual(sorted(os.listdir(tmp)), ["mboxmirror.ini"])

            # A bad value: exit 78, one error naming file:line, nothing on stdout.
            with open(conf, encoding="utf-8") as f:
                text = f.read().splitlines()
            i = text.index("interval = 5m", text.index("[two]"))
            text[i] = "interval = soon"
            line = i + 1
            with open(conf, "w", encoding="utf-8") as f:
                f.write("\n".join(text) + "\n")
            res = mmtest.run_mboxmirror("-c", conf, "--check-config", timeout=30)
            self.assertEqual(res.returncode, 78, res.stderr)
            self.assertEqual(res.stdout, "")
            self.assertRegex(res.stderr, rf"{re.escape(conf)}:{line}: \[two\] interval: ")
            # An account -a names that the file does not have: a usage error.
            with open(conf, "w", encoding="utf-8") as f:
                text[i] = "interval = 5m"
                f.write("\n".join(text) + "\n")
            res = mmtest.run_mboxmirror("-c", conf, "--check-config", "-a", "three",
                                        timeout=30)
            self.assertEqual(res.returncode, 64, res.stderr)
            self.assertIn(f"no account named 'three' in {conf}", res.stderr)

    def test_idle_refresh_bounds(self):
        # RFC 2177: a server may end an IDLE after 30 minutes.
        port = closed_port()
        with mmtest.TempDir() as tmp:
            for value, ok in (("29m", True), ("1s", True), ("30m", False),
                              ("0s", False), ("soon", False)):
                with self.subTest(value=value):
                    conf = mmtest.write_config(tmp, [account(tmp, "one", port)],
                                               general={"idle_refresh": value})
                    res = mmtest.run_mboxmirror("-c", conf, "--check-config", timeout=30)
                    self.assertEqual(res.returncode, 0 if ok else 78, res.stderr)
                    if not ok:
                        self.assertRegex(res.stderr, rf"{re.escape(conf)}:\d+: "
                                         r"\[general\] idle_refresh: ")


if __name__ == "__main__":
    unittest.main(verbosity=2)
