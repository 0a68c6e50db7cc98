"""--shard K/N and [general] shard = K/N: --check-config lists a shard's accounts;
the shards of a file with 20 accounts hold every account exactly once, an added
account moves none of the others, the file's shard is used unless --shard says
otherwise, and -a naming another shard's account is a usage error that touches
nothing.  Nothing here contacts a server."""

import json
import os
import re
import unittest

import mmtest

ACCOUNT_LINE = re.compile(r"^([A-Za-z0-9._@+-]+): \S+ @ ", re.M)


class Shards(unittest.TestCase):
    def setUp(self):
        self.dir = mmtest.temp_dir(self)
        self.pw = mmtest.write_password_file(self.dir)

    def config(self, names, general=None, filename="mboxmirror.ini"):
        accounts = [{"__name__": n, "host": "127.0.0.1", "port": "1",
                     "user": n, "password_file": self.pw,
                     "output": os.path.join(self.dir, "out", n)} for n in names]
        return mmtest.write_config(self.dir, accounts, general=general,
                                   filename=filename)

    def shard(self, conf, *args):
        """The accounts --check-config lists (with args), as a list."""
        res = mmtest.run_mboxmirror("-c", conf, "--check-config", *args)
        self.assertEqual(res.returncode, 0, res.stderr)
        return ACCOUNT_LINE.findall(res.stdout), res.stdout

    def test_shards_partition_the_accounts(self):
        names = [f"user{i:02d}@example.org" for i in range(20)]
        conf = self.config(names)
        everyone, _ = self.shard(conf)
        self.assertEqual(everyone, names)
        parts = []
        for k in range(3):
            part, out = self.shard(conf, "--shard", f"{k}/3")
            self.assertIn(f"configuration OK: {len(part)} account", out)
            self.assertIn(f"(shard {k}/3; 20 in all) in {conf}", out)
            # In file order.
            self.assertEqual(part, [n for n in names if n in part])
            parts.append(set(part))
        self.assertEqual(set().union(*parts), set(names))
        self.assertEqual(sum(len(p) for p in parts), len(names))
        for i in range(3):
            for j in range(i + 1, 3):
                self.assertFalse(parts[i] & parts[j], (i, j))
        # 20 accounts over 3 shards: none is empty (a hash that put everything in
        # one shard would pass the checks above).
        self.assertTrue(all(parts), parts)

        # An added account moves no other.
        bigger = self.config(names + ["newcomer"], filename="bigger.ini")
        for k in range(3):
            part, _ = self.shard(bigger, "--shard", f"{k}/3")
            self.assertEqual(set(part) - {"newcomer"}, parts[k])

        # The file's shard, unless --shard overrides it; 1/1 is everyone.
        sharded = self.config(names, general={"shard": "1/3"}, filename="s.ini")
        self.assertEqual(set(self.shard(sharded)[0]), parts[1])
        self.assertEqual(set(self.shard(sharded, "--shard", "2/3")[0]), parts[2])
        self.assertEqual(self.shard(conf, "--shard", "0/1")[0], names)

        # -a must name an account of the shard: a usage error, and no state made.
        outside = sorted(parts[0])[0]
        for mode in ("--once", "--verify"):
            res = mmtest.run_mboxmirror("-c", conf, mode, "--shard", "1/3",
                                        "-a", outside)
            self.assertEqual(res.returncode, 64, mode + res.stderr)
            self.assertIn(f"account '{outside}' is in shard 0/3, not in this "
                          "process's 1/3", res.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "state")))
        # --status lists only the shard's accounts.
        res = mmtest.run_mboxmirror("-c", conf, "--status", "--json", "--shard", "2/3")
        self.assertEqual(res.returncode, 0, res.stderr)
        listed = {a["account"] for a in json.loads(res.stdout)}
        self.assertEqual(listed, parts[2])

    def test_bad_shards(self):
        conf = self.config(["a", "b"])
        for arg, what in (("3/3", "needs K below N"), ("1", "is not K/N"),
                          ("0/0", "needs N from 1")):
            res = mmtest.run_mboxmirror("-c", conf, "--check-config", "--shard", arg)
            self.assertEqual(res.returncode, 64, res.stderr)
            self.assertIn(f"--shard '{arg}' {what}", res.stderr)
        bad = self.config(["a"], general={"shard": "2/2"}, filename="bad.ini")
        res = mmtest.run_mboxmirror("-c", bad, "--check-config")
        self.assertEqual(res.returncode, 78, res.stderr)
        self.assertRegex(res.stderr, r"bad\.ini:\d+: \[general\] shard: \"2/2\" "
                         r"needs K below N")


if __name__ == "__main__":
    unittest.main()
