#!/bin/sh
# Runs every test binary given as argument and sums cmocka's per-binary
# counts into one closing line "N passed, N failed". A binary that dies
# without a summary counts as one failure. Exit status 1 on any failure.
passed=0
failed=0
for t in "$@"; do
    name=$(basename "$t")
    out=$(CMOCKA_MESSAGE_OUTPUT=stdout "$t" 2>&1)
    status=$?
    # A binary may run several cmocka groups: add up their summaries.
    p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
    f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
    p=${p:-0}
    f=${f:-0}
    if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1
    fi
    if [ "$f" -ne 0 ]; then
        printf '%s\n' "$out"
        echo "FAIL $name ($p passed, $f failed, exit $status)"
    else
        echo "ok   $name ($p passed)"
    fi
    passed=$((passed + p))
    failed=$((failed + f))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
