#!/bin/sh
# `make test-mpi`: the MPI build ($BUILD, default build/mpi) under
# `mpirun -np 2` on this machine (README, "Scale beyond one machine"). Makes
# a small corpus
# (tests/mpi/text.awk), a tiny teacher and its labels, then checks:
#   - train: -np 1 and -np 2 give the same losses (1e-5 relative) at each of
#     50 logged steps, with a batch whose rows split unevenly over the ranks.
#     The rate (1e-3) keeps the run out of the chaotic regime where a rare
#     gradient spike (measured: norm 20 against 0.4, on one batch in nine
#     corpora at 3e-3) turns float summation order into 1e-5 of the loss;
#     here the ranks agree to about 1e-8;
#   - train: a -np 2 run stopped and resumed ends with the checkpoint of an
#     uninterrupted -np 2 run, and only rank 0 writes files (--metrics holds
#     one whole JSON line per step);
#   - distill: 2 ranks give the same rows as one process, and a rerun
#     resumes every shard.
# Ends with "N passed, N failed"; exit status 1 on any failure.
BUILD=${BUILD:-build/mpi}
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here" || exit 1
train=$here/$BUILD/train
distill=$here/$BUILD/distill
ext=$here/$BUILD/softlabel.so
tmp=$(mktemp -d "${TMPDIR:-/tmp}/w2s-mpi.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }
check() { what=$1; shift; if "$@"; then ok "$what"; else fail "$what"; fi; }
run() { mpirun --allow-run-as-root --oversubscribe -np "$@"; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

# ---- data: generated, the same on every machine and at every commit
mkdir -p "$tmp/data"
text() { awk -v seed="$1" -v paragraphs="$2" -f tests/mpi/text.awk; }
text 1 700 > "$tmp/data/gt.txt"
text 101 1200 > "$tmp/data/unlabeled.txt"
text 201 150 > "$tmp/data/heldout.txt"
shape="--layers 1 --heads 2 --channels 32 --seq 32"
if ! run 1 "$train" --gt "$tmp/data/gt.txt" --records paragraph --out "$tmp/teacher.ckpt" --vocab 300 \
        $shape --steps 20 --batch 8 --lr 4e-3 --seed 1 --threads 1 --quiet >"$tmp/teacher.log" 2>&1; then
    cat "$tmp/teacher.log"; fail "teacher"; finish
fi
labels() { # labels DB NP: distill the unlabeled text with NP ranks
    run "$2" "$distill" --teacher "$tmp/teacher.ckpt" --db "$1" --input "$tmp/data/unlabeled.txt" \
        --records paragraph --topk 8 --batch 8 --threads 1 --quiet >>"$tmp/distill.log" 2>&1
}
check "distill -np 1" labels "$tmp/one.db" 1
check "distill -np 2" labels "$tmp/two.db" 2
[ -s "$tmp/one.db" ] && [ -s "$tmp/two.db" ] || { cat "$tmp/distill.log"; finish; }

# ---- distill: 2 ranks == one process
rows="SELECT source, member, record_index, window, content_hash, n_tokens, hex(tokens) FROM sequences"
same_rows() {
    sqlite3 "$tmp/one.db" "ATTACH '$tmp/two.db' AS b; SELECT count(*) FROM sequences;
        SELECT (SELECT count(*) FROM ($rows EXCEPT SELECT source, member, record_index, window,
               content_hash, n_tokens, hex(tokens) FROM b.sequences))
             + (SELECT count(*) FROM (SELECT source, member, record_index, window, content_hash,
               n_tokens, hex(tokens) FROM b.sequences EXCEPT $rows))
             + abs((SELECT count(*) FROM sequences) - (SELECT count(*) FROM b.sequences));" \
        >"$tmp/rows.out" || return 1
    echo "     $(sed -n 1p "$tmp/rows.out") rows, $(sed -n 2p "$tmp/rows.out") differing"
    [ "$(sed -n 2p "$tmp/rows.out")" = 0 ] && [ "$(sed -n 1p "$tmp/rows.out")" -gt 0 ]
}
check "distill 2 ranks: same rows and tokens" same_rows

# The teacher forward is not bit-stable across batch packings (distill_run.c)
# and each rank packs other records together, so a log-prob may land one
# quantisation step away (schemas/softlabel.md: |l' - l| <= step / 1024 per
# side) and near-tied ids may swap ranks. Compared decoded: every (window,
# position, id) present on both sides within the two sides' bounds; an id on
# one side only must be a near tie at the last rank.
dump() { # dump DB TABLE: decoded entries into cmp.db
    sqlite3 -cmd ".load $ext" "$1" "ATTACH '$tmp/cmp.db' AS c;
        CREATE TABLE c.$2 AS SELECT s.source, s.member, s.record_index AS ri, s.window AS w, t.pos,
            t.rank, t.token_id AS id, t.logprob AS lp FROM sequences s, topk t WHERE t.seq_id = s.seq_id;"
}
same_labels() {
    dump "$tmp/one.db" ea && dump "$tmp/two.db" eb || return 1
    sqlite3 "$tmp/cmp.db" "CREATE INDEX ib ON eb(source, member, ri, w, pos, id);
        CREATE TABLE step(b INTEGER PRIMARY KEY, s INTEGER);
        INSERT INTO step VALUES (0,8),(1,10),(2,13),(3,16),(4,21),(5,27),(6,34),(7,44),(8,57),(9,73),
            (10,94),(11,120),(12,154),(13,198),(14,254),(15,327),(16,419),(17,512);
        CREATE TEMP VIEW tol AS SELECT b, s / 1024.0 AS t FROM step;
        CREATE TEMP TABLE j AS SELECT a.lp AS la, b.lp AS lb, a.rank = b.rank AS same_rank
            FROM ea a JOIN eb b USING (source, member, ri, w, pos, id);
        SELECT count(*), (SELECT count(*) FROM ea), (SELECT count(*) FROM eb),
               sum(la = lb), sum(NOT same_rank), printf('%.6f', max(abs(la - lb))),
               sum(abs(la - lb) > (SELECT t FROM tol WHERE b = min((CAST(-la * 1024 AS INTEGER) + 256) >> 9, 17))
                                + (SELECT t FROM tol WHERE b = min((CAST(-lb * 1024 AS INTEGER) + 256) >> 9, 17)) + 1e-6)
        FROM j;
        SELECT count(*) FROM (SELECT rank FROM ea a WHERE NOT EXISTS (SELECT 1 FROM eb b WHERE
            b.source = a.source AND b.member = a.member AND b.ri = a.ri AND b.w = a.w AND b.pos = a.pos
            AND b.id = a.id) AND rank < (SELECT max(rank) FROM ea));" >"$tmp/labels.out" || return 1
    IFS='|' read -r both na nb equal swapped maxdiff beyond <"$tmp/labels.out"
    missing_early=$(sed -n 2p "$tmp/labels.out")
    echo "     $na entries; identical $equal, in one step $((both - equal)), rank swaps $swapped," \
         "only one side $((na - both)), max |dlogprob| $maxdiff, beyond the bound $beyond"
    [ "$na" = "$nb" ] && [ "$beyond" = 0 ] && [ "$missing_early" = 0 ] && [ "$both" -gt 0 ]
}
check "distill 2 ranks: same labels (codec bound)" same_labels

# An interrupted 2-rank run: shard 1 lost the odd records, the merge never
# happened. The rerun must label just those on rank 1, leave shard 0 alone
# and merge the same rows as one process.
resume_distill() {
    sqlite3 "$tmp/two.db.shard-1-of-2" "DELETE FROM sequences WHERE record_index % 2 = 1" || return 1
    rm -f "$tmp/two.db" "$tmp/two.db-wal" "$tmp/two.db-shm"
    before=$(cksum <"$tmp/two.db.shard-0-of-2")
    run 2 "$distill" --teacher "$tmp/teacher.ckpt" --db "$tmp/two.db" --input "$tmp/data/unlabeled.txt" \
        --records paragraph --topk 8 --batch 8 --threads 1 2>"$tmp/rerun.log" || return 1
    grep -q "nothing to do" "$tmp/rerun.log" && [ "$(cksum <"$tmp/two.db.shard-0-of-2")" = "$before" ] &&
        same_rows
}
check "distill 2 ranks: rerun resumes every shard" resume_distill

# ---- train: -np 1 vs -np 2. 4 GT + 3 labeled rows: rank 0 takes 3 GT rows,
# rank 1 one GT row and the labeled ones.
student="--gt $tmp/data/gt.txt --records paragraph --tokenizer $tmp/teacher.ckpt --layers 2 --heads 2
    --channels 48 --seq 32 --steps 50 --lr 1e-3 --eval-input $tmp/data/heldout.txt --eval-every 10
    --seed 3 --batch 4 --kd-batch 3 --labels $tmp/one.db --alpha 0.5 --threads 1 --quiet"
student() { # student NAME NP [options]
    name=$1 np=$2; shift 2
    run "$np" "$train" $student --out "$tmp/$name.ckpt" --metrics "$tmp/$name.jsonl" "$@" \
        >>"$tmp/$name.out" 2>>"$tmp/train.log"
}
check "train -np 1" student s1 1
check "train -np 2" student s2 2 --json
# keys compared at every step: lm_loss, kd_loss, loss, eval_loss (when present),
# relative to their own value (kd_loss: to the total loss)
agree() {
    [ "$(wc -l <"$tmp/s1.jsonl")" -eq 50 ] && [ "$(wc -l <"$tmp/s2.jsonl")" -eq 50 ] || return 1
    paste -d '\n' "$tmp/s1.jsonl" "$tmp/s2.jsonl" | awk '
        function get(line, key,   m) {
            if (match(line, "\"" key "\":[-+0-9.eE]+")) return substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 3)
            return ""
        }
        NR % 2 == 1 { a = $0; next }
        {
            n = split("lm_loss kd_loss loss eval_loss", keys, " ")
            for (i = 1; i <= n; i++) {
                x = get(a, keys[i]); y = get($0, keys[i])
                if ((x == "") != (y == "")) { bad = 1; continue }
                if (x == "") continue
                d = x - y; if (d < 0) d = -d
                # KD is a difference of nearly equal cross-entropies that the
                # student drives towards 0 (about 0.03 here), so its rounding
                # is measured against the step total it is part of.
                s = keys[i] == "kd_loss" ? get(a, "loss") + 0 : x
                s = s < 0 ? -s : s
                r = s > 0 ? d / s : d
                if (r > worst) worst = r
                compared++
            }
        }
        END { printf "     %d values over 50 steps, max relative difference %.3g\n", compared, worst
              exit (bad || compared < 150 || worst > 1e-5) }'
}
check "train: -np 1 and -np 2 losses agree to 1e-5" agree
# rank 0 alone writes --metrics: 50 whole lines, each one JSON object
metrics_whole() {
    [ "$(wc -l <"$tmp/s2.jsonl")" -eq 50 ] && [ "$(grep -c '^{"step":[0-9][0-9]*,.*}$' "$tmp/s2.jsonl")" -eq 50 ]
}
check "train -np 2: --metrics written by rank 0 alone" metrics_whole
summary() { grep -q '"ranks":2' "$tmp/s2.out" && [ "$(grep -c . "$tmp/s2.out")" -eq 1 ]; }
check "train -np 2: one JSON summary (rank 0)" summary

resume_train() {
    student r2 2 --stop-at 23 --checkpoint-every 10 && student r2 2 --resume --checkpoint-every 10 &&
        cmp -s "$tmp/r2.ckpt" "$tmp/s2.ckpt" && cmp -s "$tmp/r2.ckpt.resume" "$tmp/s2.ckpt.resume" &&
        [ "$(wc -l <"$tmp/r2.jsonl")" -eq 50 ]
}
check "train -np 2: stop at 23 + resume == uninterrupted" resume_train
check "train -np 2: no stray files" sh -c "[ -z \"\$(ls '$tmp' | grep -v -e '^data\$' -e '^teacher' \
    -e '^one\.db' -e '^two\.db' -e '^cmp\.db\$' -e '^s[12]\.' -e '^r2\.' -e '\.log\$' -e '\.out\$' -e '\.json\$')\" ]"
finish
