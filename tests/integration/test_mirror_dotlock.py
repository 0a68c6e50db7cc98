"""The mbox dotlock (DESIGN.md section 5) over a long sync.

- Its mtime is refreshed while the sync goes on, so that readers, which take a dotlock
  older than a few minutes for stale, never take ours.  mboxmirror refreshes it once a
  minute; the minute passes in an instant here: its time() runs ahead through the
  clockshift module ($MM_CLOCKSHIFT, tests/integration/clockshift.c).
- A dotlock someone else holds now (ours was taken for stale and theirs put in its
  place) is theirs: mboxmirror must not remove it when its sync ends.

The scripted server pauses in the middle of the bodies, so that the test acts while
the mbox is open and locked."""

import os
import random
import threading
import time
import unittest

import mirror_fakeimap
import mirror_util as mu
import mmtest
from mmtest import wait_for


class Dotlock(unittest.TestCase):

    def setUp(self):
        self.shim = os.environ.get("MM_CLOCKSHIFT")
        if not self.shim or not os.path.exists(self.shim):
            self.skipTest("MM_CLOCKSHIFT does not name the built clockshift module "
                          "(run through ctest)")

    def test_refreshed_and_never_taken_from_another(self):
        rng = random.Random(77)
        small = mmtest.make_message("small")
        # Big enough that its first part alone is written out (mbox.h:
        # MBOX_WRITE_BUFFER is 256 KiB) before the server pauses again.
        big = mmtest.make_message("big", mu.random_text_body(rng, 900_000,
                                                              from_lines=False))
        srv = mirror_fakeimap.FakeImap([(b"/", b"INBOX", [small, big])])
        pause = [threading.Event(), threading.Event()]      # the server waits
        go = [threading.Event(), threading.Event()]         # the test lets it go

        def fetch(conn, ctx):
            if not ctx["body"]:
                return None
            second = conn.fetch_response(2)
            conn.send(conn.fetch_response(1))
            pause[0].set()
            go[0].wait(30)
            conn.send(second[:600_000])
            pause[1].set()
            go[1].wait(30)
            return [second[600_000:] + ctx["tag"] + b" OK fetched\r\n"]
        srv.hooks["UID FETCH"] = fetch
        srv.start()
        self.addCleanup(srv.stop)
        for e in go:
            self.addCleanup(e.set)

        with mmtest.TempDir() as tmp:
            acct = {"__name__": "test", "host": "127.0.0.1", "port": str(srv.port),
                    "tls": "none", "allow_plaintext": "yes", "user": "u",
                    "password": "p", "output": os.path.join(tmp, "out", "test")}
            conf = mmtest.write_config(tmp, [acct])
            path = mu.mbox_path(tmp, "test", "INBOX")
            lock = path + ".lock"
            shift_file = os.path.join(tmp, "clock-shift")
            env = dict(os.environ, LD_PRELOAD=self.shim, MM_CLOCK_SHIFT_FILE=shift_file,
                       # A sanitizer build wants its runtime first; the module
                       # holds no code the sanitizers need to see.
                       ASAN_OPTIONS=":".join(filter(None, [
                           os.environ.get("ASAN_OPTIONS"), "verify_asan_link_order=0"])))
            proc = mu.start_mboxmirror("-c", conf, "--once", env=env)
            self.addCleanup(lambda: proc.poll() is None and mu.kill(proc))

            self.assertTrue(pause[0].wait(30), "the bodies were never fetched")
            st = wait_for(lambda: os.path.exists(lock) and os.stat(lock), 10,
                          what="the dotlock")
            with open(lock) as f:
                self.assertEqual(f.read().strip(), str(proc.pid))
            # A minute passes for mboxmirror; its lock looks 200 s old to a reader.
            with open(shift_file, "w") as f:
                f.write("61\n")
            old = time.time() - 200
            os.utime(lock, (old, old))
            go[0].set()

            self.assertTrue(pause[1].wait(30), "the server never paused again")
            # The next write refreshes it: it is young again, and still ours.
            st2 = wait_for(lambda: os.stat(lock).st_mtime > old + 150 and os.stat(lock),
                           10, what=lambda: f"the dotlock's mtime to be refreshed "
                           f"(still {time.time() - os.stat(lock).st_mtime:.0f} s old)")
            self.assertEqual(st2.st_ino, st.st_ino)

            # Someone took our lock for stale and holds it now.
            theirs = lock + ".theirs"
            with open(theirs, "w") as f:
                f.write(f"{os.getpid()}\n")
            their_time = time.time() - 30
            os.utime(theirs, (their_time, their_time))
            os.rename(theirs, lock)
            their_ino = os.stat(lock).st_ino
            go[1].set()

            out, err = proc.communicate(timeout=60)
            err = err.decode(errors="replace")
            self.assertEqual(proc.returncode, 0, err)
            # Their lock is still there, untouched.
            st3 = os.stat(lock)
            self.assertEqual(st3.st_ino, their_ino)
            self.assertEqual(int(st3.st_mtime), int(their_time))
            with open(lock) as f:
                self.assertEqual(f.read(), f"{os.getpid()}\n")
            mu.assert_mbox_holds(self, path, [small, big])

            # Once they let go, the next run finds nothing new and nothing to undo.
            os.unlink(lock)
            srv.hooks = {}
            res = mmtest.run_mboxmirror("-c", conf, "--once")
            self.assertEqual(res.returncode, 0, res.stderr)
            self.assertEqual(mu.count_opened(res.stdout)[2], 0, res.stdout)
            mu.assert_mbox_holds(self, path, [small, big])
            self.assertFalse(os.path.exists(lock))
        self.assertEqual(srv.errors, [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
