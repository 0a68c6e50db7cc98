"""With no -c and no config file where one is looked for, mboxmirror says every path it
searched and how to make one (exit 78), for every mode that needs a config; -c FILE
that does not exist names that file."""

import os
import unittest

import mmtest

SYSTEM_CONFIG = "/etc/mboxmirror/mboxmirror.ini"


class ConfigSearch(unittest.TestCase):
    def env(self, home):
        # (Empty counts as unset for both variables.)
        return {"HOME": home, "MBOXMIRROR_CONFIG": "", "XDG_CONFIG_HOME": ""}

    @unittest.skipIf(os.path.exists(SYSTEM_CONFIG), f"{SYSTEM_CONFIG} exists here")
    def test_no_config_lists_the_paths_searched(self):
        with mmtest.TempDir() as home:
            user = os.path.join(home, ".config", "mboxmirror", "config.ini")
            for mode in (["--once"], ["--check-config"], ["--status"], []):
                with self.subTest(mode=mode):
                    res = mmtest.run_mboxmirror(*mode, env=self.env(home), timeout=30)
                    self.assertEqual(res.returncode, 78, res.stderr)
                    self.assertIn("no configuration file", res.stderr)
                    self.assertIn(user, res.stderr)
                    self.assertIn(SYSTEM_CONFIG, res.stderr)
                    self.assertIn("mboxmirror.ini.example", res.stderr)
                    self.assertIn("-c FILE", res.stderr)

    def test_named_config_missing(self):
        with mmtest.TempDir() as home:
            missing = os.path.join(home, "nope.ini")
            res = mmtest.run_mboxmirror("-c", missing, "--check-config",
                                        env=self.env(home), timeout=30)
            self.assertEqual(res.returncode, 78, res.stderr)
            self.assertIn(f"{missing}: cannot open", res.stderr)
            self.assertNotIn("no configuration file", res.stderr)


    def test_check_config_says_which_state_directory(self):
        with mmtest.TempDir() as home:
            acct = {"__name__": "a", "host": "imap.example.org", "user": "u",
                    "password": "x", "output": os.path.join(home, "out")}
            conf = mmtest.write_config(home, [acct])
            res = mmtest.run_mboxmirror("-c", conf, "--check-config", env=self.env(home),
                                        timeout=30)
            self.assertEqual(res.returncode, 0, res.stderr)
            self.assertIn(f"state: {os.path.join(home, 'state')} (state_dir in [general])",
                          res.stdout)
            # Unset: a user's config gets the XDG directory, and says so.
            with open(conf) as f:
                text = f.read()
            with open(conf, "w") as f:
                f.write("\n".join(l for l in text.splitlines()
                                  if not l.startswith("state_dir")) + "\n")
            env = dict(self.env(home), XDG_STATE_HOME=os.path.join(home, "xdg"),
                       STATE_DIRECTORY="")
            res = mmtest.run_mboxmirror("-c", conf, "--check-config", env=env, timeout=30)
            self.assertEqual(res.returncode, 0, res.stderr)
            self.assertIn(f"state: {os.path.join(home, 'xdg', 'mboxmirror')} "
                          "($XDG_STATE_HOME/mboxmirror)", res.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
