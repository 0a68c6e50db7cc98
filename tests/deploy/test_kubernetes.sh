#!/usr/bin/env bash
# test_kubernetes.sh -- check deploy/kubernetes and deploy/Dockerfile
# (check_kubernetes.mjs says what is checked and how).
#
#   bash tests/deploy/test_kubernetes.sh [SOURCE-DIR]
#
# Installs the npm packages of package.json (at the versions of package-lock.json) into
# $MM_DEPLOY_NODE_DIR, kept between runs (the ctest registration puts it in the build
# tree), else into a temporary directory.  Needs node and npm (Debian's nodejs and npm
# are installed when both are missing).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "${1:-$HERE/../..}" && pwd)
t_start=$SECONDS

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "test_kubernetes: installing nodejs npm"
	sudo=()
	[ "$(id -u)" = 0 ] || sudo=(sudo)
	apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
	# The package lists may be stale or absent (an image that removed them, a
	# machine where scripts/deps.sh found everything installed): update and retry.
	if ! "${apt[@]}" -y -qq install --no-install-recommends nodejs npm >/dev/null; then
		"${apt[@]}" -qq update
		"${apt[@]}" -y -qq install --no-install-recommends nodejs npm >/dev/null
	fi
fi

if [ -n "${MM_DEPLOY_NODE_DIR:-}" ]; then
	dir=$MM_DEPLOY_NODE_DIR
	mkdir -p "$dir"
else
	dir=$(mktemp -d "${TMPDIR:-/tmp}/mm-k8s-node.XXXXXX")
	trap 'rm -rf "$dir"' EXIT
fi
# ES modules find their packages in the node_modules beside them: the check runs
# from that directory.
if ! cmp -s "$HERE/package-lock.json" "$dir/package-lock.json" ||
    [ ! -d "$dir/node_modules" ]; then
	t0=$SECONDS
	cp "$HERE/package.json" "$HERE/package-lock.json" "$dir/"
	(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	echo "test_kubernetes: npm ci in $((SECONDS - t0)) s"
fi
cp "$HERE/check_kubernetes.mjs" "$dir/"
status=0
node --test-reporter=spec "$dir/check_kubernetes.mjs" "$SRC" || status=$?
echo "test_kubernetes: $((SECONDS - t_start)) s"
exit "$status"
