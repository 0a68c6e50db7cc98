"""--status shows, below each account, every mailbox's file, last UID committed,
messages and bytes, as mboxmirror(1) says; --status --json has the same as
per_mailbox.  The figures are checked against the server's UIDs and the files."""

import json
import os
import re
import unittest

import mmtest


class StatusPerMailbox(unittest.TestCase):
    def test_per_mailbox_figures(self):
        fx = mmtest.Fixture()
        user, password = fx.new_user()
        inbox_uids = fx.append_many(user, password, "INBOX",
                                    [mmtest.make_message(f"in {i}") for i in range(3)])
        fx.create_mailbox(user, password, "Archive/2023")
        archive_uids = fx.append_many(user, password, "Archive/2023",
                                      [mmtest.make_message("old")])
        with mmtest.TempDir() as tmp:
            acct = fx.account(tmp, user, password, name="st", idle="no")
            conf = mmtest.write_config(tmp, [acct])
            mmtest.run_mboxmirror("-c", conf, "--once", check=True)
            out = os.path.join(tmp, "out", "st")
            want = {
                "INBOX": ("INBOX.mbox", max(inbox_uids), 3),
                "Archive/2023": ("Archive/2023.mbox", max(archive_uids), 1),
            }

            res = mmtest.run_mboxmirror("-c", conf, "--status", "--json", check=True)
            [acc] = json.loads(res.stdout)
            per = {m["mailbox"]: m for m in acc["per_mailbox"]}
            self.assertEqual(set(per), set(want))
            for name, (file, last_uid, messages) in want.items():
                m = per[name]
                self.assertEqual(m["file"], file)
                self.assertEqual(m["last_uid"], last_uid)
                self.assertEqual(m["messages"], messages)
                self.assertEqual(m["mbox_bytes"], os.path.getsize(os.path.join(out, file)))
                self.assertIsInstance(m["uidvalidity"], int)
                self.assertGreater(m["uidvalidity"], 0)
            self.assertEqual(acc["mbox_bytes"], sum(m["mbox_bytes"] for m in per.values()))

            res = mmtest.run_mboxmirror("-c", conf, "--status", check=True)
            for name, (file, last_uid, messages) in want.items():
                size = os.path.getsize(os.path.join(out, file))
                line = (f"mailbox {name}: {file}, last UID {last_uid}, {messages} "
                        f"message{'' if messages == 1 else 's'}, {size} bytes")
                self.assertRegex(res.stdout, rf"(?m)^ +{re.escape(line)}$")


if __name__ == "__main__":
    unittest.main(verbosity=2)
