#!/bin/sh
# Installs the Debian packages named as arguments that are missing. As root
# on Debian it runs `apt-get update` once and `apt-get install -y`; otherwise
# it prints the exact command and fails. Nothing runs when all are present.
# A second install running at the same time (another make, pipeline.sh) is
# waited for instead of failing on the dpkg lock.
missing=""
for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "w2s: installing missing Debian packages:$missing" >&2
    wait_lock="-o DPkg::Lock::Timeout=600"
    apt-get update -qq $wait_lock >&2 || exit 1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $wait_lock $missing >&2 || exit 1
else
    echo "w2s: missing Debian packages; run: sudo apt-get install -y$missing" >&2
    exit 1
fi
