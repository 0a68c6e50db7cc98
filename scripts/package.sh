#!/usr/bin/env bash
# package.sh -- build the Debian package (debian/) and install it, on Debian 12.
#
#   scripts/package.sh              build and install
#   scripts/package.sh --build-only build; leave the .deb in build-deb/
#
# Installs the package's Build-Depends first (apt-get build-dep, as root or through
# sudo), builds from a copy of the tree in build-deb/ (the checkout stays as it is) and
# installs the .deb with apt, which pulls in its run-time dependencies.  No unit is
# enabled or started: see README "Running it as a service".
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$REPO/build-deb
install=1
case "${1-}" in
"") ;;
--build-only) install=0 ;;
*)
	echo "usage: $0 [--build-only]" >&2
	exit 64
	;;
esac

if [ "$(id -u)" = 0 ]; then
	as_root() { "$@"; }
elif command -v sudo >/dev/null; then
	as_root() { sudo "$@"; }
else
	echo "package: need root or sudo to install packages" >&2
	exit 1
fi
apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y -qq)

echo "package: installing the build dependencies"
as_root "${apt[@]}" update
as_root "${apt[@]}" install --no-install-recommends dpkg-dev
as_root "${apt[@]}" build-dep "$REPO"

# A copy of the tracked files, so that no build output lands in the checkout or its
# parent directory.
rm -rf "$OUT"
mkdir -p "$OUT/src"
git -C "$REPO" ls-files -z | (cd "$REPO" && xargs -0 cp --parents -t "$OUT/src")
(cd "$OUT/src" && dpkg-buildpackage -us -uc -b)
deb=$(ls "$OUT"/mboxmirror_*.deb)
echo "package: built $deb"

if [ "$install" = 1 ]; then
	as_root "${apt[@]}" install --no-install-recommends "$deb"
	echo "package: installed; write /etc/mboxmirror/mboxmirror.ini, then enable a unit"
fi
