#!/usr/bin/env bash
# deps.sh -- install the Debian packages needed to build and test mboxmirror.
# Does nothing (quickly) when they are all present.  Runs apt-get as root, or through sudo
# for an ordinary user.  The system Dovecot service that installing dovecot-imapd would
# start is kept from starting; the tests run their own instances on high ports anyway.
set -euo pipefail

PACKAGES=(
	build-essential	# gcc, make
	cmake
	pkg-config
	libev-dev	# the event loop
	libgnutls28-dev	# TLS
	libinih-dev	# the INI parser
	libcmocka-dev	# unit tests
	zlib1g-dev	# COMPRESS=DEFLATE
	clang		# the sanitizer and libFuzzer builds
	dovecot-imapd	# the real IMAP server of the integration tests
	gnutls-bin	# certtool for the test certificates, gnutls-cli
	python3		# integration test scripts
	python3-prometheus-client	# the metrics file's test parses it as Prometheus would
	ca-certificates
)
# One dpkg-query for all: the check costs next to nothing when everything is there.
installed=$(dpkg-query -W -f='${Package} ${Status}\n' "${PACKAGES[@]}" 2>/dev/null |
    awk '$NF == "installed" && $(NF-1) == "ok" { sub(/:.*/, "", $1); print $1 }') || true
missing=()
for p in "${PACKAGES[@]}"; do
	if ! grep -qxF -- "$p" <<<"$installed"; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
echo "deps: installing ${missing[*]}"

if [ "$(id -u)" = 0 ]; then
	SUDO=()
elif command -v sudo >/dev/null; then
	SUDO=(sudo)
else
	echo "deps: need root or sudo to install: ${missing[*]}" >&2
	exit 1
fi

# policy-rc.d answering 101 ("action forbidden") keeps maintainer scripts from starting
# services; use our own only when the system has none, and remove it afterwards.
policy=/usr/sbin/policy-rc.d
made_policy=0
cleanup() {
	if [ "$made_policy" = 1 ]; then
		"${SUDO[@]}" rm -f "$policy"
	fi
}
trap cleanup EXIT
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
	"${SUDO[@]}" chmod 755 "$policy"
	made_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=300 -qq update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=300 -y -qq install --no-install-recommends "${missing[@]}"
echo "deps: done"
