#!/usr/bin/env bash
# bench/run.sh -- mboxmirror against its peers and the raw limit, on a private Dovecot.
#
# One command: installs what is missing, builds mboxmirror (Release), starts the test
# fixture's Dovecot on loopback (tests/dovecot/start.sh), loads seeded corpora, times
# every row in every scenario, verifies every mirror, prints the tables and writes them
# to bench/README.md.  Everything it starts is stopped on exit.  See bench/README.md.
#
# Knobs (environment):
#   CORPORA="mail big many"    also: mail5k (the mail generator, 5,000 messages);
#                              "": none (e.g. only the SCALE rows)
#   ROWS="raw mboxmirror mboxmirror-z mbsync offlineimap getmail"
#                              ("many" also knows mbsync16; mboxmirror-z, with
#                              COMPRESS=DEFLATE, runs in the wan profile only)
#   ROWS_<corpus>=...          rows for one corpus only, e.g. ROWS_many="raw mboxmirror"
#   SCENARIOS="initial nochange incr"
#   PROFILES="loopback wan"    wan: every row goes through bench/wanproxy.py
#   RUNS=3                     timed runs per scenario (the median is reported)
#   INCR=100                   new messages per incr run
#   MANY_ACCOUNTS=200 MANY_CONNECTIONS=16
#   DAEMON_ACCOUNTS=1000 DAEMON_IDLE=60   with corpus many: the daemon's footprint
#                              with this many accounts, idle between polls (0: skip)
#   SCALE="push poll"          the daemon at scale, on a Dovecot instance of its own
#                              ("" skips): push, SCALE_PUSH=1000 accounts with
#                              idle = yes; poll, SCALE_POLL=10000 with idle = no
#   SCALE_IDLE=60 SCALE_SAMPLE=20   seconds watched idle; accounts timed for push
#   WAN_RTT_MS=40 WAN_MBIT=50
#   MMBENCH_DIR=/var/tmp/mmbench   corpora cache, server, mirrors, results
#   RESULTS=DIR                reuse a results directory: later runs add to its tables
#   README=bench/README.md     where the report goes ("" = only print it)
#   MBOXMIRROR=/path/bin       use this binary instead of building one
#   TIMEOUT=3600               seconds before a run is killed and counted as failed
set -euo pipefail
export LC_ALL=C.UTF-8

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
CORPORA=${CORPORA-mail big many}
ROWS=${ROWS:-raw mboxmirror mboxmirror-z mbsync offlineimap getmail}
SCENARIOS=${SCENARIOS:-initial nochange incr}
PROFILES=${PROFILES:-loopback wan}
RUNS=${RUNS:-3}
INCR=${INCR:-100}
MANY_ACCOUNTS=${MANY_ACCOUNTS:-200}
MANY_CONNECTIONS=${MANY_CONNECTIONS:-16}
DAEMON_ACCOUNTS=${DAEMON_ACCOUNTS:-1000}
DAEMON_IDLE=${DAEMON_IDLE:-60}
SCALE=${SCALE-push poll}
SCALE_PUSH=${SCALE_PUSH:-1000}
SCALE_POLL=${SCALE_POLL:-10000}
SCALE_IDLE=${SCALE_IDLE:-60}
SCALE_SAMPLE=${SCALE_SAMPLE:-20}
WAN_RTT_MS=${WAN_RTT_MS:-40}
WAN_MBIT=${WAN_MBIT:-50}
WORK=${MMBENCH_DIR:-/var/tmp/mmbench}
RESULTS=${RESULTS:-$WORK/results/$(date +%Y%m%d-%H%M%S)}
README=${README-$HERE/README.md}
TIMEOUT=${TIMEOUT:-3600}
PY=python3

say() { printf '\n== %s\n' "$*"; }
die() {
	echo "bench: $*" >&2
	exit 1
}
has_word() { case " $1 " in *" $2 "*) return 0 ;; esac; return 1; }

# ---- packages -------------------------------------------------------------------------
as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}
install_missing() {
	local want=() pkg
	want+=(python3 dovecot-imapd gnutls-bin time cmake pkg-config gcc make
	    libev-dev libgnutls28-dev libinih-dev zlib1g-dev)
	local all="$ROWS ${ROWS_mail:-} ${ROWS_mail5k:-} ${ROWS_big:-} ${ROWS_many:-}"
	if has_word "$all" mbsync || has_word "$all" mbsync16; then want+=(isync); fi
	if has_word "$all" getmail; then want+=(getmail6); fi
	if has_word "$all" offlineimap; then want+=(offlineimap3); fi
	local missing=()
	for pkg in "${want[@]}"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
		    missing+=("$pkg")
	done
	[ ${#missing[@]} -gt 0 ] || return 0
	say "installing ${missing[*]}"
	# Keep the package's own Dovecot service from starting: a policy-rc.d for the
	# duration of the install, only if there is none already.
	local policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
		as_root chmod 755 "$policy"
	fi
	as_root apt-get -o DPkg::Lock::Timeout=600 update -qq || true
	as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
	    install -y -qq --no-install-recommends "${missing[@]}" || {
		[ -z "$policy" ] || as_root rm -f "$policy"
		die "apt-get install failed"
	}
	[ -z "$policy" ] || as_root rm -f "$policy"
}

# ---- clean-up -------------------------------------------------------------------------
SERVER=$WORK/server
PROXY_PID=
SERVER_STARTED=0
INOTIFY_RESTORE=
cleanup() {
	local rc=$?
	if [ -n "$INOTIFY_RESTORE" ]; then
		echo "$INOTIFY_RESTORE" >/proc/sys/fs/inotify/max_user_instances || true
	fi
	if [ -n "$PROXY_PID" ]; then
		kill "$PROXY_PID" 2>/dev/null || true
		wait "$PROXY_PID" 2>/dev/null || true
	fi
	if [ "$SERVER_STARTED" = 1 ]; then
		"$TOP/tests/dovecot/stop.sh" "$SERVER" >/dev/null 2>&1 || true
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || die "run as root (the fixture's Dovecot needs it to switch users; getmail runs as nobody)"
install_missing
command -v /usr/bin/time >/dev/null || die "/usr/bin/time missing"

mkdir -p "$WORK/corpus" "$RESULTS/logs"
RESULTS=$(cd "$RESULTS" && pwd)
echo "results: $RESULTS"

# ---- mboxmirror -----------------------------------------------------------------------
if [ -z "${MBOXMIRROR:-}" ]; then
	say "building mboxmirror (Release) in build-bench/"
	cmake -S "$TOP" -B "$TOP/build-bench" -DCMAKE_BUILD_TYPE=Release >"$RESULTS/logs/build.log" 2>&1 ||
	    die "cmake failed; see $RESULTS/logs/build.log"
	cmake --build "$TOP/build-bench" --target mboxmirror -j"$(nproc)" >>"$RESULTS/logs/build.log" 2>&1 ||
	    die "build failed; see $RESULTS/logs/build.log"
	MBOXMIRROR=$(find "$TOP/build-bench" -type f -name mboxmirror -perm -u+x | head -n1)
	MM_ORIGIN="built from git $(git -C "$TOP" describe --always --dirty 2>/dev/null || echo '?')"
else
	MM_ORIGIN="given binary $MBOXMIRROR of $(date -u -r "$MBOXMIRROR" '+%Y-%m-%d %H:%M UTC')"
fi
[ -x "$MBOXMIRROR" ] || die "no mboxmirror binary"

# The raw limit's client (C, so that its own CPU does not take the server's).
RAWFETCH=$WORK/rawfetch
# shellcheck disable=SC2046
cc -O2 -Wall -Wextra -Werror -o "$RAWFETCH" "$HERE/rawfetch.c" $(pkg-config --cflags --libs gnutls) \
    >>"$RESULTS/logs/build.log" 2>&1 || die "rawfetch build failed; see $RESULTS/logs/build.log"

# ---- server ---------------------------------------------------------------------------
say "starting Dovecot (tests/dovecot/start.sh $SERVER)"
SERVER_STARTED=1
"$TOP/tests/dovecot/start.sh" "$SERVER" >/dev/null
# shellcheck source=/dev/null
. "$SERVER/env"
DOVEADM_CMD=($DOVEADM)
MASTER_PID=$(sed -n 's/^base_dir = //p' "$DOVECOT_CONF")/master.pid
PORT_LOOPBACK=$IMAPS_PORT
CA=$CA_FILE

free_port() {
	$PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
if has_word "$PROFILES" wan; then
	PORT_WAN=$(free_port)
	rm -f "$WORK/wanproxy.ready"
	$PY "$HERE/wanproxy.py" --listen "$PORT_WAN" --target "127.0.0.1:$IMAPS_PORT" \
	    --rtt-ms "$WAN_RTT_MS" --mbit "$WAN_MBIT" --ready "$WORK/wanproxy.ready" \
	    >"$RESULTS/logs/wanproxy.log" 2>&1 &
	PROXY_PID=$!
	for _ in $(seq 1 100); do
		[ -s "$WORK/wanproxy.ready" ] && break
		sleep 0.1
	done
	[ -s "$WORK/wanproxy.ready" ] || die "the WAN proxy did not start"
fi

# ---- users and corpora ----------------------------------------------------------------
# import_into USERFILE SRC: one doveadm process imports SRC (a Maildir++ tree) for every
# user listed in USERFILE.  INDEX=MEMORY and a separate CONTROL directory keep the cached
# tree untouched, so it can be imported again and again.
import_into() {
	local users=$1 src=$2 ctl d
	ctl=$(mktemp -d "$WORK/import-ctl.XXXXXX")
	mkdir -p "$ctl/.INBOX"
	for d in "$src"/.[!.]*; do
		[ -d "$d/cur" ] && mkdir -p "$ctl/$(basename "$d")"
	done
	chown -R "$MAIL_USER" "$ctl"
	"${DOVEADM_CMD[@]}" import -F "$users" -s "maildir:$src:INDEX=MEMORY:CONTROL=$ctl" "" all \
	    >>"$RESULTS/logs/import.log" 2>&1 || die "doveadm import failed; see $RESULTS/logs/import.log"
	! grep -q 'Error:' "$RESULTS/logs/import.log" || die "doveadm import reported errors; see $RESULTS/logs/import.log"
	rm -rf "$ctl"
	# With -F, doveadm imports for the first user without dropping root: give the homes
	# back to the mail user.
	local u
	while read -r u; do
		chown -R "$MAIL_USER:" "$MAIL_ROOT/$u"
	done <"$users"
}

# server_totals USER: "messages vsize" over all its mailboxes (vsize = RFC822.SIZE sum)
server_totals() {
	"${DOVEADM_CMD[@]}" -f tab mailbox status -u "$1" "messages vsize" '*' |
	    awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "messages") km = i; if ($i == "vsize") kv = i } }
		NR > 1 { m += $km; v += $kv } END { printf "%d %d\n", m, v }'
}
uidnext_of() {
	"${DOVEADM_CMD[@]}" -f tab mailbox status -u "$1" uidnext "$2" |
	    awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "uidnext") k = i } NR == 2 { print $k }'
}
mailboxes_of() {
	"${DOVEADM_CMD[@]}" -f tab mailbox status -u "$1" messages '*' |
	    awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "mailbox") k = i } NR > 1 { print $k }'
}

declare -A C_USER C_PASS C_MSGS C_BYTES
setup_corpus() {
	local c=$1 src kind=$1 t0
	t0=$(date +%s)
	src=$($PY "$HERE/corpus.py" generate "$kind" "$WORK/corpus")
	C_PASS[$c]="pw-$c-bench"
	if [ "$c" = many ]; then
		C_USER[$c]=many001
		: >"$WORK/many.users"
		: >"$WORK/many.accounts"
		local i u
		for i in $(seq 1 "$MANY_ACCOUNTS"); do
			u=$(printf 'many%03d' "$i")
			echo "$u" >>"$WORK/many.users"
		done
		# adduser.sh waits until every fixture instance accepts the user: run several.
		xargs -P 8 -I{} "$TOP/tests/dovecot/adduser.sh" "$SERVER" {} "${C_PASS[$c]}" \
		    <"$WORK/many.users" >>"$RESULTS/logs/import.log" 2>&1 || die "adduser failed"
		import_into "$WORK/many.users" "$src"
		local m b
		read -r m b < <(server_totals many001)
		C_MSGS[$c]=$((m * MANY_ACCOUNTS))
		C_BYTES[$c]=$((b * MANY_ACCOUNTS))
	else
		C_USER[$c]=bench-$c
		"$TOP/tests/dovecot/adduser.sh" "$SERVER" "${C_USER[$c]}" "${C_PASS[$c]}" \
		    >>"$RESULTS/logs/import.log" 2>&1 || die "adduser failed"
		echo "${C_USER[$c]}" >"$WORK/$c.users"
		import_into "$WORK/$c.users" "$src"
		read -r "C_MSGS[$c]" "C_BYTES[$c]" < <(server_totals "${C_USER[$c]}")
	fi
	echo "corpus $c: ${C_MSGS[$c]} messages, $(awk -v b="${C_BYTES[$c]}" 'BEGIN { printf "%.1f", b / 1e6 }') MB" \
	    "on the server ($(($(date +%s) - t0)) s to generate or load and import)"
	[ "${C_MSGS[$c]}" -gt 0 ] || die "corpus $c did not reach the server; see $RESULTS/logs/import.log"
	printf '%s\t%s\t%s\n' "$c" "${C_MSGS[$c]}" "${C_BYTES[$c]}" >>"$RESULTS/corpora.tsv"
}

# ---- rows -----------------------------------------------------------------------------
# configure ROW CORPUS PROFILE: writes the row's configuration under $OUT and sets
#   CMD (the timed command), WIPE (shell code that empties the mirror),
#   VKIND, VARGS (how verify.py checks the mirror)
configure() {
	local row=$1 c=$2 profile=$3 port user pass i u
	port=$PORT_LOOPBACK
	[ "$profile" = wan ] && port=$PORT_WAN
	user=${C_USER[$c]}
	pass=${C_PASS[$c]}
	OUT=$WORK/mirror/$profile-$c-$row
	CFG=$WORK/config/$profile-$c-$row
	rm -rf "$CFG"
	mkdir -p "$CFG"
	chmod 700 "$CFG"
	WIPE="rm -rf '$OUT' && mkdir -p '$OUT'"
	local accounts=$CFG/accounts
	: >"$accounts"
	WIPE="$WIPE && cut -d' ' -f3 '$accounts' | xargs -r mkdir -p"
	if [ "$c" = many ]; then
		while read -r u; do
			echo "$u $pass $OUT/$u" >>"$accounts"
		done <"$WORK/many.users"
		VARGS=(--accounts "$accounts")
	else
		echo "$user $pass $OUT/mail" >>"$accounts"
		VARGS=(--user "$user" --password "$pass" --dir "$OUT/mail")
	fi
	case $row in
	raw)
		if [ "$c" = many ]; then
			CMD=("$RAWFETCH" --port "$port" --ca "$CA" --accounts "$accounts"
			    --jobs "$MANY_CONNECTIONS")
		else
			CMD=("$RAWFETCH" --port "$port" --ca "$CA" --user "$user"
			    --password "$pass" --out "$OUT/mail" --state "$OUT/mail/state.json")
		fi
		VKIND=raw
		;;
	mboxmirror | mboxmirror-z)
		# -z: COMPRESS=DEFLATE, which pays only where the link is the limit
		local compress=no
		if [ "$row" = mboxmirror-z ]; then
			[ "$profile" = wan ] || return 1
			compress=yes
		fi
		{
			printf '[general]\nstate_dir = %s/state\nmax_connections = %s\nlog_level = warning\n' \
			    "$OUT" "$MANY_CONNECTIONS"
			while read -r u p d; do
				printf '\n[%s]\nhost = 127.0.0.1\nport = %s\ntls = implicit\nca_file = %s\n' \
				    "$u" "$port" "$CA"
				printf 'user = %s\npassword = %s\noutput = %s\nidle = no\ncompress = %s\n' \
				    "$u" "$p" "$d" "$compress"
			done <"$accounts"
		} >"$CFG/mboxmirror.ini"
		chmod 600 "$CFG/mboxmirror.ini"
		CMD=("$MBOXMIRROR" -c "$CFG/mboxmirror.ini" --once -q)
		VKIND=mbox
		;;
	mbsync | mbsync16)
		: >"$CFG/list"
		i=0
		while read -r u p d; do
			i=$((i + 1))
			{
				printf 'IMAPAccount a%d\nHost localhost\nPort %s\nUser %s\nPass %s\n' "$i" "$port" "$u" "$p"
				printf 'SSLType IMAPS\nCertificateFile %s\nSystemCertificates no\n\n' "$CA"
				printf 'IMAPStore r%d\nAccount a%d\n\n' "$i" "$i"
				printf 'MaildirStore l%d\nPath %s/\nInbox %s/INBOX\nSubFolders Verbatim\n\n' "$i" "$d" "$d"
				printf 'Channel c%d\nFar :r%d:\nNear :l%d:\nPatterns *\nCreate Near\nSync Pull\nSyncState *\n\n' \
				    "$i" "$i" "$i"
			} >"$CFG/mbsyncrc.$i"
			echo "$CFG/mbsyncrc.$i" >>"$CFG/list"
		done <"$accounts"
		cat "$CFG"/mbsyncrc.* >"$CFG/mbsyncrc"
		chmod 600 "$CFG"/mbsyncrc*
		if [ "$row" = mbsync ]; then
			# one process, one config with every account as a channel, run in turn
			CMD=(mbsync -c "$CFG/mbsyncrc" -q -a)
		else
			# as many mbsync processes at once as mboxmirror has connections
			CMD=(sh -c "xargs -P $MANY_CONNECTIONS -I{} mbsync -c {} -q -a <'$CFG/list'")
		fi
		VKIND=maildir
		;;
	offlineimap)
		[ "$c" != many ] || return 1
		{
			printf '[general]\naccounts = %s\nmetadata = %s/meta\n' \
			    "$(cut -d' ' -f1 "$accounts" | paste -sd, -)" "$OUT"
			while read -r u p d; do
				printf '\n[Account %s]\nlocalrepository = L%s\nremoterepository = R%s\n' "$u" "$u" "$u"
				printf '\n[Repository L%s]\ntype = Maildir\nlocalfolders = %s\n' "$u" "$d"
				printf '\n[Repository R%s]\ntype = IMAP\nremotehost = localhost\nremoteport = %s\n' "$u" "$port"
				printf 'ssl = yes\nsslcacertfile = %s\nremoteuser = %s\nremotepass = %s\nreadonly = True\n' \
				    "$CA" "$u" "$p"
			done <"$accounts"
		} >"$CFG/offlineimaprc"
		chmod 600 "$CFG/offlineimaprc"
		CMD=(offlineimap -c "$CFG/offlineimaprc" -o -u quiet)
		VKIND=maildir
		;;
	getmail)
		# getmail sends a retriever's mail to one destination: one rc file (one IMAP
		# session) per mailbox, each into its own mboxrd file, all run by one getmail.
		# It refuses to deliver as root, so it runs as nobody.
		local rcs=() touch=() name wire n=0
		[ "$c" != many ] || return 1
		while IFS= read -r name; do
			n=$((n + 1))
			wire=$($PY "$HERE/corpus.py" mutf7 "$name")
			local mbox
			mbox="$OUT/mail/$($PY -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$wire").mbox"
			{
				printf '[retriever]\ntype = SimpleIMAPSSLRetriever\nserver = 127.0.0.1\nport = %s\n' "$port"
				printf 'username = %s\npassword = %s\nmailboxes = ("%s",)\nca_certs = %s\n' \
				    "$user" "$pass" "$name" "$CA"
				# getmail waits this long for a delivery child whose exit it missed (a
				# lost SIGCHLD, see README), then gives up on the mailbox: a shorter wait
				# than its 180 s default keeps such a stall cheap.
				printf 'timeout = %s\n' "${GETMAIL_TIMEOUT:-20}"
				printf 'record_mailbox = false\n\n[destination]\ntype = Mboxrd\npath = %s\n\n' "$mbox"
				printf '[options]\nread_all = false\ndelete = false\ndelivered_to = false\n'
				printf 'received = false\nverbose = 0\n'
			} >"$CFG/$n.rc"
			rcs+=(--rcfile "$CFG/$n.rc")
			touch+=("'$mbox'")
		done < <(mailboxes_of "$user")
		chmod 644 "$CFG"/*.rc
		chmod 755 "$CFG"
		WIPE="rm -rf '$OUT' && mkdir -p '$OUT/mail' '$OUT/state' && touch ${touch[*]} && chown -R nobody:nogroup '$OUT'"
		CMD=(setpriv --reuid=nobody --regid=nogroup --clear-groups
		    getmail --getmaildir "$OUT/state" "${rcs[@]}")
		VKIND=mboxcount
		;;
	*)
		return 1
		;;
	esac
}

verify() {
	local label=$1
	$PY "$HERE/verify.py" --kind "$VKIND" --port "$PORT_LOOPBACK" --ca "$CA" "${VARGS[@]}" \
	    --label "$label" --json "$RESULTS/verify.jsonl" 2>&1 | sed 's/^/    /' || true
}

measure() {
	local profile=$1 c=$2 row=$3 scen=$4 run=$5 msgs=$6 bytes=$7
	$PY "$HERE/measure.py" --out "$RESULTS/runs.jsonl" --server-pid "$MASTER_PID" \
	    --timeout "$TIMEOUT" --log "$RESULTS/logs/$profile-$c-$row.log" \
	    --set "profile=$profile" --set "corpus=$c" --set "row=$row" --set "scenario=$scen" \
	    --set "run=$run" --set "messages=$msgs" --set "bytes=$bytes" -- "${CMD[@]}" || true
}

# deliver ROUND for every user of corpus c; sets D_MSGS D_BYTES (all accounts together)
deliver() {
	local c=$1 r=$2 src m0 b0 m1 b1
	src=$WORK/corpus/incr-$INCR-r$r
	[ -d "$src/cur" ] ||
	    $PY "$HERE/corpus.py" incr "$src" "$r" --count "$INCR" >/dev/null
	read -r m0 b0 < <(server_totals "${C_USER[$c]}")
	import_into "$WORK/$c.users" "$src"
	read -r m1 b1 < <(server_totals "${C_USER[$c]}")
	D_MSGS=$((m1 - m0))
	D_BYTES=$((b1 - b0))
}

run_row() {
	local profile=$1 c=$2 row=$3 i label u0i u0a
	configure "$row" "$c" "$profile" || {
		echo "  ($row does not apply to corpus $c)"
		return 0
	}
	say "$profile / $c / $row"
	label="$profile/$c/$row"
	if has_word "$SCENARIOS" initial; then
		for i in $(seq 1 "$RUNS"); do
			sh -c "$WIPE"
			printf '  initial   %d/%d' "$i" "$RUNS"
			measure "$profile" "$c" "$row" initial "$i" "${C_MSGS[$c]}" "${C_BYTES[$c]}"
			# Every initial mirror is checked: a fault may show in one run only.
			verify "$label/initial/$i"
		done
	else
		sh -c "$WIPE"
		"${CMD[@]}" >>"$RESULTS/logs/$profile-$c-$row.log" 2>&1 || true
	fi
	if has_word "$SCENARIOS" nochange; then
		for i in $(seq 1 "$RUNS"); do
			# mbsync sleeps a second when its maildir changed within the last one:
			# keep every row's runs that far apart (untimed).
			sleep 1.1
			printf '  nochange  %d/%d' "$i" "$RUNS"
			measure "$profile" "$c" "$row" nochange "$i" 0 0
		done
		verify "$label/nochange"
		if [ "$row" = mboxmirror ] && [ "$c" != many ]; then
			# What a no-change resync sends (untimed): its commands, from -v.
			{
				echo "# $label: nothing new on the server"
				"${CMD[@]:0:${#CMD[@]}-1}" -v 2>&1 | sed -n 's/^.* C: //p'
			} >>"$RESULTS/commands.txt"
		fi
	fi
	if has_word "$SCENARIOS" incr && [ "$c" != many ]; then
		u0i=$(uidnext_of "${C_USER[$c]}" INBOX)
		u0a=$(uidnext_of "${C_USER[$c]}" Archive)
		for i in $(seq 1 "$RUNS"); do
			deliver "$c" "$i"
			sleep 1.1
			printf '  incr-%s  %d/%d' "$INCR" "$i" "$RUNS"
			measure "$profile" "$c" "$row" incr "$i" "$D_MSGS" "$D_BYTES"
		done
		verify "$label/incr"
		# Back to the corpus as generated for the next row.
		"${DOVEADM_CMD[@]}" expunge -u "${C_USER[$c]}" mailbox INBOX uid "$u0i:*"
		"${DOVEADM_CMD[@]}" expunge -u "${C_USER[$c]}" mailbox Archive uid "$u0a:*"
	fi
	[ -n "${KEEP_MIRRORS:-}" ] || rm -rf "$OUT"
}

# daemon_footprint: the daemon (not --once) with DAEMON_ACCOUNTS accounts over the
# users of corpus many, polling hourly: its first round, then its memory and CPU
# while it idles DAEMON_IDLE seconds between polls.
daemon_footprint() {
	local dir=$WORK/daemon i u
	say "loopback / many / daemon with $DAEMON_ACCOUNTS accounts"
	rm -rf "$dir"
	mkdir -p "$dir"
	chmod 700 "$dir"
	mapfile -t users <"$WORK/many.users"
	{
		printf '[general]\nstate_dir = %s/state\nmax_connections = %s\ninterval = 1h\n' \
		    "$dir" "$MANY_CONNECTIONS"
		printf 'log_level = info\n'
		for i in $(seq 1 "$DAEMON_ACCOUNTS"); do
			u=${users[$(((i - 1) % ${#users[@]}))]}
			printf '\n[d%04d]\nhost = 127.0.0.1\nport = %s\ntls = implicit\nca_file = %s\n' \
			    "$i" "$PORT_LOOPBACK" "$CA"
			printf 'user = %s\npassword = %s\noutput = %s/out/d%04d\nidle = no\ncompress = no\n' \
			    "$u" "${C_PASS[many]}" "$dir" "$i"
		done
	} >"$dir/mboxmirror.ini"
	chmod 600 "$dir/mboxmirror.ini"
	$PY "$HERE/daemon_scale.py" --mboxmirror "$MBOXMIRROR" --config "$dir/mboxmirror.ini" \
	    --accounts "$DAEMON_ACCOUNTS" --idle "$DAEMON_IDLE" --timeout "$TIMEOUT" \
	    --log "$RESULTS/logs/daemon.log" --out "$RESULTS/daemon.jsonl" || echo "  daemon run failed"
	[ -n "${KEEP_MIRRORS:-}" ] || rm -rf "$dir"
}

# ---- the daemon at scale --------------------------------------------------------------
# A Dovecot instance of its own (the fixture's limits suit the tests, 200 connections):
# imap-login in high-performance mode (two processes, each proxying many TLS
# connections, instead of one process per connection; it also lets a TLS session
# resume within a process), one imap process per session, and limits for SCALE_USERS
# users with a push connection and a sync each.  Stopped with the fixture (stop.sh
# signals every master under its run directory).
SCALE_CONF=
SCALE_PORT=
SCALE_USERS=
SCALE_PASS=pw-scale-bench
scale_server() {
	local root i u home
	SCALE_USERS=$SCALE_PUSH
	[ "$SCALE_USERS" -ge 100 ] || SCALE_USERS=100
	# shellcheck source=/dev/null
	. "$SERVER/fixture.vars"
	root=$(dirname "$MAIL_ROOT")
	mkdir -p "$root/run/scale" "$root/state/scale"
	chmod 755 "$root/run/scale"
	: >"$WORK/scale.users"
	for i in $(seq 1 "$SCALE_USERS"); do
		u=$(printf 'scale%04d' "$i")
		home=$MAIL_ROOT/$u
		echo "$u" >>"$WORK/scale.users"
		printf '%s:{PLAIN}%s:%s:%s::%s::\n' "$u" "$SCALE_PASS" "$MAIL_UID" "$MAIL_GID" \
		    "$home" >>"$PASSWD"
		mkdir -p "$home"
	done
	chown "$MAIL_UID:$MAIL_GID" "$MAIL_ROOT"/scale*
	chmod 700 "$MAIL_ROOT"/scale*
	# Dovecot's IDLE watches a mailbox with inotify, an instance per imap process, and
	# every imap process here runs as the one mail user: past
	# fs.inotify.max_user_instances (128 by default) the others look every 30 s
	# (mailbox_idle_check_interval), and push would measure that.  Raised for the run,
	# put back at exit.
	local want=$((2 * SCALE_USERS + 256)) have
	have=$(cat /proc/sys/fs/inotify/max_user_instances)
	if [ "$have" -lt "$want" ]; then
		if echo "$want" >/proc/sys/fs/inotify/max_user_instances; then
			INOTIFY_RESTORE=$have
		else
			echo "bench: cannot raise fs.inotify.max_user_instances to $want: push" \
			    "latency will include Dovecot's 30 s polling" >&2
		fi
	fi
	SCALE_PORT=$(free_port)
	SCALE_CONF=$SERVER/scale.conf
	cat >"$SCALE_CONF" <<EOF
# mboxmirror bench: the instance for the daemon at scale (written by bench/run.sh).
!include $SERVER/common.conf
instance_name = mmbench-scale
base_dir = $root/run/scale
state_dir = $root/state/scale
listen = 127.0.0.1
ssl = required
disable_plaintext_auth = yes
ssl_cert = <$SERVER/ssl/server.pem
ssl_key = <$SERVER/ssl/server-key.pem
default_process_limit = $((2 * SCALE_USERS + 100))
default_client_limit = $((4 * SCALE_USERS + 1000))
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = $SCALE_PORT
    ssl = yes
  }
  service_count = 0
  process_min_avail = 2
  process_limit = 2
  client_limit = $((2 * SCALE_USERS + 100))
}
service imap {
  process_limit = $((2 * SCALE_USERS + 100))
}
protocol imap {
  mail_max_userip_connections = 50
}
EOF
	dovecot -c "$SCALE_CONF" </dev/null >>"$RESULTS/logs/scale-dovecot.log" 2>&1 ||
	    die "the scale instance did not start; see $RESULTS/logs/scale-dovecot.log"
	for _ in $(seq 1 100); do
		if $PY -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' \
		    "$SCALE_PORT" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	die "the scale instance does not accept connections on $SCALE_PORT"
}

# scale_config FILE N IDLE: N accounts over the scale users, in turn
scale_config() {
	local file=$1 n=$2 idle=$3 dir i u
	dir=$(dirname "$file")
	mapfile -t users <"$WORK/scale.users"
	{
		printf '[general]\nstate_dir = %s/state\nmax_connections = %s\ninterval = 1h\n' \
		    "$dir" "$MANY_CONNECTIONS"
		printf 'log_level = info\n'
		for i in $(seq 1 "$n"); do
			u=${users[$(((i - 1) % ${#users[@]}))]}
			printf '\n[s%05d]\nhost = 127.0.0.1\nport = %s\ntls = implicit\nca_file = %s\n' \
			    "$i" "$SCALE_PORT" "$CA"
			printf 'user = %s\npassword = %s\noutput = %s/out/s%05d\nidle = %s\ncompress = no\n' \
			    "$u" "$SCALE_PASS" "$dir" "$i" "$idle"
		done
	} >"$file"
	chmod 600 "$file"
}

# scale_row push|poll: the daemon with SCALE_PUSH accounts on push, timed for push
# latency, or with SCALE_POLL polling accounts and --check-config timed
scale_row() {
	local kind=$1 dir=$WORK/scale-$1 n args=()
	case $kind in
	push)
		n=$SCALE_PUSH
		scale_config "$dir/mboxmirror.ini" "$n" yes
		args=(--push "$n" --push-sample "$SCALE_SAMPLE" --deliver doveadm -c "$SCALE_CONF"
		    save)
		;;
	poll)
		n=$SCALE_POLL
		scale_config "$dir/mboxmirror.ini" "$n" no
		args=(--check-config)
		;;
	*) die "SCALE: unknown row $kind (push, poll)" ;;
	esac
	say "loopback / scale / $kind: $n accounts"
	$PY "$HERE/daemon_scale.py" --mboxmirror "$MBOXMIRROR" --config "$dir/mboxmirror.ini" \
	    --accounts "$n" --label "$kind" --idle "$SCALE_IDLE" --timeout "$TIMEOUT" \
	    --log "$RESULTS/logs/scale-$kind.log" --out "$RESULTS/scale.jsonl" "${args[@]}" ||
	    echo "  scale $kind failed"
	[ -n "${KEEP_MIRRORS:-}" ] || rm -rf "$dir"
}

# ---- machine --------------------------------------------------------------------------
{
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)," \
	    "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), Linux $(uname -r)"
	echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "dovecot: $(dovecot --version 2>/dev/null || echo ?) (fixture tests/dovecot, sdbox, mail_fsync = never)"
	echo "tls: $($PY - "$PORT_LOOPBACK" "$CA" <<'EOF'
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
with ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))),
                     server_hostname="127.0.0.1") as s:
    print(f"{s.version()} {s.cipher()[0]}, certificate verified against the fixture CA")
EOF
)"
	echo "gnutls: $(gnutls-cli --version 2>/dev/null | head -n1 | sed 's/.*gnutls //')"
	echo "mboxmirror: $("$MBOXMIRROR" --version 2>&1 | head -n1), $MM_ORIGIN"
	command -v mbsync >/dev/null && echo "mbsync: $(mbsync --version 2>&1 | head -n1)"
	command -v offlineimap >/dev/null && echo "offlineimap: $(offlineimap --version 2>&1 | head -n1)"
	command -v getmail >/dev/null && echo "getmail: $(getmail --version 2>&1 | head -n1)"
	echo "python: $($PY --version 2>&1)"
	echo "wan profile: ${WAN_RTT_MS} ms round trip, ${WAN_MBIT} Mbit/s each way (bench/wanproxy.py)"
	echo "options: CORPORA=\"$CORPORA\" ROWS=\"$ROWS\"$(for v in ${!ROWS_*}; do printf ' %s="%s"' "$v" "${!v}"; done)" \
	    "SCENARIOS=\"$SCENARIOS\" PROFILES=\"$PROFILES\" RUNS=$RUNS"
	# What starting a process under measure.py costs here: the floor under every wall.
	floor=$WORK/floor.jsonl
	rm -f "$floor"
	for _ in 1 2 3 4 5; do
		$PY "$HERE/measure.py" --out "$floor" -- true >/dev/null || true
	done
	echo "harness floor: $($PY -c 'import json, statistics, sys
print("%.3f s" % statistics.median(json.loads(l)["wall"] for l in open(sys.argv[1])))' "$floor")" \
	    "median wall of \`true\` under measure.py (process start-up on this machine)"
} >>"$RESULTS/machine.txt"
cat "$RESULTS/machine.txt"

# ---- the runs -------------------------------------------------------------------------
for c in $CORPORA; do
	say "corpus $c"
	setup_corpus "$c"
	# Warm the server's caches once, untimed, so the first row is not penalised.
	if [ "$c" = many ]; then
		configure raw many loopback
		"$RAWFETCH" --port "$PORT_LOOPBACK" --ca "$CA" --accounts "$CFG/accounts" --discard 2>/dev/null || true
	else
		"$RAWFETCH" --port "$PORT_LOOPBACK" --ca "$CA" --user "${C_USER[$c]}" \
		    --password "${C_PASS[$c]}" --discard 2>/dev/null || true
	fi
	rows_var=ROWS_$c
	rows=${!rows_var:-$ROWS}
	if [ "$c" = many ] && [ -z "${ROWS_many:-}" ] && has_word "$rows" mbsync; then
		rows="$rows mbsync16"
	fi
	for profile in $PROFILES; do
		for row in $rows; do
			run_row "$profile" "$c" "$row"
		done
	done
	if [ "$c" = many ] && [ "$DAEMON_ACCOUNTS" -gt 0 ] && has_word "$rows" mboxmirror &&
	    has_word "$PROFILES" loopback; then
		daemon_footprint
	fi
done
if [ -n "$SCALE" ]; then
	say "the daemon at scale"
	scale_server
	for kind in $SCALE; do
		rm -rf "$WORK/scale-$kind"
		mkdir -p "$WORK/scale-$kind"
		chmod 700 "$WORK/scale-$kind"
		scale_row "$kind"
	done
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/machine.txt"

say "report"
if [ -n "$README" ]; then
	$PY "$HERE/report.py" "$RESULTS" --readme "$README"
else
	$PY "$HERE/report.py" "$RESULTS"
fi
