#!/usr/bin/env bash
# `make test-fresh`: the README's first contact, on a bare Debian machine.
#
# Builds a minimal Debian root with debootstrap holding only git, make and gcc
# (cached as build/fresh/base-*.tar.gz, so a rerun starts in seconds), clones
# the committed HEAD of this repository into two fresh copies of it and runs,
# under chroot:
#   A: make test, then ./pipeline.sh --quick
#   B: ./pipeline.sh --quick, then make test, then bash .ci/run (CI=true)
# so either README command works first, and CI works after them. Each step
# logs to build/fresh/STEP.log (its tail is shown on failure); the summary
# gives PASS/FAIL and the time of every step, and the exit status is 1 when
# any failed. Takes 20-40 minutes; needs root (debootstrap, chroot, mounts).
#
# Settings (environment): FRESH_SUITE (default bookworm), FRESH_MIRROR
# (default: this machine's configured Debian mirror), FRESH_CI=A|B (the root
# that runs .ci/run, default B), FRESH_KEEP=1 (keep the roots after a pass),
# FRESH_STEP_MINUTES (a step's time limit, default 60).
#
# Every step runs in its own mount and PID namespace (unshare): /proc, /sys
# and /dev are mounted there, unmounted by a trap when the step ends, and
# vanish with the namespace on any other exit, so the host's mount table is
# never touched and a killed run leaves no mount and no process behind.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here" || exit 1
out=$here/build/fresh
suite=${FRESH_SUITE:-bookworm}
ci_root=${FRESH_CI:-B}
step_limit=$((${FRESH_STEP_MINUTES:-60} * 60))
# "Only git, make and gcc": what a fresh machine has before the README.
include=git,make,gcc,ca-certificates
base_tar=$out/base-$suite-${include//,/-}.tar.gz
apt_cache=$out/apt-archives       # downloaded .deb files, shared by the roots

die() { echo "test-fresh: $*" >&2; exit 1; }
[[ $(id -u) = 0 ]] || die "needs root (debootstrap, chroot, mounts)"
[[ $ci_root = A || $ci_root = B ]] || die "FRESH_CI must be A or B"
# The commit under test, fixed at the start (the internal steps get it too).
head=${FRESH_HEAD:-$(git rev-parse HEAD)} || die "not a git repository"
export FRESH_HEAD=$head

# The first URI of an enabled "deb" source for the suite in the machine's apt
# configuration, one-line or deb822 format: the only mirror reachable.
configured_mirror() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] && awk -v s="$suite" '/^[ \t]*deb[ \t]/ { sub(/\[[^]]*\]/, "")
            if ($3 == s) { print $2; exit } }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] && awk -v s="$suite" '
            function flush() { if (!done && types ~ / deb / && suites ~ (" " s " ") && enabled !~ /no/) {
                                   split(uris, u, " "); print u[1]; done = 1 }
                               types = uris = suites = enabled = "" }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            { key = tolower($1); $1 = "" }
            key == "types:" { types = $0 " " }
            key == "uris:" { uris = $0 }
            key == "suites:" { suites = $0 " " }
            key == "enabled:" { enabled = tolower($0) }
            END { flush() }' "$f"
    done
}
mirror=${FRESH_MIRROR:-$(configured_mirror | head -n 1)}
[[ -n $mirror ]] || die "no Debian mirror for '$suite' in /etc/apt/sources.list*; set FRESH_MIRROR"

# ---- results and the summary ----------------------------------------------
names=() results=() times=()
run_start=$SECONDS
record() { names+=("$1"); results+=("$2"); times+=("$3"); }
summary() {
    local i failed=0
    echo
    echo "test-fresh summary: HEAD ${head:0:7}, Debian $suite from $mirror"
    for i in "${!names[@]}"; do
        printf '  %-4s %-44s %5d s\n' "${results[i]}" "${names[i]}" "${times[i]}"
        [[ ${results[i]} = PASS ]] || failed=$((failed + 1))
    done
    printf '  %d of %d steps passed in %d min %d s; logs in %s\n' $((${#names[@]} - failed)) "${#names[@]}" \
        $(((SECONDS - run_start) / 60)) $(((SECONDS - run_start) % 60)) "${out#"$here"/}"
    return $((failed > 0))
}

# ---- running a step --------------------------------------------------------
# The namespace side of a step: mounts into ROOT, then COMMAND as root's
# login-less shell in /root/w2s with a clean environment (plus ENV...).
ns_step='root=$1 cache=$2 cmd=$3; shift 3
mounted=()
unmount_all() { local i; for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}"; done; }
trap unmount_all EXIT
mnt() { mount "$@" && mounted+=("${*: -1}"); }
mnt -t proc proc "$root/proc" && mnt -t sysfs sysfs "$root/sys" && mnt --bind /dev "$root/dev" &&
    mnt --bind /dev/pts "$root/dev/pts" && mnt -t tmpfs -o mode=1777 shm "$root/dev/shm" &&
    mnt --bind "$cache" "$root/var/cache/apt/archives" || exit 125
chroot "$root" /usr/bin/env -i HOME=/root USER=root LOGNAME=root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@" /bin/bash -c "cd /root/w2s && $cmd"'

# run_logged NAME LOG COMMAND...: COMMAND (an external one, under its time
# limit) with output to LOG and a progress line every minute; records PASS or
# FAIL and shows the log's tail on failure. @return COMMAND's exit status.
run_logged() {
    local name=$1 log=$2; shift 2
    local start=$SECONDS next=60 rc
    echo "== $name  (log: ${log#"$here"/})"
    timeout --kill-after=30 "$step_limit" "$@" >"$log" 2>&1 </dev/null &
    step_pid=$! step_name=$name step_start=$start
    while kill -0 "$step_pid" 2>/dev/null; do
        sleep 2
        if ((SECONDS - start >= next)); then
            printf '   %s: %d min; %s\n' "$name" $(((SECONDS - start) / 60)) \
                "$(tail -n 1 "$log" | cut -c1-90 | grep . || echo 'no output yet')"
            next=$((next + 60))
        fi
    done
    wait "$step_pid"
    rc=$?
    step_pid=""
    if ((rc == 0)); then
        record "$name" PASS $((SECONDS - start))
        printf '   PASS %s (%d s)\n' "$name" $((SECONDS - start))
    else
        record "$name" FAIL $((SECONDS - start))
        printf '   FAIL %s (%d s, exit %d); last lines of %s:\n' "$name" $((SECONDS - start)) "$rc" "${log#"$here"/}"
        tail -n 40 "$log" | sed 's/^/   | /'
    fi
    return "$rc"
}

# in_root ID ROOT COMMAND [ENV...]: a README command in /root/w2s of ROOT,
# logged to build/fresh/ID-COMMAND.log.
in_root() {
    local id=$1 root=$2 cmd=$3; shift 3
    local slug
    slug=$(printf '%s' "$cmd" | tr -cs 'a-z0-9' '-' | sed 's/^-*//; s/-*$//')
    run_logged "$id $cmd" "$out/$id-$slug.log" unshare --mount --pid --fork --kill-child --propagation private \
        bash -c "$ns_step" fresh-step "$root" "$apt_cache" "$cmd" "$@"
}

# A mount left under a path would make `rm -rf` reach the host's /dev.
remove_tree() {
    if grep -q " $1[/ ]" /proc/self/mountinfo; then die "$1 has something mounted under it"; fi
    rm -rf "$1"
}

# ---- the roots -------------------------------------------------------------
# These two run as `fresh.sh --base` and `fresh.sh --root DIR`, so that
# run_logged can time and limit them like any other step.
build_base() {
    local tmp=$out/base.tmp
    remove_tree "$tmp"
    "$here/tests/deps.sh" debootstrap || return 1
    unshare --mount --propagation private \
        debootstrap --variant=minbase --include="$include" "$suite" "$tmp" "$mirror" || return 1
    chroot "$tmp" apt-get clean || return 1
    tar --numeric-owner -C "$tmp" -czf "$base_tar.tmp" . && mv "$base_tar.tmp" "$base_tar" || return 1
    remove_tree "$tmp"
}

# A fresh copy of the base root holding a clone of HEAD in /root/w2s.
new_root() {
    local root=$1
    remove_tree "$root"
    mkdir -p "$root" && tar --numeric-owner -C "$root" -xzf "$base_tar" || return 1
    cp -L /etc/resolv.conf "$root/etc/resolv.conf" && cp /etc/hosts "$root/etc/hosts" || return 1
    git clone -q --no-hardlinks "$here" "$root/root/w2s" && git -C "$root/root/w2s" checkout -q --detach "$head"
}

case ${1:-} in
--base) build_base; exit ;;
--root) new_root "$2"; exit ;;
esac

step_pid="" step_name="" step_start=0
interrupted() {
    [[ -n $step_pid ]] && kill "$step_pid" 2>/dev/null
    record "$step_name (interrupted)" FAIL $((SECONDS - step_start))
    summary | tee "$out/summary.txt"
    exit 1
}
trap interrupted INT TERM

mkdir -p "$out" "$apt_cache/partial" || exit 1
echo "test-fresh: HEAD ${head:0:7} on a bare Debian $suite root ($include) from $mirror"
[[ -z $(git status --porcelain --untracked-files=no) ]] ||
    echo "test-fresh: note: uncommitted changes are not tested (the roots clone HEAD)"
if [[ -s $base_tar ]]; then
    echo "== base root: cached ${base_tar#"$here"/}"
else
    run_logged "base root (debootstrap, cached after)" "$out/base.log" "$here/tests/fresh.sh" --base ||
        { summary | tee "$out/summary.txt"; exit 1; }
fi

ok=1
for r in A B; do
    run_logged "${r}0 fresh root, git clone of HEAD" "$out/${r}0-setup.log" "$here/tests/fresh.sh" --root "$out/root-$r" || { ok=0; continue; }
    first=("make test" "./pipeline.sh --quick")
    [[ $r = B ]] && first=("./pipeline.sh --quick" "make test")
    n=1
    for cmd in "${first[@]}"; do
        in_root "$r$n" "$out/root-$r" "$cmd" || ok=0
        n=$((n + 1))
    done
    if [[ $r = "$ci_root" ]]; then
        in_root "$r$n" "$out/root-$r" "bash .ci/run" CI=true || ok=0
    fi
done

summary | tee "$out/summary.txt"
status=${PIPESTATUS[0]}
if ((ok)) && [[ -z ${FRESH_KEEP:-} ]]; then
    remove_tree "$out/root-A"
    remove_tree "$out/root-B"
else
    echo "test-fresh: the roots stay in ${out#"$here"/}/root-A and root-B (chroot into them to look)"
fi
exit "$status"
