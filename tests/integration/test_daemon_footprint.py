"""The daemon with many accounts: 100 polling accounts in one process are all mirrored,
and with nothing to do the daemon stays quiet: no log line, no connection, under 2 % of
a core (a busy timer or a spinning watcher shows as tens of percent, whatever the
build), and no growth of its resident memory while idle.  Prints the figures worth
watching (resident memory with 3 and with 100 accounts, CPU time while idle); their
absolute sizes depend on the build (sanitizers) and the machine, so only the idle ones
are asserted.

MM_IDLE_WINDOW (seconds, default 5) sets how long the idle CPU use is measured.
"""

import os
import sys
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import mmtest
from test_daemon_basic import (DaemonTestCase, cpu_ticks, inbox, mbox_count, vm_rss_kib,
                               wait_for)

N_ACCOUNTS = 100


def add_users_in_bulk(fx, n, prefix):
    """n fresh users at once: [(name, password)].  What tests/dovecot/adduser.sh does
    for one user, for many in one write to the passwd-file, then one wait until the
    server knows the last of them (adduser.sh waits about a second per user)."""
    import pwd
    import random
    import subprocess
    env = fx.env
    ent = pwd.getpwnam(env["MAIL_USER"])
    users = []
    for i in range(n):
        name = f"{prefix}{os.getpid()}x{i}x{random.randrange(1 << 20):x}"
        users.append((name, f"pw-{name}"))
    lines = []
    for name, password in users:
        home = os.path.join(env["MAIL_ROOT"], name)
        os.makedirs(home, mode=0o700)
        os.chown(home, ent.pw_uid, ent.pw_gid)
        lines.append(f"{name}:{{PLAIN}}{password}:{ent.pw_uid}:{ent.pw_gid}::{home}::\n")
    with open(env["PASSWD_FILE"], "a") as f:
        f.write("".join(lines))
    last, password = users[-1]
    wait_for(lambda: subprocess.run(fx.doveadm_cmd + ["auth", "test", last, password],
                                    capture_output=True).returncode == 0,
             10, interval=0.1, what="the server to know the new users")
    for name, password in users:
        fx.users[name] = password
    return users


class TestFootprint(DaemonTestCase):

    def make_accounts(self, n):
        fx = self.fx
        users = add_users_in_bulk(fx, n, "fp")
        with ThreadPoolExecutor(8) as pool:
            msgs = [mmtest.make_message(f"for {u}") for u, _ in users]
            list(pool.map(lambda i: fx.append(users[i][0], users[i][1], "INBOX",
                                              msgs[i]), range(n)))
        accts = [fx.account(self.tmp, u, p, name=f"a{i:03d}", idle="no", interval="10m")
                 for i, (u, p) in enumerate(users)]
        return accts, msgs

    def settle(self, d, accts, timeout, new):
        """Waits for the first sync of every account in accts, new of which fetch
        their message now (the others had it from an earlier daemon)."""
        names = [a["__name__"] for a in accts]
        wait_for(lambda: all(mbox_count(inbox(self.tmp, n)) == 1 for n in names),
                 timeout, interval=0.2, what=f"first sync of {len(names)} accounts")
        # Each of those syncs has ended (its line comes once the connection is gone).
        d.wait_log(r"^.*account a\d+: 1 new message ", count=new, timeout=timeout)

    def test_many_polling_accounts(self):
        accts, msgs = self.make_accounts(N_ACCOUNTS)
        figures = {}

        # Three accounts.
        conf3 = mmtest.write_config(self.tmp, accts[:3], filename="three.ini",
                                    general={"log_level": "info"})
        d = self.daemon(conf3)
        self.settle(d, accts[:3], 30, new=3)
        figures["rss_kib_3"] = vm_rss_kib(d.pid)
        self.assertEqual(d.stop(), 0, d.tail())
        self.assertTrue(os.unlink(d.log_path) is None)

        # A hundred, all in one process (max_connections bounds the concurrency).
        conf = mmtest.write_config(self.tmp, accts, general={"log_level": "info",
                                                             "max_connections": "16"})
        t0 = time.monotonic()
        d = self.daemon(conf)
        self.settle(d, accts, 120, new=len(accts) - 3)
        figures["first_sync_s_100"] = round(time.monotonic() - t0, 1)
        figures["rss_kib_100"] = vm_rss_kib(d.pid)
        window = float(os.environ.get("MM_IDLE_WINDOW", "5"))
        off = d.log_offset()
        c0, w0 = cpu_ticks(d.pid), time.monotonic()
        time.sleep(window)
        c1, w1 = cpu_ticks(d.pid), time.monotonic()
        hz = os.sysconf("SC_CLK_TCK")
        figures["idle_window_s"] = round(w1 - w0, 1)
        figures["idle_cpu_ms_100"] = round((c1 - c0) * 1000 / hz)
        figures["idle_cpu_percent_100"] = round((c1 - c0) / hz / (w1 - w0) * 100, 3)
        figures["rss_kib_100_after_idle"] = vm_rss_kib(d.pid)
        print(f"footprint: {figures}", file=sys.stderr)

        # Quiet while idle: no connection, no log line, nothing failed.
        self.assertEqual(d.log_since(off), "")
        self.assertLess(figures["idle_cpu_percent_100"], 2.0, figures)
        # Nothing piles up while idle (256 KiB of slack for the allocator's own
        # bookkeeping).
        self.assertLessEqual(figures["rss_kib_100_after_idle"],
                             figures["rss_kib_100"] + 256, figures)
        self.assertTrue(d.alive())
        self.assertEqual(d.stop(), 0, d.tail())
        self.assertNotRegex(d.log(), r"\berror:")
        for a, m in zip(accts, msgs):
            got = mmtest.read_mbox(inbox(self.tmp, a["__name__"]))
            self.assertEqual([e.data for e in got], [m], a["__name__"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
