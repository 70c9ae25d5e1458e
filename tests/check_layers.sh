#!/bin/sh
# check_layers.sh [ROOT]: checks the include rule of README "Module map" on
# the C files of ROOT (default: the repository holding this script):
#
#   common/base (0) <- common/text (1) <- common/nn (2) <- common/labels and
#   common/labels/ext (3) <- distill/, train/ (4) <- tests/ (5)
#
# 1. A file includes headers of its own layer and of lower layers only.
# 2. distill/ and train/ never include each other.
# 3. No include cycle: no header includes itself through other headers, and
#    no two modules (a .c with its .h, named by the path without the
#    extension) include each other's headers, directly or through a chain of
#    modules. A header without a .c of its name (an internal header such as
#    nn/model_internal.h) is not a module: its includes count for the module
#    that includes it.
#
# "#include "x/y.h"" names common/x/y.h when x is base, text, nn or labels
# (the build's -Icommon); any other quoted include is relative to the
# including file. <...> includes are not checked. Prints one line per
# problem, starting with file:line, and exits 1 if there is any; 0 and one
# summary line otherwise. Plain POSIX sh, find, sort and awk; paths must not
# hold spaces.
set -u
root=${1:-$(dirname "$0")/..}
cd "$root" || { echo "check_layers: cannot enter $root" >&2; exit 2; }
list=$(mktemp) || exit 2
trap 'rm -f "$list"' EXIT
for d in common distill train tests; do
    [ -d "$d" ] && find "$d" -type f \( -name '*.c' -o -name '*.h' \)
done | LC_ALL=C sort > "$list"
[ -s "$list" ] || { echo "check_layers: no C files under $root" >&2; exit 2; }

awk '
function layer(p) {
    if (p ~ /^common\/base\//) return 0
    if (p ~ /^common\/text\//) return 1
    if (p ~ /^common\/nn\//) return 2
    if (p ~ /^common\/labels\//) return 3
    if (p ~ /^(distill|train)\//) return 4
    if (p ~ /^tests\//) return 5
    return -1
}
function layer_name(p) {
    if (p ~ /^common\/labels\/ext\//) return "common/labels/ext"
    if (p ~ /^common\//) { sub(/^common\//, "", p); sub(/\/.*/, "", p); return "common/" p }
    sub(/\/.*/, "", p)
    return p "/"
}
function normalise(p,    n, part, out, i, k, r) {
    n = split(p, part, "/")
    k = 0
    for (i = 1; i <= n; i++) {
        if (part[i] == "." || part[i] == "")
            continue
        if (part[i] == ".." && k > 0 && out[k] != "..") {
            k--
            continue
        }
        out[++k] = part[i]
    }
    r = ""
    for (i = 1; i <= k; i++)
        r = r (i > 1 ? "/" : "") out[i]
    return r
}
function resolve(from, inc,    d) {
    if (inc ~ /^(base|text|nn|labels)\//)
        return "common/" inc
    d = from
    if (!sub(/\/[^\/]*$/, "", d))
        d = "."
    return normalise(d "/" inc)
}
function module(p) {
    sub(/\.[ch]$/, "", p)
    return p
}
function problem(msg) {
    print msg
    problems++
}
# Modules reached from file f (a header): its own module if it has a .c, else
# those its includes reach. Adds each to the edge list of module a, located
# at loc.
function reach(a, f, loc,    m, n, t, i) {
    m = module(f)
    if (m in has_c) {
        if (m != a && !((a, m) in medge_loc)) {
            medge_loc[a, m] = loc
            madj[a] = madj[a] " " m
        }
        return
    }
    if ((a, f) in seen_hdr)
        return
    seen_hdr[a, f] = 1
    n = split(fadj[f], t, " ")
    for (i = 1; i <= n; i++)
        reach(a, t[i], loc)
}
# Depth-first search for cycles in graph g ("file" or "module").
function dfs(g, v,    n, t, i, w) {
    colour[g, v] = 1
    stack[++depth] = v
    n = split(g == "file" ? fadj[v] : madj[v], t, " ")
    for (i = 1; i <= n; i++) {
        w = t[i]
        if (colour[g, w] == 1)
            report_cycle(g, w)
        else if (colour[g, w] == 0)
            dfs(g, w)
    }
    depth--
    colour[g, v] = 2
}
function report_cycle(g, w,    j, start, path, locs, a, b, loc) {
    for (j = depth; j > 0 && stack[j] != w; j--)
        ;
    start = j
    path = w
    locs = ""
    for (j = start; j <= depth; j++) {
        a = stack[j]
        b = j < depth ? stack[j + 1] : w
        loc = g == "file" ? fedge_loc[a, b] : medge_loc[a, b]
        path = path " -> " b
        locs = locs (j > start ? "; " : "") loc
    }
    split(locs, first, ";")
    sub(/: #include.*/, "", first[1])
    problem(first[1] ": include cycle (" (g == "file" ? "headers" : "modules") " that include each other): " path " [" locs "]")
}
NR == FNR {
    known[$0] = 1
    order[++n_files] = $0
    if ($0 ~ /\.c$/)
        has_c[module($0)] = 1
    next
}
/^[ \t]*#[ \t]*include[ \t]*"/ {
    inc = $0
    sub(/^[^"]*"/, "", inc)
    sub(/".*/, "", inc)
    src = FILENAME
    tgt = resolve(src, inc)
    loc = src ":" FNR ": #include \"" inc "\""
    ls = layer(src)
    lt = layer(tgt)
    if (ls >= 0 && lt > ls)
        problem(src ":" FNR ": includes \"" inc "\" of " layer_name(tgt) " (layer " lt ") from " layer_name(src) " (layer " ls "): a file may include only its own and lower layers (base <- text <- nn <- labels <- programs <- tests)")
    else if (ls == 4 && lt == 4 && layer_name(src) != layer_name(tgt))
        problem(src ":" FNR ": includes \"" inc "\" of " layer_name(tgt) " from " layer_name(src) ": distill/ and train/ may not include each other")
    if (tgt in known && tgt != src && !((src, tgt) in fedge_loc)) {
        fedge_loc[src, tgt] = loc
        fadj[src] = fadj[src] " " tgt
        inc_loc[src, tgt] = loc
    }
}
END {
    for (i = 1; i <= n_files; i++) {
        f = order[i]
        a = module(f)
        if (!(a in has_c))
            continue
        n = split(fadj[f], t, " ")
        for (j = 1; j <= n; j++)
            reach(a, t[j], inc_loc[f, t[j]])
    }
    for (i = 1; i <= n_files; i++)
        if (colour["file", order[i]] == 0)
            dfs("file", order[i])
    for (i = 1; i <= n_files; i++) {
        a = module(order[i])
        if ((a in has_c) && colour["module", a] == 0)
            dfs("module", a)
    }
    if (problems) {
        print "check-layers: " problems " problem(s) in " n_files " files" > "/dev/stderr"
        exit 1
    }
    print "check-layers: " n_files " files follow the layers, no include cycle"
}
' "$list" $(cat "$list")
