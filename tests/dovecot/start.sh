#!/usr/bin/env bash
# start.sh DIR -- start the private Dovecot test fixture in DIR.
#
# Six small Dovecot 2.3 instances on loopback, on free high ports picked at start, all
# sharing one passwd-file and one mail store (sdbox, hierarchy separator "/"):
#
#   main           IMAPS_PORT          implicit TLS, certificate from our CA
#                  IMAP_PORT           plain; STARTTLS offered
#   plain          NOSTARTTLS_PORT     plain, ssl = no: no STARTTLS, LOGIN allowed
#   logindisabled  LOGINDISABLED_PORT  plain, ssl = no, disable_plaintext_auth = yes;
#                                      listens on LOGINDISABLED_HOST (127.0.0.2), see below
#   badca          BADCA_PORT          implicit TLS, certificate from an untrusted CA
#   wrongname      WRONGNAME_PORT      implicit TLS, our CA, but issued to WRONGNAME_HOSTNAME
#   penalty        PENALTY_PORT        implicit TLS, our CA, with Dovecot's authentication
#                                      penalty on (the others have it off): after a failed
#                                      login every login from that address waits seconds
#
# Why separate instances: Dovecot 2.3 decides STARTTLS and the certificate per local IP
# (`local` blocks) or SNI name, never per listener port, so one port with other TLS settings
# needs an instance of its own.  All share HOST=127.0.0.1 except LOGINDISABLED: Dovecot
# treats a connection whose remote IP equals its local IP as secured and then never
# advertises LOGINDISABLED.  The instance therefore listens on 127.0.0.2; Linux connects to
# it from 127.0.0.1, so the connection counts as insecure.
#
# DIR/env (shell-sourceable) tells tests the ports, files and users.  Mail processes run as
# the user `mmtest` (created if missing) when started as root, and as the calling user
# otherwise.  Nothing under /etc/dovecot or the system service is read or touched.
# Logins and authentication attempts (auth_verbose) of every instance go to DIR/dovecot.log;
# each login line carries lport=<port>.  Stop with stop.sh DIR.
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 64
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$1"
DIR=$(cd "$1" && pwd)

DOVECOT=${DOVECOT:-/usr/sbin/dovecot}
DOVEADM_BIN=$(command -v doveadm || echo /usr/bin/doveadm)
NUSERS=5
WRONGNAME_HOSTNAME=wrong.example.org
LOGINDISABLED_HOST=127.0.0.2
INSTANCES="main plain logindisabled badca wrongname penalty"

die() {
	echo "dovecot fixture: $*" >&2
	exit 1
}

[ -x "$DOVECOT" ] || die "$DOVECOT not found (install dovecot-imapd: scripts/deps.sh)"
command -v certtool >/dev/null || die "certtool not found (install gnutls-bin)"
command -v python3 >/dev/null || die "python3 not found"

# A leftover from an earlier run in the same DIR goes first.
"$HERE/stop.sh" "$DIR" >/dev/null

# ---- users -------------------------------------------------------------------------
if [ "$(id -u)" = 0 ]; then
	MAIL_USER=mmtest
	if ! id "$MAIL_USER" >/dev/null 2>&1; then
		useradd --system --no-create-home --home-dir /nonexistent \
		    --shell /usr/sbin/nologin "$MAIL_USER" 2>/dev/null || MAIL_USER=nobody
	fi
	INTERNAL_USER=dovecot
	id "$INTERNAL_USER" >/dev/null 2>&1 || die "user dovecot missing (is dovecot-core installed?)"
else
	MAIL_USER=$(id -un)
	INTERNAL_USER=$MAIL_USER
fi
MAIL_UID=$(id -u "$MAIL_USER")
MAIL_GID=$(id -g "$MAIL_USER")

# ---- where the processes' files live ------------------------------------------------
# The auth process (user dovecot) and the mail processes (MAIL_USER) must reach the
# passwd-file and the mail store, and unix socket paths under base_dir must stay short
# (108 bytes).  Both hold for DIR itself in the usual case; otherwise the run-time files
# go to a fresh directory under /tmp, linked as DIR/root and removed by stop.sh.
rm -rf "$DIR/run" "$DIR/mail" "$DIR/passwd" "$DIR/state" "$DIR/ssl" "$DIR"/*.conf \
    "$DIR/dovecot.log" "$DIR/env" "$DIR/fixture.vars" "$DIR/pool" "$DIR/pool.next"
rm -f "$DIR/root"
if [ -O "$DIR" ]; then
	chmod 755 "$DIR"
fi
can_reach() {
	[ "$(id -u)" = 0 ] || return 0
	setpriv --reuid="$1" --regid="$(id -g "$1")" --clear-groups -- test -x "$DIR" 2>/dev/null
}
if [ ${#DIR} -le 50 ] && can_reach "$MAIL_USER" && can_reach "$INTERNAL_USER"; then
	ROOT=$DIR
else
	ROOT=$(mktemp -d /tmp/mmdovecot.XXXXXX)
	chmod 755 "$ROOT"
	ln -s "$ROOT" "$DIR/root"
fi
mkdir -p "$ROOT/run" "$ROOT/mail" "$ROOT/state" "$DIR/ssl"
chmod 755 "$ROOT/run" "$ROOT/mail"
MAIL_ROOT=$ROOT/mail
PASSWD=$ROOT/passwd

: >"$PASSWD"
chmod 644 "$PASSWD"
# What adduser.sh needs.
cat >"$DIR/fixture.vars" <<EOF
PASSWD=$(printf '%q' "$PASSWD")
MAIL_ROOT=$(printf '%q' "$MAIL_ROOT")
MAIL_UID=$MAIL_UID
MAIL_GID=$MAIL_GID
EOF
USERS=
for i in $(seq 1 "$NUSERS"); do
	"$HERE/adduser.sh" "$DIR" "user$i" "secret$i" >/dev/null
	USERS="$USERS user$i:secret$i"
done
USERS=${USERS# }

# A pool of users known before the servers start: mmtest.Fixture.new_user() takes the
# next one at once (POOL_NEXT counts those taken), where a user added to the running
# servers costs a wait until every instance has reread the passwd-file.
POOL=$DIR/pool
POOL_NEXT=$DIR/pool.next
NPOOL=${MM_USER_POOL:-400}
pool_homes=()
: >"$POOL"
for i in $(seq 1 "$NPOOL"); do
	name=pool$i
	password=pw-$name-$(printf '%04x%04x' "$RANDOM" "$RANDOM")
	printf '%s\n' "$name:{PLAIN}$password:$MAIL_UID:$MAIL_GID::$MAIL_ROOT/$name::" >>"$PASSWD"
	printf '%s:%s\n' "$name" "$password" >>"$POOL"
	pool_homes+=("$MAIL_ROOT/$name")
done
if [ "$NPOOL" -gt 0 ]; then
	mkdir "${pool_homes[@]}"
	chown "$MAIL_UID:$MAIL_GID" "${pool_homes[@]}"
	chmod 700 "${pool_homes[@]}"
fi
echo 0 >"$POOL_NEXT"
chmod 644 "$POOL" "$POOL_NEXT"

# ---- TLS material ------------------------------------------------------------------
SSL=$DIR/ssl
mkcert() {
	# mkcert NAME CN SAN-LINES CA-NAME: key + certificate signed by CA-NAME.
	local name=$1 cn=$2 sans=$3 ca=$4
	printf 'organization = "mboxmirror tests"\ncn = "%s"\n%s\ntls_www_server\nsigning_key\nencryption_key\nexpiration_days = 3650\n' \
	    "$cn" "$sans" >"$SSL/$name.tmpl"
	certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 \
	    --outfile "$SSL/$name-key.pem" >/dev/null 2>&1
	certtool --generate-certificate --load-privkey "$SSL/$name-key.pem" \
	    --load-ca-certificate "$SSL/$ca.pem" --load-ca-privkey "$SSL/$ca-key.pem" \
	    --template "$SSL/$name.tmpl" --outfile "$SSL/$name.pem" >/dev/null 2>&1 ||
	    die "certtool failed for $name"
}
mkca() {
	local name=$1 cn=$2
	printf 'organization = "mboxmirror tests"\ncn = "%s"\nca\ncert_signing_key\ncrl_signing_key\nexpiration_days = 3650\n' \
	    "$cn" >"$SSL/$name.tmpl"
	certtool --generate-privkey --key-type=ecdsa --curve=secp256r1 \
	    --outfile "$SSL/$name-key.pem" >/dev/null 2>&1
	certtool --generate-self-signed --load-privkey "$SSL/$name-key.pem" \
	    --template "$SSL/$name.tmpl" --outfile "$SSL/$name.pem" >/dev/null 2>&1 ||
	    die "certtool failed for $name"
}
pin_of() {
	certtool --certificate-info --infile "$SSL/$1.pem" 2>/dev/null |
	    sed -n 's/^[[:space:]]*pin-sha256:\([A-Za-z0-9+/=]*\)$/\1/p' | head -n1
}
umask 077
mkca ca "mboxmirror test CA"
mkca badca "mboxmirror untrusted CA"
mkcert server localhost $'dns_name = "localhost"\nip_address = "127.0.0.1"' ca
mkcert badca-server localhost $'dns_name = "localhost"\nip_address = "127.0.0.1"' badca
mkcert wrongname "$WRONGNAME_HOSTNAME" "dns_name = \"$WRONGNAME_HOSTNAME\"" ca
umask 022
chmod 644 "$SSL"/*.pem "$SSL"/*.tmpl
chmod 600 "$SSL"/*-key.pem

# ---- configuration -----------------------------------------------------------------
PLUGINS=
if [ -e /usr/lib/dovecot/modules/lib30_imap_zlib_plugin.so ]; then
	PLUGINS='mail_plugins = $mail_plugins imap_zlib'
fi
if [ "$(id -u)" = 0 ]; then
	PRIV=
	ANVIL_CHROOT=
else
	# An ordinary user can neither chroot nor change uid: everything runs as that user.
	PRIV="default_internal_user = $MAIL_USER
default_internal_group = $(id -gn)
default_login_user = $MAIL_USER
service imap-login {
  chroot =
}"
	ANVIL_CHROOT="chroot ="
fi
cat >"$DIR/common.conf" <<EOF
# Shared part of the mboxmirror test fixture's Dovecot instances (written by start.sh).
protocols = imap
listen = 127.0.0.1
log_path = $DIR/dovecot.log
info_log_path = $DIR/dovecot.log
log_timestamp = "%Y-%m-%d %H:%M:%S "
auth_verbose = yes
auth_mechanisms = plain login
auth_failure_delay = 0
login_log_format_elements = user=<%u> method=%m rip=%r lip=%l lport=%{lport} mpid=%e %c session=<%{session}>
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $PASSWD
}
userdb {
  driver = passwd-file
  args = username_format=%u $PASSWD
}
first_valid_uid = $MAIL_UID
last_valid_uid = $MAIL_UID
first_valid_gid = $MAIL_GID
last_valid_gid = $MAIL_GID
mail_location = sdbox:~/sdbox
# Throw-away test mail: no fsync on the server side.
mail_fsync = never
# IDLE learns of new mail through inotify, one instance per IMAP process, at most
# fs.inotify.max_user_instances (128) per UID: many IDLE connections of the same mail
# user on this machine (a bench, other fixtures) use them up, and Dovecot then looks
# for new mail only every mailbox_idle_check_interval (30 s unless set).
mailbox_idle_check_interval = 1 sec
namespace inbox {
  inbox = yes
  separator = /
  prefix =
}
ssl_min_protocol = TLSv1.2
protocol imap {
  $PLUGINS
  mail_max_userip_connections = 200
}
service imap-login {
  process_limit = 200
}
service imap {
  process_limit = 200
}
# No authentication penalty: after a failed login Dovecot would delay every later
# login from the same address (all tests share 127.0.0.1) by 2 to 15 s.  Without its
# socket the auth process runs without penalty tracking.
service anvil {
  $ANVIL_CHROOT
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
$PRIV
EOF

# write_conf NAME SSL DISABLE_PLAINTEXT LISTEN IMAP_PORT IMAPS_PORT [CERT]
write_conf() {
	local name=$1 ssl=$2 dpa=$3 listen=$4 pport=$5 sport=$6 cert=${7:-} conf
	if [ "$name" = main ]; then
		conf=$DIR/dovecot.conf
	else
		conf=$DIR/$name.conf
	fi
	mkdir -p "$ROOT/run/$name" "$ROOT/state/$name"
	{
		echo "# mboxmirror test fixture, instance $name (written by start.sh)."
		echo "!include $DIR/common.conf"
		echo "instance_name = mmtest-$name"
		echo "base_dir = $ROOT/run/$name"
		echo "state_dir = $ROOT/state/$name"
		echo "listen = $listen"
		echo "ssl = $ssl"
		echo "disable_plaintext_auth = $dpa"
		if [ -n "$cert" ]; then
			echo "ssl_cert = <$SSL/$cert.pem"
			echo "ssl_key = <$SSL/$cert-key.pem"
		fi
		echo "service imap-login {"
		echo "  inet_listener imap {"
		echo "    port = $pport"
		echo "  }"
		echo "  inet_listener imaps {"
		echo "    port = $sport"
		[ "$sport" = 0 ] || echo "    ssl = yes"
		echo "  }"
		echo "}"
	} >"$conf"
}

free_ports() {
	python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

wait_ports() {
	# wait_ports HOST:PORT...: until each accepts a connection (10 s at most).
	python3 - "$@" <<'EOF'
import socket, sys, time
deadline = time.monotonic() + 10
for hp in sys.argv[1:]:
    host, port = hp.rsplit(":", 1)
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit("port %s does not accept connections" % hp)
            time.sleep(0.05)
EOF
}

conf_of() {
	if [ "$1" = main ]; then echo "$DIR/dovecot.conf"; else echo "$DIR/$1.conf"; fi
}

start_all() {
	local p
	read -r IMAPS_PORT IMAP_PORT NOSTARTTLS_PORT LOGINDISABLED_PORT BADCA_PORT WRONGNAME_PORT \
	    PENALTY_PORT <<<"$(free_ports 7)"
	write_conf main yes yes 127.0.0.1 "$IMAP_PORT" "$IMAPS_PORT" server
	write_conf plain no no 127.0.0.1 "$NOSTARTTLS_PORT" 0
	write_conf logindisabled no yes "$LOGINDISABLED_HOST" "$LOGINDISABLED_PORT" 0
	write_conf badca required yes 127.0.0.1 0 "$BADCA_PORT" badca-server
	write_conf wrongname required yes 127.0.0.1 0 "$WRONGNAME_PORT" wrongname
	write_conf penalty required yes 127.0.0.1 0 "$PENALTY_PORT" server
	# As a stock Dovecot: a failed login waits 2 s, and anvil tracks failures per
	# address, delaying the next logins from there (2 s, doubling up to 15 s).
	cat >>"$DIR/penalty.conf" <<-EOF
	auth_failure_delay = 2 secs
	service anvil {
	  unix_listener anvil-auth-penalty {
	    mode = 0600
	  }
	}
	EOF
	for p in $INSTANCES; do
		# Detached from our output: the daemon would keep a caller's pipe open.
		if ! "$DOVECOT" -c "$(conf_of "$p")" </dev/null >"$DIR/startup-$p.log" 2>&1; then
			cat "$DIR/startup-$p.log" >&2
			return 1
		fi
	done
	wait_ports "127.0.0.1:$IMAPS_PORT" "127.0.0.1:$IMAP_PORT" "127.0.0.1:$NOSTARTTLS_PORT" \
	    "$LOGINDISABLED_HOST:$LOGINDISABLED_PORT" "127.0.0.1:$BADCA_PORT" \
	    "127.0.0.1:$WRONGNAME_PORT" "127.0.0.1:$PENALTY_PORT"
}

# A port taken between choosing and binding it makes an instance fail: try again.
ok=0
for attempt in 1 2 3 4 5; do
	if start_all; then
		ok=1
		break
	fi
	echo "dovecot fixture: start attempt $attempt failed, retrying with other ports" >&2
	"$HERE/stop.sh" "$DIR" --keep-files >/dev/null
done
[ "$ok" = 1 ] || die "could not start Dovecot; see $DIR/dovecot.log"
rm -f "$DIR"/startup-*.log

q() { printf '%q' "$1"; }
cat >"$DIR/env" <<EOF
# mboxmirror test fixture (tests/dovecot/start.sh); source it or read it as KEY=VALUE.
FIXTURE_DIR=$(q "$DIR")
HOST=127.0.0.1
IMAPS_PORT=$IMAPS_PORT
IMAP_PORT=$IMAP_PORT
STARTTLS_PORT=$IMAP_PORT
NOSTARTTLS_PORT=$NOSTARTTLS_PORT
LOGINDISABLED_HOST=$LOGINDISABLED_HOST
LOGINDISABLED_PORT=$LOGINDISABLED_PORT
BADCA_PORT=$BADCA_PORT
WRONGNAME_PORT=$WRONGNAME_PORT
WRONGNAME_HOSTNAME=$WRONGNAME_HOSTNAME
PENALTY_PORT=$PENALTY_PORT
CA_FILE=$(q "$SSL/ca.pem")
BADCA_FILE=$(q "$SSL/badca.pem")
SERVER_PIN_SHA256=$(q "$(pin_of server)")
BADCA_PIN_SHA256=$(q "$(pin_of badca-server)")
WRONGNAME_PIN_SHA256=$(q "$(pin_of wrongname)")
MAIL_ROOT=$(q "$MAIL_ROOT")
MAIL_USER=$(q "$MAIL_USER")
PASSWD_FILE=$(q "$PASSWD")
SEPARATOR=/
DOVECOT_CONF=$(q "$DIR/dovecot.conf")
DOVECOT_LOG=$(q "$DIR/dovecot.log")
DOVEADM=$(q "$DOVEADM_BIN -c $DIR/dovecot.conf")
ADDUSER=$(q "$HERE/adduser.sh $DIR")
USERS=$(q "$USERS")
USER_POOL=$(q "$POOL")
USER_POOL_NEXT=$(q "$POOL_NEXT")
EOF
chmod 644 "$DIR/env"
echo "dovecot fixture: running in $DIR (imaps $IMAPS_PORT, starttls $IMAP_PORT," \
    "no-starttls $NOSTARTTLS_PORT, logindisabled $LOGINDISABLED_HOST:$LOGINDISABLED_PORT," \
    "bad CA $BADCA_PORT, wrong name $WRONGNAME_PORT, auth penalty $PENALTY_PORT)"
