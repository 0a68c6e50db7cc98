#!/usr/bin/env bash
# adduser.sh DIR NAME PASSWORD -- add a mail user to the test fixture started in DIR.
# Dovecot rereads the passwd-file when it changes, so a running fixture knows the user at
# once.  NAME and PASSWORD must not contain ':' or a newline.
set -euo pipefail
if [ $# -ne 3 ]; then
	echo "usage: $0 DIR NAME PASSWORD" >&2
	exit 64
fi
DIR=$1 NAME=$2 PASSWORD=$3
if [ ! -r "$DIR/fixture.vars" ]; then
	echo "adduser: no fixture in $DIR" >&2
	exit 1
fi
# shellcheck source=/dev/null
. "$DIR/fixture.vars"
case "$NAME$PASSWORD" in
*:* | *$'\n'*)
	echo "adduser: ':' and newlines are not allowed" >&2
	exit 64
	;;
esac
case "$NAME" in
"" | */* | .*)
	echo "adduser: bad user name '$NAME'" >&2
	exit 64
	;;
esac
if cut -d: -f1 "$PASSWD" | grep -qxF -- "$NAME"; then
	echo "adduser: $NAME exists" >&2
	exit 1
fi
home=$MAIL_ROOT/$NAME
mkdir -p "$home"
chown "$MAIL_UID:$MAIL_GID" "$home"
chmod 700 "$home"
# Append in one write so a concurrent lookup never sees half a line.
printf '%s\n' "$NAME:{PLAIN}$PASSWORD:$MAIL_UID:$MAIL_GID::$home::" >>"$PASSWD"

# Each running instance's auth process notices the change on a later lookup, but not
# always within the same second: wait until every one of them accepts the new user, so
# that a login right after this script returns succeeds.
DOVEADM_BIN=$(command -v doveadm || echo /usr/bin/doveadm)
shopt -s nullglob
for conf in "$DIR"/*.conf; do
	[ "$(basename "$conf")" = common.conf ] && continue
	base=$(sed -n 's/^base_dir = //p' "$conf")
	[ -s "$base/master.pid" ] || continue
	ok=0
	for _ in $(seq 1 100); do
		if "$DOVEADM_BIN" -c "$conf" auth test "$NAME" "$PASSWORD" >/dev/null 2>&1; then
			ok=1
			break
		fi
		sleep 0.05
	done
	if [ "$ok" = 0 ]; then
		echo "adduser: $(basename "$conf" .conf) does not accept $NAME" >&2
		exit 1
	fi
done
echo "adduser: added $NAME"
