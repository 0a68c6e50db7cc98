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


if __name__ == "__main__":
    unittest.main(verbosity=2)
