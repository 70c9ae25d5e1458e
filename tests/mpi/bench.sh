#!/bin/sh
# `make bench-mpi`: data-parallel scaling of train. The same run --
# preset-sized student, the same global batch of GT and labeled rows -- at
# `mpirun -np 1` with one thread and at `-np 2` with one thread per rank.
# One process with two threads is timed as well, for reference.
# Verifies first that both give the same final losses (1e-5 relative), then
# prints tokens/s, the scaling efficiency tokens/s(2) / (2 * tokens/s(1)) and
# the share of rank 0's step time spent in the gradient allreduce, and
# separately in waiting for the slower rank to reach it. JSON lines are
# appended to $BUILD/bench.jsonl; the MPI programs come from $MPI_BUILD.
BUILD=${BUILD:-build}
MPI_BUILD=${MPI_BUILD:-build/mpi}
STEPS=${STEPS:-30}
here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here" || exit 1
train=$here/$MPI_BUILD/train
distill=$here/$MPI_BUILD/distill
case $BUILD in /*) jsonl=$BUILD/bench.jsonl ;; *) jsonl=$here/$BUILD/bench.jsonl ;; esac
mkdir -p "$(dirname "$jsonl")" || exit 1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/w2s-bench-mpi.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
die() { echo "bench-mpi: $*" >&2; exit 1; }
run() { mpirun --allow-run-as-root --oversubscribe -np "$@"; }
field() { sed -n "s/.*\"$2\":\([-+0-9.eE]*\).*/\1/p" "$1"; }
emit() { printf '{"bench": "%s", "value": %s, "unit": "%s"}\n' "$1" "$2" "$3" >>"$jsonl"; }

# the tests' generated text: the same work at every commit
awk -v seed=1 -v paragraphs=1500 -f tests/mpi/text.awk > "$tmp/gt.txt"
awk -v seed=101 -v paragraphs=2500 -f tests/mpi/text.awk > "$tmp/unlabeled.txt"
run 1 "$train" --gt "$tmp/gt.txt" --records paragraph --out "$tmp/teacher.ckpt" --vocab 512 \
    --preset tiny --steps 5 --batch 8 --seed 1 --threads 2 --quiet || die "teacher failed"
run 2 "$distill" --teacher "$tmp/teacher.ckpt" --db "$tmp/labels.db" --input "$tmp/unlabeled.txt" \
    --records paragraph --topk 32 --threads 1 --quiet || die "distill failed"

# tiny student (L2 H4 C128 T128), 16 GT + 16 labeled rows per step
# np1t2: one process with two threads, what the machine gives without MPI
# (Open MPI binds each rank to one core: the two-thread run is unbound.)
for np in 1 2 1t2; do
    threads=1 bind=""
    [ "$np" = 1t2 ] && threads=2 bind="--bind-to none"
    # shellcheck disable=SC2086
    run "${np%t2}" $bind "$train" --gt "$tmp/gt.txt" --records paragraph --tokenizer "$tmp/teacher.ckpt" \
        --preset tiny --steps "$STEPS" --batch 16 --kd-batch 16 --labels "$tmp/labels.db" --alpha 0.5 \
        --seed 2 --threads "$threads" --quiet --json --out "$tmp/s$np.ckpt" >"$tmp/np$np.json" ||
        die "train -np $np failed"
done
for key in lm_loss kd_loss; do
    a=$(field "$tmp/np1.json" $key) b=$(field "$tmp/np2.json" $key)
    awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && d <= 1e-5 * (a < 0 ? -a : a)) }' ||
        die "-np 1 and -np 2 disagree on $key: $a vs $b"
done
tps1=$(field "$tmp/np1.json" tokens_per_s)
tps2=$(field "$tmp/np2.json" tokens_per_s)
tps1t2=$(field "$tmp/np1t2.json" tokens_per_s)
secs=$(field "$tmp/np2.json" seconds)
red=$(field "$tmp/np2.json" allreduce_seconds)
waited=$(field "$tmp/np2.json" allreduce_wait_seconds)
eff=$(awk -v a="$tps1" -v b="$tps2" 'BEGIN { printf "%.4f", b / (2 * a) }')
share=$(awk -v r="$red" -v s="$secs" 'BEGIN { printf "%.4f", r / s }')
wshare=$(awk -v r="$waited" -v s="$secs" 'BEGIN { printf "%.4f", r / s }')
echo "train tiny, 16 GT + 16 labeled rows of 128, $STEPS steps (losses of -np 1 and -np 2 agree)"
echo "  -np 1, 1 thread:          $tps1 tokens/s"
echo "  -np 2, 1 thread per rank: $tps2 tokens/s"
echo "  (-np 1, 2 threads:        $tps1t2 tokens/s, for reference)"
echo "  scaling efficiency:       $eff"
echo "  allreduce share of step:  $share ($red of $secs s on rank 0)"
echo "  waiting for the other rank before it: $wshare ($waited s)"
emit train_mpi_np1_tokens_per_s "$tps1" tokens/s
emit train_mpi_np2_tokens_per_s "$tps2" tokens/s
emit train_mpi_np1_2threads_tokens_per_s "$tps1t2" tokens/s
emit train_mpi_scaling_efficiency "$eff" ratio
emit train_mpi_allreduce_share "$share" ratio
emit train_mpi_allreduce_wait_share "$wshare" ratio
