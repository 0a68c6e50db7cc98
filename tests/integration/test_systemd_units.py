"""The systemd units, the install rules and the man pages: what `cmake --install`
puts where, that systemd accepts every unit (`systemd-analyze verify`), how exposed the
system service is (`systemd-analyze security --offline`), and that the man pages render
without a warning and document every option and key.  Needs no server.

Runs under ctest or alone: python3 tests/integration/test_systemd_units.py
"""

import os
import re
import shutil
import stat
import subprocess
import tempfile
import unittest

import mmtest

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# The highest exposure accepted for the system service (0 best, 10 worst).
MAX_EXPOSURE = 2.0

SYSTEM_UNITS = ["mboxmirror.service", "mboxmirror@.service", "mboxmirror-once.service",
                "mboxmirror-once.timer"]
USER_UNITS = ["mboxmirror.service"]
MAN_PAGES = ["man1/mboxmirror.1", "man5/mboxmirror.ini.5"]

# DESIGN.md section 1, plus --status [--json], --verify [--deep] and --shard.
OPTIONS = ["-c", "--config", "--once", "-a", "--account", "-v", "--verbose", "-q",
           "--quiet", "--check-config", "--probe", "--list", "--status", "--json",
           "--verify", "--deep", "--restore", "--to", "--mailbox", "--dry-run",
           "--shard", "--version", "-h", "--help"]
# DESIGN.md section 2, plus compress, shard and metrics_file.
GENERAL_KEYS = ["state_dir", "interval", "timeout", "max_connections", "log_level",
                "shard", "metrics_file"]
ACCOUNT_KEYS = ["host", "port", "tls", "ca_file", "pin_sha256", "user",
                "password_command", "password_file", "password", "auth", "mailboxes",
                "exclude", "output", "interval", "idle", "allow_plaintext", "compress"]
ENVIRONMENT = ["MBOXMIRROR_CONFIG", "XDG_CONFIG_HOME", "XDG_STATE_HOME",
               "STATE_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC", "JOURNAL_STREAM"]


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, **kw)


def configure(build, prefix):
    res = run(["cmake", "-S", SRC, "-B", build, "-DMM_TESTS=OFF", "-DMM_SANITIZE=OFF",
               "-DCMAKE_INSTALL_PREFIX=" + prefix])
    if res.returncode != 0:
        raise RuntimeError("cmake configure failed:\n" + res.stdout + res.stderr)


def install_components(build, destdir=None):
    """Installs the parts that need no compiled target (units, man pages, docs)."""
    env = dict(os.environ)
    if destdir is not None:
        env["DESTDIR"] = destdir
    for component in ("systemd", "man", "doc"):
        res = run(["cmake", "--install", build, "--component", component], env=env)
        if res.returncode != 0:
            raise RuntimeError(f"install of {component} failed:\n{res.stdout}{res.stderr}")


def unit_settings(path):
    """{(section, key): [values]} of a unit file."""
    settings, section = {}, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            key, value = line.split("=", 1)
            settings.setdefault((section, key), []).append(value)
    return settings


def man_source_text(page):
    """The page's text with roff escapes for '-' undone."""
    with open(os.path.join(SRC, "docs", page), encoding="utf-8") as f:
        return f.read().replace("\\-", "-")


def find_build_tree():
    """The CMake build tree this test runs in (ctest runs it from inside), or None."""
    d = os.getcwd()
    while True:
        if os.path.exists(os.path.join(d, "CMakeCache.txt")):
            return d
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


class SystemdUnits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mm-units-")
        # Layout of a distribution install: prefix /usr, into a DESTDIR.
        cls.destdir = os.path.join(cls.tmp, "destdir")
        configure(os.path.join(cls.tmp, "build-usr"), "/usr")
        install_components(os.path.join(cls.tmp, "build-usr"), cls.destdir)
        # An install whose ExecStart= path exists, for systemd-analyze: the prefix
        # is a temporary directory with a stand-in binary.
        cls.prefix = os.path.join(cls.tmp, "prefix")
        # (Reconfiguring the same tree skips the compiler checks.)
        configure(os.path.join(cls.tmp, "build-usr"), cls.prefix)
        install_components(os.path.join(cls.tmp, "build-usr"))
        os.makedirs(os.path.join(cls.prefix, "bin"), exist_ok=True)
        binary = os.environ.get("MBOXMIRROR") or ""
        if not os.path.isfile(binary):
            binary = shutil.which("true")
        shutil.copy(binary, os.path.join(cls.prefix, "bin", "mboxmirror"))
        cls.runtime = os.path.join(cls.tmp, "runtime")
        os.mkdir(cls.runtime, 0o700)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def analyze_env(self):
        env = dict(os.environ)
        # Documentation=man:... is checked with man(1): let it find the new pages.
        env["MANPATH"] = os.path.join(self.prefix, "share", "man")
        # --user needs a runtime directory even offline.
        env["XDG_RUNTIME_DIR"] = self.runtime
        return env

    # ---- install -------------------------------------------------------------------

    def test_destdir_layout(self):
        d = self.destdir
        expected = [f"usr/lib/systemd/system/{u}" for u in SYSTEM_UNITS]
        expected += [f"usr/lib/systemd/user/{u}" for u in USER_UNITS]
        expected += [f"usr/share/man/{p}" for p in MAN_PAGES]
        if os.path.exists(os.path.join(SRC, "config", "mboxmirror.ini.example")):
            expected.append("usr/share/doc/mboxmirror/mboxmirror.ini.example")
        for rel in expected:
            path = os.path.join(d, rel)
            self.assertTrue(os.path.isfile(path), rel)
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o644, rel)
        for rel in [f"usr/lib/systemd/system/{u}" for u in SYSTEM_UNITS] + \
                   [f"usr/lib/systemd/user/{u}" for u in USER_UNITS]:
            with open(os.path.join(d, rel), encoding="utf-8") as f:
                text = f.read()
            self.assertNotRegex(text, r"@[A-Za-z_]+@", f"{rel}: left unconfigured")
            for line in text.splitlines():
                if line.startswith("ExecStart="):
                    self.assertTrue(line.startswith("ExecStart=/usr/bin/mboxmirror"), line)

    def test_build_tree_install(self):
        """A full `cmake --install` of the tree this test was built in, binary included."""
        build = find_build_tree()
        binary = os.environ.get("MBOXMIRROR") or ""
        if build is None or not os.path.isfile(binary):
            self.skipTest("not run from a build tree with mboxmirror built")
        dest = os.path.join(self.tmp, "full")
        env = dict(os.environ, DESTDIR=dest)
        res = run(["cmake", "--install", build], env=env)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        with open(os.path.join(build, "CMakeCache.txt"), encoding="utf-8") as f:
            cache = f.read()
        prefix = re.search(r"^CMAKE_INSTALL_PREFIX:PATH=(.*)$", cache, re.M).group(1)
        root = dest + prefix
        installed = os.path.join(root, "bin", "mboxmirror")
        self.assertTrue(os.access(installed, os.X_OK), installed)
        unit = os.path.join(root, "lib", "systemd", "system", "mboxmirror.service")
        self.assertEqual(unit_settings(unit)[("Service", "ExecStart")],
                         [f"{prefix}/bin/mboxmirror -c /etc/mboxmirror/mboxmirror.ini"])
        for page in MAN_PAGES:
            self.assertTrue(os.path.isfile(os.path.join(root, "share", "man", page)))

    # ---- units ---------------------------------------------------------------------

    def test_verify_system_units(self):
        units = [os.path.join(self.prefix, "lib/systemd/system", u) for u in SYSTEM_UNITS]
        res = run(["systemd-analyze", "verify"] + units, env=self.analyze_env(),
                  cwd=self.tmp)
        # Unknown keys and bad values are only warnings: any output is a failure.
        self.assertEqual((res.returncode, res.stdout + res.stderr), (0, ""))

    def test_verify_user_unit(self):
        units = [os.path.join(self.prefix, "lib/systemd/user", u) for u in USER_UNITS]
        res = run(["systemd-analyze", "verify", "--user"] + units,
                  env=self.analyze_env(), cwd=self.tmp)
        self.assertEqual((res.returncode, res.stdout + res.stderr), (0, ""))

    def test_verify_catches_mistakes(self):
        """The check above would notice a broken unit."""
        src = os.path.join(self.prefix, "lib/systemd/system/mboxmirror.service")
        bad = os.path.join(self.tmp, "mboxmirror-bad.service")
        with open(src, encoding="utf-8") as f:
            text = f.read()
        with open(bad, "w", encoding="utf-8") as f:
            f.write(text.replace("ProtectSystem=strict", "ProtectSystem=stricter"))
        res = run(["systemd-analyze", "verify", bad], env=self.analyze_env(), cwd=self.tmp)
        self.assertIn("stricter", res.stdout + res.stderr)

    def test_verify_template_instance(self):
        """An instance of the template, named as an administrator would name one."""
        src = os.path.join(self.prefix, "lib/systemd/system/mboxmirror@.service")
        instance = os.path.join(self.tmp, "mboxmirror@shard0.service")
        shutil.copy(src, instance)
        res = run(["systemd-analyze", "verify", instance], env=self.analyze_env(),
                  cwd=self.tmp)
        self.assertEqual((res.returncode, res.stdout + res.stderr), (0, ""))

    def exposure(self, unit):
        res = run(["systemd-analyze", "security", "--offline=yes", "--no-pager", unit],
                  env=self.analyze_env(), cwd=self.tmp)
        self.assertEqual(res.returncode, 0, res.stderr)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", res.stdout)
        self.assertIsNotNone(m, res.stdout)
        exposure = float(m.group(1))
        print(f"\nsystemd-analyze security --offline {os.path.basename(unit)}: "
              f"exposure {exposure} {m.group(2)}")
        return exposure

    def test_security_exposure(self):
        for name in ("mboxmirror.service", "mboxmirror@.service"):
            unit = os.path.join(self.prefix, "lib/systemd/system", name)
            self.assertLessEqual(self.exposure(unit), MAX_EXPOSURE, name)

    def test_system_service_settings(self):
        s = unit_settings(os.path.join(self.destdir, "usr/lib/systemd/system",
                                       "mboxmirror.service"))
        want = {
            "Type": "notify", "NotifyAccess": "main", "WatchdogSec": "2min",
            "ExecReload": "/bin/kill -HUP $MAINPID", "Restart": "on-failure",
            "RestartSec": "30s", "TimeoutStopSec": "10s", "DynamicUser": "yes",
            "StateDirectory": "mboxmirror", "StateDirectoryMode": "0700",
            "ConfigurationDirectory": "mboxmirror", "UMask": "0077",
            "ProtectSystem": "strict", "ProtectHome": "read-only",
            "NoNewPrivileges": "yes", "CapabilityBoundingSet": "",
            "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
            "SystemCallArchitectures": "native", "MemoryDenyWriteExecute": "yes",
        }
        for key, value in want.items():
            self.assertEqual(s.get(("Service", key)), [value], key)
        # Descriptors for push on many accounts: soft and hard limit alike, so that
        # the daemon needs no raise, and no lower than systemd's usual hard limit.
        limit = s[("Service", "LimitNOFILE")]
        self.assertEqual(len(limit), 1)
        self.assertRegex(limit[0], r"^[0-9]+$")
        self.assertGreaterEqual(int(limit[0]), 524288)
        # password_command forks and execs: the filter must keep @system-service.
        self.assertEqual(s[("Service", "SystemCallFilter")],
                         ["@system-service", "~@privileged @resources"])
        self.assertNotIn(("Service", "IPAddressDeny"), s)
        self.assertNotIn(("Service", "PrivateNetwork"), s)

    def test_template_settings(self):
        base = os.path.join(self.destdir, "usr/lib/systemd/system")
        single = unit_settings(os.path.join(base, "mboxmirror.service"))
        template = unit_settings(os.path.join(base, "mboxmirror@.service"))
        # One configuration file, state directory and journal identifier per instance.
        self.assertEqual(template[("Service", "ExecStart")],
                         ["/usr/bin/mboxmirror -c /etc/mboxmirror/%i.ini"])
        self.assertEqual(template[("Service", "StateDirectory")], ["mboxmirror/%i"])
        self.assertEqual(template[("Service", "SyslogIdentifier")], ["mboxmirror@%i"])
        # Nested state directories: never beside the single daemon or the timer.
        self.assertEqual(set(template[("Unit", "Conflicts")][0].split()),
                         {"mboxmirror.service", "mboxmirror-once.service",
                          "mboxmirror-once.timer"})
        self.assertEqual(template[("Install", "WantedBy")], ["multi-user.target"])
        # Everything else of the service, the sandbox above all, is the single
        # daemon's.
        differs = {("Service", k) for k in ("ExecStart", "StateDirectory",
                                             "SyslogIdentifier")}
        differs |= {("Unit", k) for k in ("Description", "Conflicts")}
        for key in set(single) | set(template):
            if key in differs:
                continue
            self.assertEqual(template.get(key), single.get(key), key)

    def test_once_and_timer(self):
        base = os.path.join(self.destdir, "usr/lib/systemd/system")
        once = unit_settings(os.path.join(base, "mboxmirror-once.service"))
        self.assertEqual(once[("Service", "Type")], ["oneshot"])
        self.assertTrue(once[("Service", "ExecStart")][0].endswith(" --once"))
        timer = unit_settings(os.path.join(base, "mboxmirror-once.timer"))
        self.assertEqual(timer[("Timer", "OnCalendar")], ["*:0/15"])
        self.assertEqual(timer[("Timer", "Persistent")], ["true"])
        self.assertEqual(timer[("Timer", "RandomizedDelaySec")], ["60"])
        # The daemon and the timer never run side by side: each stops the other.
        daemon = unit_settings(os.path.join(base, "mboxmirror.service"))
        self.assertEqual(daemon[("Unit", "Conflicts")],
                         ["mboxmirror-once.service mboxmirror-once.timer"])
        self.assertEqual(once[("Unit", "Conflicts")], ["mboxmirror.service"])
        self.assertEqual(timer[("Unit", "Conflicts")], ["mboxmirror.service"])
        res = run(["systemd-analyze", "calendar", "*:0/15"])
        self.assertEqual(res.returncode, 0, res.stderr)

    def test_user_service(self):
        s = unit_settings(os.path.join(self.destdir, "usr/lib/systemd/user",
                                       "mboxmirror.service"))
        self.assertEqual(s[("Service", "Type")], ["notify"])
        self.assertEqual(s[("Service", "StateDirectory")], ["mboxmirror"])
        self.assertEqual(s[("Service", "ExecStart")], ["/usr/bin/mboxmirror"])
        self.assertEqual(s[("Install", "WantedBy")], ["default.target"])
        # Nothing that needs privileges to set up.
        for key in ("User", "DynamicUser", "ProtectSystem", "PrivateDevices"):
            self.assertNotIn(("Service", key), s)


class ManPages(unittest.TestCase):
    def test_groff_no_warnings(self):
        for page in ("mboxmirror.1", "mboxmirror.ini.5"):
            res = run(["groff", "-man", "-ww", "-z", os.path.join(SRC, "docs", page)])
            self.assertEqual((res.returncode, res.stdout + res.stderr), (0, ""), page)

    def test_man_renders(self):
        env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8")
        for page, title in (("mboxmirror.1", "MBOXMIRROR(1)"),
                            ("mboxmirror.ini.5", "MBOXMIRROR.INI(5)")):
            res = run(["man", "-l", "-P", "cat", os.path.join(SRC, "docs", page)], env=env)
            self.assertEqual(res.returncode, 0, res.stderr)
            self.assertEqual(res.stderr, "")
            first = res.stdout.lstrip().splitlines()[0]
            self.assertTrue(first.startswith(title), first)
            for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"):
                self.assertRegex(res.stdout, re.compile("^" + section + "$", re.M))

    def test_every_option_documented(self):
        text = man_source_text("mboxmirror.1")
        for opt in OPTIONS:
            # On a macro line (.B, .BR, .RB, .BI ...), not merely in running text.
            self.assertRegex(text, re.compile(r"^\.[BR][BRI]? (.* )?" + re.escape(opt) +
                                              r"( |$)", re.M), opt)
        # And the list above is the program's own: every option --help names.
        res = mmtest.run_mboxmirror("--help", timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        helped = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)(?=[ ,|\]])", res.stdout))
        self.assertEqual(helped - {"-c", "-a"}, set(OPTIONS) - {"-c", "-a"})
        for var in ENVIRONMENT:
            self.assertRegex(text, r"\.B[R]? " + var + r"\b", var)
        for sig in ("SIGTERM", "SIGINT", "SIGHUP"):
            self.assertIn(sig, text)
        for status in ("0", "1", "64", "78"):
            self.assertRegex(text, r"\.TP\n\.B " + status + "\n", status)

    def test_every_key_documented(self):
        text = man_source_text("mboxmirror.ini.5")
        general, accounts = text.split(".SH ACCOUNT SECTIONS")
        for key in GENERAL_KEYS:
            self.assertRegex(general, r"\.BI " + key + ' " = ', key)
        for key in ACCOUNT_KEYS:
            self.assertRegex(accounts, r"\.BI " + key + ' " = ', key)
        self.assertRegex(text, r"compress \" = \" auto\\fR\|\\fByes\\fR\|\\fBno")


if __name__ == "__main__":
    unittest.main(verbosity=2)
