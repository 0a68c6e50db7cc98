#!/usr/bin/env bash
# demo.sh [--keep] -- see mboxmirror work, end to end, on this machine.
#
# Builds build/, starts a private Dovecot on loopback (tests/dovecot/start.sh) under
# ${XDG_RUNTIME_DIR:-/tmp}/mboxmirror-demo, fills an account with ~200 sample messages
# (scripts/sample-mail.py), writes a config for it, and runs mboxmirror --check-config,
# --probe and --once.  Then lists the mbox files with their sizes and message counts and
# shows the start of INBOX.mbox.  The server is stopped at the end unless --keep is given
# (then it prints how to run the daemon against it, deliver a test message, and stop it).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KEEP=0
for arg in "$@"; do
	case "$arg" in
	--keep) KEEP=1 ;;
	-h | --help)
		sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "usage: $0 [--keep]" >&2
		exit 64
		;;
	esac
done

DEMO=${XDG_RUNTIME_DIR:-/tmp}/mboxmirror-demo
SERVER=$DEMO/dovecot
if [ -t 1 ]; then
	step() { printf '\n\033[1m==== %s\033[0m\n' "$*"; }
else
	step() { printf '\n==== %s\n' "$*"; }
fi

step "dependencies"
bash "$REPO/scripts/deps.sh"
echo "all present"

step "build (build/)"
cmake -S "$REPO" -B "$REPO/build" -DMM_SANITIZE=OFF >/dev/null
cmake --build "$REPO/build" -j "$(nproc)" --target mboxmirror
MBOXMIRROR=$REPO/build/daemon/mboxmirror
[ -x "$MBOXMIRROR" ] || { echo "demo: $MBOXMIRROR was not built" >&2; exit 1; }

step "private Dovecot in $SERVER"
mkdir -p "$DEMO"
"$REPO/tests/dovecot/start.sh" "$SERVER"
stop_server() {
	"$REPO/tests/dovecot/stop.sh" "$SERVER" >/dev/null || true
}
if [ "$KEEP" = 0 ]; then
	trap stop_server EXIT
fi
# shellcheck source=/dev/null
. "$SERVER/env"

step "sample mail for user1"
python3 "$REPO/scripts/sample-mail.py" --env "$SERVER/env" --user user1

step "configuration ($DEMO/mboxmirror.ini)"
rm -rf "$DEMO/output" "$DEMO/state"
umask 077
echo "${USERS%% *}" | cut -d: -f2 >"$DEMO/demo.password"
cat >"$DEMO/mboxmirror.ini" <<EOF
; Written by scripts/demo.sh: one account on the demo's private Dovecot.
[general]
state_dir = $DEMO/state
timeout = 30s

[demo]
host = $HOST
port = $IMAPS_PORT
tls = implicit
ca_file = $CA_FILE
user = user1
password_file = $DEMO/demo.password
mailboxes = *
output = $DEMO/output
EOF
umask 022
sed 's/^/    /' "$DEMO/mboxmirror.ini"

# run_mm ARGS...: runs mboxmirror on the demo config; a failure stops the demo.
run_mm() {
	step "mboxmirror $*"
	"$MBOXMIRROR" -c "$DEMO/mboxmirror.ini" "$@" || {
		echo "demo: 'mboxmirror $*' exited $?" >&2
		exit 1
	}
}
run_mm --check-config
run_mm --probe demo
run_mm --once
run_mm --status

step "mirrored mbox files in $DEMO/output"
python3 - "$DEMO/output" <<'EOF'
import mailbox, os, sys
root = sys.argv[1]
files = []
for dirpath, _, names in os.walk(root):
    files += [os.path.join(dirpath, n) for n in names if n.endswith(".mbox")]
if not files:
    sys.exit("demo: no mbox file was written")
total = 0
for path in sorted(files):
    box = mailbox.mbox(path, create=False)
    n = len(box)
    box.close()
    total += n
    print(f"    {os.path.relpath(path, root):40s} {os.path.getsize(path):9d} bytes {n:4d} messages")
if files:
    print(f"    {len(files)} files, {total} messages")
EOF

inbox=$DEMO/output/INBOX.mbox
if [ -s "$inbox" ]; then
	step "the first message of INBOX.mbox"
	python3 - "$inbox" <<'EOF'
import sys
with open(sys.argv[1], "rb") as f:
    lines = f.read().split(b"\n")
out = [lines[0]]
for line in lines[1:]:
    if line.startswith(b"From "):
        break
    out.append(line)
if len(out) > 40:
    out = out[:40] + [b"    [... %d more lines]" % (len(out) - 40)]
sys.stdout.write(b"\n".join(out).decode("utf-8", "replace") + "\n")
EOF
fi

if [ "$KEEP" = 1 ]; then
	step "the server keeps running"
	cat <<EOF
    The config is $DEMO/mboxmirror.ini; the server's ports and users are in $SERVER/env.

    Run the daemon against it (in the foreground, with IDLE on INBOX; Ctrl-C stops it):
        $MBOXMIRROR -c $DEMO/mboxmirror.ini -v

    In another terminal, deliver a test message to user1's INBOX:
        printf 'From: demo@example.org\\nSubject: test from demo.sh\\n\\nHello.\\n' | $DOVEADM save -u user1 -m INBOX

    Within a second the daemon logs it, and it is the last message of
    $DEMO/output/INBOX.mbox:
        tail -n 5 $DEMO/output/INBOX.mbox
        $MBOXMIRROR -c $DEMO/mboxmirror.ini --status

    Or sync once instead of running the daemon:
        $MBOXMIRROR -c $DEMO/mboxmirror.ini --once

    Stop the server:
        $REPO/tests/dovecot/stop.sh $SERVER
EOF
fi
step "done"
