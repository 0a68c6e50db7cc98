"""[general] metrics_file, read back with Prometheus' own text parser
(prometheus_client, Debian's python3-prometheus-client): its figures follow the
syncs of --once and of the daemon (messages and bytes in the mirror, the time of
the last success, a failing account's consecutive failures and state, push), the
file is replaced whole (no temporary file left, mode 0644), every series carries
config, the configuration file's name, so that the files of two configurations with
an account of the same name hold no series in common, and the daemons of two
shards on one state directory run side by side, each writing its own accounts,
while one of another shard count, or one not sharded, is refused beside them."""

import os
import signal
import stat
import sys
import time
import unittest

import mmtest
from faultproxy import closed_port
from mmtest import wait_for
from test_daemon_basic import SANITIZER_ERROR, DaemonTestCase

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    # Debian's package, for a python3 that is not Debian's (pyenv and the like).
    sys.path.append("/usr/lib/python3/dist-packages")
    from prometheus_client.parser import text_string_to_metric_families


def read_metrics(path):
    """{(sample name, ((label, value), ...)): value} and {family: type}, or None
    while the file does not exist."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    samples, types = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, types


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def account_value(samples, name, account, config="mboxmirror"):
    return value(samples, name, config=config, account=account)


def state_of(samples, account, config="mboxmirror"):
    """The one state whose sample is 1 (one-hot checked)."""
    def state(s):
        return value(samples, "mboxmirror_account_state", config=config,
                     account=account, state=s)
    on = [s for s in ("ok", "failing", "syncing") if state(s) == 1]
    off = [s for s in ("ok", "failing", "syncing") if state(s) == 0]
    assert len(on) == 1 and len(off) == 2, (account, on, off)
    return on[0]


def mirror_bytes(tmp, account):
    """Bytes of every mbox file under the account's output."""
    total = 0
    for root, _, files in os.walk(os.path.join(tmp, "out", account)):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files
                     if f.endswith(".mbox"))
    return total


class Metrics(DaemonTestCase):
    takes_turns = False

    def metrics_path(self):
        d = os.path.join(self.tmp, "textfile")
        os.makedirs(d, exist_ok=True)
        return os.path.join(d, "mboxmirror.prom")

    def assert_file_replaced_whole(self, path):
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o644)
        self.assertEqual(os.listdir(os.path.dirname(path)), [os.path.basename(path)])

    def test_once(self):
        fx = self.fx
        good, user, password = self.new_account("good", idle="no")
        for i in range(3):
            fx.append(user, password, "INBOX", mmtest.make_message(f"m{i}"))
        broken = fx.account(self.tmp, "nobody", "x", name="broken", idle="no",
                            port=str(closed_port()))
        path = self.metrics_path()
        conf = mmtest.write_config(self.tmp, [good, broken],
                                   general={"metrics_file": path})
        t0 = time.time()
        res = mmtest.run_mboxmirror("-c", conf, "--once")
        t1 = time.time()
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertNotRegex(res.stderr, SANITIZER_ERROR)
        samples, types = read_metrics(path)
        self.assert_file_replaced_whole(path)

        self.assertEqual(types["mboxmirror_messages_mirrored"], "counter")
        self.assertEqual(types["mboxmirror_bytes_mirrored"], "counter")
        self.assertEqual(types["mboxmirror_last_success_timestamp_seconds"], "gauge")
        self.assertEqual(account_value(samples, "mboxmirror_messages_mirrored_total",
                                       "good"), 3)
        self.assertEqual(account_value(samples, "mboxmirror_bytes_mirrored_total",
                                       "good"), mirror_bytes(self.tmp, "good"))
        self.assertGreater(mirror_bytes(self.tmp, "good"), 0)
        success = account_value(samples, "mboxmirror_last_success_timestamp_seconds",
                                "good")
        self.assertTrue(int(t0) <= success <= t1 + 1, (t0, success, t1))
        attempt = account_value(samples, "mboxmirror_last_attempt_timestamp_seconds",
                                "good")
        self.assertTrue(int(t0) <= attempt <= success, (t0, attempt, success))
        duration = account_value(samples, "mboxmirror_last_sync_duration_seconds",
                                 "good")
        self.assertTrue(0 <= duration <= t1 - t0 + 0.01, duration)
        self.assertEqual(account_value(samples, "mboxmirror_consecutive_failures",
                                       "good"), 0)
        self.assertEqual(state_of(samples, "good"), "ok")
        self.assertEqual(account_value(samples, "mboxmirror_push_connected", "good"), 0)
        self.assertEqual(account_value(samples, "mboxmirror_interval_seconds", "good"),
                         900)

        self.assertEqual(account_value(samples, "mboxmirror_last_success_timestamp_"
                                       "seconds", "broken"), 0)
        self.assertEqual(account_value(samples, "mboxmirror_consecutive_failures",
                                       "broken"), 1)
        self.assertEqual(state_of(samples, "broken"), "failing")
        self.assertEqual(account_value(samples, "mboxmirror_messages_mirrored_total",
                                       "broken"), 0)
        self.assertEqual(value(samples, "mboxmirror_accounts_configured",
                               config="mboxmirror", shard="0/1"), 2)
        self.assertEqual(value(samples, "mboxmirror_syncs_in_flight",
                               config="mboxmirror", shard="0/1"), 0)
        self.assertEqual(value(samples, "mboxmirror_connections_open",
                               config="mboxmirror", shard="0/1"), 0)

        # Two more messages and another run: the counters go on from the state,
        # the failures count up.
        for i in range(2):
            fx.append(user, password, "INBOX", mmtest.make_message(f"n{i}"))
        time.sleep(1.1)
        res = mmtest.run_mboxmirror("-c", conf, "--once")
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertNotRegex(res.stderr, SANITIZER_ERROR)
        samples2, _ = read_metrics(path)
        self.assert_file_replaced_whole(path)
        self.assertEqual(account_value(samples2, "mboxmirror_messages_mirrored_total",
                                       "good"), 5)
        self.assertEqual(account_value(samples2, "mboxmirror_bytes_mirrored_total",
                                       "good"), mirror_bytes(self.tmp, "good"))
        self.assertGreater(account_value(samples2, "mboxmirror_last_success_timestamp_"
                                         "seconds", "good"), success)
        self.assertEqual(account_value(samples2, "mboxmirror_consecutive_failures",
                                       "broken"), 2)

        # -a: only that account, in the file too.
        res = mmtest.run_mboxmirror("-c", conf, "--once", "-a", "good")
        self.assertEqual(res.returncode, 0, res.stderr)
        samples3, _ = read_metrics(path)
        self.assertIsNone(account_value(samples3, "mboxmirror_consecutive_failures",
                                        "broken"))
        self.assertEqual(value(samples3, "mboxmirror_accounts_configured",
                               config="mboxmirror", shard="0/1"), 1)

    def test_two_configurations_hold_no_common_series(self):
        """Two configurations on one host, as the template unit's instances run
        them (each its own state directory and metrics file, neither sharded),
        with an account of the same name: the files differ in config on every
        series, so that the textfile collector can read both."""
        fx = self.fx
        files = {}
        for name in ("home", "we\"ird"):
            # The same account name in both, a mirror of its own for each.
            acct = fx.account(self.tmp, "nobody", "x", name="alice", idle="no",
                              port=str(closed_port()),
                              output=os.path.join(self.tmp, "out", name))
            files[name] = os.path.join(self.tmp, "textfile", f"{name}.prom")
            os.makedirs(os.path.dirname(files[name]), exist_ok=True)
            conf = mmtest.write_config(self.tmp, [acct], filename=f"{name}.ini",
                                       general={
                                           "metrics_file": files[name],
                                           "state_dir": os.path.join(
                                               self.tmp, "state", name)})
            res = mmtest.run_mboxmirror("-c", conf, "--once")
            self.assertEqual(res.returncode, 1, res.stderr)
            self.assertNotRegex(res.stderr, SANITIZER_ERROR)
        series = {}
        for name, path in files.items():
            samples, _ = read_metrics(path)
            # Read back through the parser: the quote in the name was escaped.
            self.assertEqual({dict(labels)["config"] for (_, labels) in samples},
                             {name})
            self.assertEqual(account_value(samples, "mboxmirror_consecutive_failures",
                                           "alice", config=name), 1)
            self.assertEqual(state_of(samples, "alice", config=name), "failing")
            self.assertEqual(value(samples, "mboxmirror_accounts_configured",
                                   config=name, shard="0/1"), 1)
            series[name] = set(samples)
        self.assertGreater(len(series["home"]), 10)
        self.assertEqual(len(series["home"]), len(series['we"ird']))
        self.assertFalse(series["home"] & series['we"ird'])
        # Without the label they would all be the same.
        def unlabelled(keys):
            return {(n, tuple(kv for kv in labels if kv[0] != "config"))
                    for (n, labels) in keys}
        self.assertEqual(unlabelled(series["home"]), unlabelled(series['we"ird']))

    def test_daemon(self):
        fx = self.fx
        poll, user, password = self.new_account("poll", idle="no", interval="2s")
        fx.append(user, password, "INBOX", mmtest.make_message("first"))
        push, puser, ppass = self.new_account("push", idle="yes", interval="10m")
        broken = fx.account(self.tmp, "nobody", "x", name="broken", idle="no",
                            port=str(closed_port()))
        path = self.metrics_path()
        conf = mmtest.write_config(self.tmp, [poll, push, broken], general={
            "metrics_file": path, "retry_min": "1s", "retry_max": "2s"})
        d = self.daemon(conf)

        def figures(pred):
            def check():
                got = read_metrics(path)
                return got[0] if got is not None and pred(got[0]) else None
            return wait_for(check, 30, interval=0.1,
                            what=lambda: f"metrics file matching; it holds:\n"
                            f"{open(path).read() if os.path.exists(path) else '-'}"
                            f"\nlog:\n{d.tail()}")

        s = figures(lambda s: account_value(s, "mboxmirror_messages_mirrored_total",
                                            "poll") == 1
                    and account_value(s, "mboxmirror_push_connected", "push") == 1
                    and (account_value(s, "mboxmirror_consecutive_failures",
                                       "broken") or 0) >= 2)
        self.assertEqual(state_of(s, "broken"), "failing")
        self.assertEqual(account_value(s, "mboxmirror_last_success_timestamp_seconds",
                                       "broken"), 0)
        self.assertGreater(account_value(s, "mboxmirror_last_success_timestamp_seconds",
                                         "poll"), 0)
        self.assertEqual(value(s, "mboxmirror_accounts_configured",
                               config="mboxmirror", shard="0/1"), 3)
        # The push connection is open whatever else is.
        self.assertGreaterEqual(value(s, "mboxmirror_connections_open",
                                      config="mboxmirror", shard="0/1"), 1)
        self.assert_file_replaced_whole(path)
        first_success = account_value(s, "mboxmirror_last_success_timestamp_seconds",
                                      "poll")

        # New mail: the counters follow, and the success time moves on.
        time.sleep(1.1)
        for i in range(2):
            fx.append(user, password, "INBOX", mmtest.make_message(f"later {i}"))
        fx.append(puser, ppass, "INBOX", mmtest.make_message("pushed"))
        s = figures(lambda s: account_value(s, "mboxmirror_messages_mirrored_total",
                                            "poll") == 3
                    and account_value(s, "mboxmirror_messages_mirrored_total",
                                      "push") == 1)
        self.assertGreater(account_value(s, "mboxmirror_last_success_timestamp_seconds",
                                         "poll"), first_success)
        self.assertEqual(account_value(s, "mboxmirror_bytes_mirrored_total", "push"),
                         mirror_bytes(self.tmp, "push"))
        self.assertEqual(state_of(s, "push"), "ok")
        self.assertEqual(account_value(s, "mboxmirror_consecutive_failures", "poll"), 0)
        self.assertEqual(d.end(), 0)

    def test_shard_daemons_share_a_state_directory(self):
        fx = self.fx
        names = [f"acct{i}" for i in range(8)]
        accts = [fx.account(self.tmp, "nobody", "x", name=n, idle="no",
                            port=str(closed_port())) for n in names]
        paths = [os.path.join(self.tmp, f"shard{k}.prom") for k in range(2)]
        daemons = []
        for k in range(2):
            conf = mmtest.write_config(self.tmp, accts, filename=f"s{k}.ini", general={
                "metrics_file": paths[k], "shard": f"{k}/2", "retry_min": "1m"})
            daemons.append(self.daemon(conf))
        parts = []
        for k in range(2):
            got = wait_for(lambda: read_metrics(paths[k]), 20, interval=0.1,
                           what=lambda: daemons[k].tail())
            samples = got[0]
            accounts = {dict(labels)["account"] for (name, labels) in samples
                        if name == "mboxmirror_consecutive_failures"}
            # Each configuration file its own name: s0, s1.
            self.assertEqual({dict(labels)["config"] for (name, labels) in samples},
                             {f"s{k}"})
            self.assertEqual(value(samples, "mboxmirror_accounts_configured",
                                   config=f"s{k}", shard=f"{k}/2"), len(accounts))
            parts.append(accounts)
        self.assertEqual(parts[0] | parts[1], set(names))
        self.assertFalse(parts[0] & parts[1])
        for d in daemons:
            self.assertTrue(d.alive(), d.tail())
            d.wait_log(r"running: \d+ accounts? in shard \d/2")
        # A second daemon for a shard that runs already is refused.
        again = self.daemon(os.path.join(self.tmp, "s0.ini"))
        self.assertEqual(again.proc.wait(20), 1)
        self.assertIn("another mboxmirror daemon", again.log())
        # Nor does one of another layout start beside them: shard 0/3 would take
        # some of their accounts again, the unsharded daemon all of them.
        for general, who in (({"shard": "0/3"}, "shard 0/3"), ({}, "the one not sharded")):
            conf = mmtest.write_config(self.tmp, accts, filename="other.ini",
                                       general=dict(general, retry_min="1m"))
            other = self.daemon(conf)
            self.assertEqual(other.proc.wait(20), 1, other.tail())
            self.assertRegex(other.log(), r"shard [01]/2 \(pid \d+\) runs with the state "
                             rf"directory .*this daemon would be {who}: they would both")
        # A reload onto 3 shards is refused likewise.
        mmtest.write_config(self.tmp, accts, filename="s0.ini", general={
            "metrics_file": paths[0], "shard": "0/3", "retry_min": "1m"})
        off = daemons[0].log_offset()
        daemons[0].signal(signal.SIGHUP)
        daemons[0].wait_log(r"shard 1/2 \(pid \d+\) runs with the state directory",
                            since=off)
        daemons[0].wait_log(r"keeping the running configuration", since=off)
        self.assertTrue(daemons[0].alive(), daemons[0].tail())

        # A reload onto the other shard: the daemon takes that shard's accounts, and
        # its lock, which the other daemon holds: the reload is refused.
        mmtest.write_config(self.tmp, accts, filename="s0.ini", general={
            "metrics_file": paths[0], "shard": "1/2", "retry_min": "1m"})
        off = daemons[0].log_offset()
        daemons[0].signal(signal.SIGHUP)
        daemons[0].wait_log(r"keeping the running configuration", since=off)
        # Once the other is gone, the same reload goes through.
        self.assertEqual(daemons[1].end(), 0)
        os.unlink(paths[0])
        off = daemons[0].log_offset()
        daemons[0].signal(signal.SIGHUP)
        daemons[0].wait_log(r"configuration reloaded: \d+ added, \d+ removed", since=off)
        got = wait_for(lambda: read_metrics(paths[0]), 20, interval=0.1,
                       what=lambda: daemons[0].tail())
        accounts = {dict(labels)["account"] for (name, labels) in got[0]
                    if name == "mboxmirror_consecutive_failures"}
        self.assertEqual(accounts, parts[1])
        self.assertEqual(value(got[0], "mboxmirror_accounts_configured", config="s0",
                               shard="1/2"), len(parts[1]))
        # Shard 0 is free again.
        zero = mmtest.write_config(self.tmp, accts, filename="z.ini", general={
            "shard": "0/2", "retry_min": "1m"})
        d0 = self.daemon(zero)
        d0.wait_log(r"running: \d+ accounts? in shard 0/2")
        self.assertTrue(d0.alive())


if __name__ == "__main__":
    unittest.main()
