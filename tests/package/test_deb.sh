#!/usr/bin/env bash
# test_deb.sh -- build the Debian package from a copy of the source tree, run lintian
# on it, unpack it into a scratch directory and check what it installs where.
#
#   bash tests/package/test_deb.sh [SOURCE-DIR]
#
# Needs dpkg-buildpackage, debhelper and lintian: installs the missing ones first
# (apt-get, as root or through sudo), as scripts/deps.sh does for the rest; they are
# not in deps.sh because only this test needs them.  The source tree is left as it is:
# the build runs in a temporary directory, removed at the end (MM_KEEP_DEB=1 keeps it).
# Prints what each step took, and lintian's output.
set -euo pipefail

SRC=$(cd "${1:-$(dirname "${BASH_SOURCE[0]}")/../..}" && pwd)
TOOLS=(debhelper lintian dpkg-dev build-essential)
fail=0
t_start=$SECONDS

step() { echo "---- $*"; }
bad() {
	echo "FAIL: $*" >&2
	fail=$((fail + 1))
}
ok() { echo "ok: $*"; }

as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		echo "test_deb: need root or sudo to run: $*" >&2
		return 1
	fi
}

missing_packages() {
	local installed p
	installed=$(dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null |
	    awk '$NF == "installed" { sub(/:.*/, "", $1); print $1 }') || true
	for p in "$@"; do
		grep -qxF -- "$p" <<<"$installed" || echo "$p"
	done
}

# install_packages PKG...: the missing ones, updating the package lists only when the
# first attempt fails (a fresh machine's lists may be stale or absent).
install_packages() {
	local missing
	mapfile -t missing < <(missing_packages "$@")
	[ ${#missing[@]} -eq 0 ] && return 0
	local t0=$SECONDS
	echo "test_deb: installing ${missing[*]}"
	local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y -qq
	           install --no-install-recommends)
	if ! as_root "${apt[@]}" "${missing[@]}" >/dev/null; then
		as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
		    -qq update
		as_root "${apt[@]}" "${missing[@]}" >/dev/null
	fi
	echo "test_deb: installed in $((SECONDS - t0)) s"
}

step "tools"
install_packages "${TOOLS[@]}"
# The package's own Build-Depends, read from debian/control.
mapfile -t build_deps < <(sed -n '/^Build-Depends:/,/^[A-Z]/p' "$SRC/debian/control" |
    sed -e 's/^Build-Depends://' -e '/^[A-Z]/d' | tr ',' '\n' |
    sed -e 's/([^)]*)//g' -e 's/[[:space:]]//g' -e '/^$/d' -e '/^debhelper-compat$/d')
install_packages "${build_deps[@]}"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mm-deb.XXXXXX")
cleanup() {
	if [ "${MM_KEEP_DEB:-0}" = 1 ]; then
		echo "test_deb: kept $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

step "copy of the source"
mkdir "$WORK/src"
if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# Tracked files and new ones not ignored: no build directories.
	git -C "$SRC" ls-files -z --cached --others --exclude-standard |
	    (cd "$SRC" && tar -cf - --null --no-recursion -T -) | tar -xf - -C "$WORK/src"
else
	tar -C "$SRC" --exclude='./build*' --exclude=./.git -cf - . | tar -xf - -C "$WORK/src"
fi

step "dpkg-buildpackage -us -uc -S, for lintian's checks of the source"
if ! (cd "$WORK/src" && dpkg-buildpackage -us -uc -S -d) >"$WORK/source.log" 2>&1; then
	tail -n 40 "$WORK/source.log" >&2
	echo "FAIL: dpkg-buildpackage -S failed (log above)" >&2
	exit 1
fi

step "dpkg-buildpackage -us -uc -b"
t0=$SECONDS
if ! (cd "$WORK/src" && dpkg-checkbuilddeps &&
      DEB_BUILD_OPTIONS="parallel=2${DEB_BUILD_OPTIONS:+ $DEB_BUILD_OPTIONS}" \
      dpkg-buildpackage -us -uc -b) >"$WORK/build.log" 2>&1; then
	tail -n 40 "$WORK/build.log" >&2
	echo "FAIL: dpkg-buildpackage failed (log above)" >&2
	exit 1
fi
echo "test_deb: built in $((SECONDS - t0)) s"

# The version is the one the program reports, from CMakeLists.txt.
version=$(sed -n 's/^project(mboxmirror VERSION \([^ ]*\) .*/\1/p' "$SRC/CMakeLists.txt")
arch=$(dpkg --print-architecture)
deb="$WORK/mboxmirror_${version}_${arch}.deb"
changes="$WORK/mboxmirror_${version}_${arch}.changes"
if [ -f "$deb" ]; then
	ok "built $(basename "$deb")"
else
	bad "no $(basename "$deb"): debian/changelog's version and CMakeLists.txt's differ? ($(ls "$WORK"))"
	exit 1
fi

step "lintian"
t0=$SECONDS
# lintian returns non-zero on errors only with --fail-on; it refuses nothing as root
# but says so on stderr.
lint_status=0
lintian --fail-on error --display-info "$changes" \
    "$WORK/mboxmirror_${version}_source.changes" >"$WORK/lintian.log" 2>&1 ||
    lint_status=$?
grep -v '^running with root privileges' "$WORK/lintian.log" || true
echo "test_deb: lintian took $((SECONDS - t0)) s"
if [ "$lint_status" -ne 0 ] || grep -q '^E: ' "$WORK/lintian.log"; then
	bad "lintian reports errors (status $lint_status)"
else
	ok "lintian: no errors ($(grep -c '^W: ' "$WORK/lintian.log" || true) warnings)"
fi

step "contents"
root="$WORK/root"
dpkg -x "$deb" "$root"

# expect_file PATH [MODE]
expect_file() {
	if [ ! -f "$root/$1" ]; then
		bad "missing /$1"
	elif [ -n "${2:-}" ] && [ "$(stat -c %a "$root/$1")" != "$2" ]; then
		bad "/$1 has mode $(stat -c %a "$root/$1"), not $2"
	else
		ok "/$1"
	fi
}

expect_file usr/bin/mboxmirror 755
reported=$("$root/usr/bin/mboxmirror" --version 2>&1) || bad "mboxmirror --version failed: $reported"
if grep -qF -- "$version" <<<"$reported"; then
	ok "mboxmirror --version: $reported"
else
	bad "mboxmirror --version says \"$reported\", the package is $version"
fi
pkg_version=$(dpkg-deb -f "$deb" Version)
[ "$pkg_version" = "$version" ] || bad "package version $pkg_version, program $version"

for unit in mboxmirror.service mboxmirror@.service mboxmirror-once.service \
    mboxmirror-once.timer; do
	expect_file "lib/systemd/system/$unit" 644
done
expect_file usr/lib/systemd/user/mboxmirror.service 644
for unit in "$root"/lib/systemd/system/*.service "$root"/usr/lib/systemd/user/*.service; do
	if grep -q '@[A-Za-z_]*@' "$unit"; then
		bad "$unit: left unconfigured"
	fi
	exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
	case $exec_start in
	/usr/bin/mboxmirror*) ;;
	*) bad "$(basename "$unit"): ExecStart=$exec_start" ;;
	esac
done
grep -qx 'ExecStart=/usr/bin/mboxmirror -c /etc/mboxmirror/%i.ini' \
    "$root/lib/systemd/system/mboxmirror@.service" ||
    bad "mboxmirror@.service does not read /etc/mboxmirror/%i.ini"

expect_file usr/share/man/man1/mboxmirror.1.gz 644
expect_file usr/share/man/man5/mboxmirror.ini.5.gz 644
if [ -f "$root/usr/share/man/man5/mboxmirror.ini.5.gz" ] &&
    ! zcat "$root/usr/share/man/man5/mboxmirror.ini.5.gz" | cmp -s - "$SRC/docs/mboxmirror.ini.5"; then
	bad "mboxmirror.ini.5.gz is not docs/mboxmirror.ini.5"
fi
expect_file usr/share/doc/mboxmirror/examples/mboxmirror.ini.example 644
cmp -s "$root/usr/share/doc/mboxmirror/examples/mboxmirror.ini.example" \
    "$SRC/config/mboxmirror.ini.example" ||
    bad "the example is not config/mboxmirror.ini.example"
expect_file usr/share/doc/mboxmirror/copyright 644
expect_file usr/share/doc/mboxmirror/changelog.gz 644

# /etc: the directory mboxmirror/, empty, and nothing else; no conffile.
if [ -d "$root/etc/mboxmirror" ] && [ -z "$(ls -A "$root/etc/mboxmirror")" ]; then
	ok "/etc/mboxmirror/ is an empty directory"
else
	bad "/etc/mboxmirror/ is missing or not empty"
fi
others=$(cd "$root/etc" && find . -mindepth 1 ! -path ./mboxmirror)
[ -z "$others" ] || bad "more under /etc: $others"
control="$WORK/control"
dpkg-deb -e "$deb" "$control"
if [ -s "$control/conffiles" ]; then
	bad "conffiles: $(tr '\n' ' ' <"$control/conffiles")"
else
	ok "no conffiles"
fi
# Nothing outside /etc, /lib and /usr.
top=$(cd "$root" && find . -mindepth 1 -maxdepth 1 | sort | tr '\n' ' ')
[ "$top" = "./etc ./lib ./usr " ] || bad "top-level directories: $top"
# The libraries the binary links to are dependencies.
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libev4 libgnutls30 libinih1; do
	grep -q "$lib" <<<"$depends" || bad "Depends lacks $lib: $depends"
done

step "maintainer scripts on a fresh install"
# Run postinst configure (no previous version) with stand-ins for the tools it calls,
# which log their arguments.  deb-systemd-helper answers as on a new install: no unit
# installed before, was-enabled true (its default).  Nothing may be enabled, for the
# system or for users; deb-systemd-invoke may be asked to start units, which it does
# only for enabled ones (none, then).
fakes="$WORK/fakes"
mkdir "$fakes"
log="$WORK/calls.log"
: >"$log"
for tool in deb-systemd-helper deb-systemd-invoke systemctl; do
	cat >"$fakes/$tool" <<FAKE
#!/bin/sh
echo "$tool \$*" >>"$log"
case "\$*" in
*debian-installed*) exit 1 ;;
esac
exit 0
FAKE
	chmod 755 "$fakes/$tool"
done
# The scripts test for a running systemd: pretend there is one.
sed 's|\[ -d /run/systemd/system \]|true|' "$control/postinst" >"$WORK/postinst"
if ! (unset DPKG_ROOT; PATH="$fakes:$PATH" sh -e "$WORK/postinst" configure "") \
    >"$WORK/postinst.log" 2>&1; then
	cat "$WORK/postinst.log" >&2
	bad "postinst configure failed"
fi
sed 's/^/    /' "$log"
if grep -Eq '^deb-systemd-helper (--user )?enable' "$log"; then
	bad "postinst enables units on a fresh install"
else
	ok "postinst enables nothing"
fi
if grep -E '^(deb-systemd-invoke|systemctl)' "$log" | grep -Evq '^deb-systemd-invoke start |^systemctl --system daemon-reload'; then
	bad "postinst does more than ask deb-systemd-invoke to start enabled units"
fi
grep -q '^deb-systemd-invoke start .*mboxmirror.service' "$log" ||
    bad "postinst never hands mboxmirror.service to deb-systemd-invoke (no restart after upgrade either)"

step "maintainer scripts on an upgrade and a removal"
# dh_installsystemd restarts and stops only the units it knows; the template's
# instances (mboxmirror@NAME, one per shard) would otherwise go on running the old
# binary after an upgrade, and the removed one after a removal.
: >"$log"
if ! (unset DPKG_ROOT; PATH="$fakes:$PATH" sh -e "$WORK/postinst" configure 0.0.9) \
    >"$WORK/postinst.log" 2>&1; then
	cat "$WORK/postinst.log" >&2
	bad "postinst configure (upgrade) failed"
fi
sed 's/^/    /' "$log"
if grep -q '^deb-systemd-invoke try-restart mboxmirror@\*\.service$' "$log"; then
	ok "an upgrade restarts the template's running instances"
else
	bad "an upgrade leaves the template's instances on the old binary"
fi
: >"$log"
if [ -f "$control/prerm" ]; then
	sed 's|\[ -d /run/systemd/system \]|true|' "$control/prerm" >"$WORK/prerm"
	(unset DPKG_ROOT; PATH="$fakes:$PATH" sh -e "$WORK/prerm" remove) \
	    >"$WORK/prerm.log" 2>&1 || { cat "$WORK/prerm.log" >&2; bad "prerm remove failed"; }
fi
sed 's/^/    /' "$log"
if grep -q '^deb-systemd-invoke stop mboxmirror@\*\.service$' "$log"; then
	ok "a removal stops the template's instances"
else
	bad "a removal leaves the template's instances running"
fi

echo "test_deb: total $((SECONDS - t_start)) s"
if [ "$fail" -ne 0 ]; then
	echo "test_deb: $fail check(s) failed" >&2
	exit 1
fi
echo "test_deb: all checks passed"
