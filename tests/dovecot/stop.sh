#!/usr/bin/env bash
# stop.sh DIR [--keep-files] -- stop the Dovecot test fixture that start.sh started in DIR.
# Signals only masters whose pid files lie in DIR's run directory and that run one of DIR's
# configurations; idempotent.  The run-time directory under /tmp, when start.sh had to use
# one, is removed too unless --keep-files is given.  Logs, configs and certificates in DIR
# stay for inspection.
set -euo pipefail
if [ $# -lt 1 ]; then
	echo "usage: $0 DIR [--keep-files]" >&2
	exit 64
fi
if [ ! -d "$1" ]; then
	exit 0
fi
DIR=$(cd "$1" && pwd)
KEEP=0
if [ "${2:-}" = --keep-files ]; then
	KEEP=1
fi

if [ -L "$DIR/root" ]; then
	ROOT=$(readlink "$DIR/root")
else
	ROOT=$DIR
fi
pids=()
for pidf in "$ROOT"/run/*/master.pid; do
	[ -s "$pidf" ] || continue
	pid=$(cat "$pidf")
	case "$pid" in '' | *[!0-9]*) continue ;; esac
	[ -r "/proc/$pid/cmdline" ] || continue
	# The pid may have been reused: it must be a dovecot running one of our configs.
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline")
	case "$cmd" in
	*dovecot*"-c $DIR/"*.conf*) ;;
	*) continue ;;
	esac
	if kill -TERM "$pid" 2>/dev/null; then
		pids+=("$pid")
	fi
done
alive() {
	# A zombie counts as gone: its parent (init) reaps it when it gets to it.
	local state
	state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ]
}
for pid in ${pids[@]+"${pids[@]}"}; do
	for _ in $(seq 1 200); do
		alive "$pid" || break
		sleep 0.05
	done
	if alive "$pid"; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
done
rm -f "$ROOT"/run/*/master.pid
if [ "$KEEP" = 0 ] && [ -L "$DIR/root" ]; then
	case "$ROOT" in
	/tmp/mmdovecot.*) rm -rf "$ROOT" ;;
	esac
	rm -f "$DIR/root"
fi
echo "dovecot fixture: stopped ${#pids[@]} instance(s) in $DIR"
