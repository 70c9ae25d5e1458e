#!/usr/bin/env bash
# pipeline.sh: the default weak-to-strong experiment, end to end (README,
# "The default experiment").
#
#   split the corpus by content hash -> teacher on GT -> distill the unlabeled
#   archive -> baseline (GT only), W2S (GT + KD), ceiling (GT + real tokens of
#   the same windows) -> evaluate all four on the test split -> report.
#
# Stage outputs live in a work directory and each stage is skipped when its
# output is complete and neither its command nor its inputs changed, so
# labels are computed once and students are cheap to rerun. Every run writes a report directory
# runs/<timestamp>/ with report.md, the exact commands and a loss-curve plot.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"

usage() {
    cat <<'EOF'
usage: ./pipeline.sh [options]

Runs the default weak-to-strong experiment: installs missing Debian packages
(when root), builds w2s, and trains teacher, baseline, W2S student and ceiling
on the fortune files of Debian's `fortunes` package.

  --data PATH         corpus: directory, archive or file (default: the plain
                      files of /usr/share/games/fortunes)
  --records MODE      how --data is cut into records (default fortune)
  --out DIR           work directory for stage outputs (default runs/work,
                      runs/quick with --quick)
  --reports DIR       where each run's report directory goes (default runs)
  --quick             a smoke run in under 2 minutes (tiny models, few steps)
  --seeds N           train the three students with N seeds; report mean and
                      spread of PGR (default 1)
  --vocab N           tokenizer vocabulary (default 258: bytes, one merge and
                      the end-of-text token; see README for why)
  --teacher L,H,C,T   teacher shape (default 2,4,128,128)
  --student L,H,C,T   student shape (default 3,4,192,128)
  --teacher-steps N   teacher training steps (default 500)
  --student-steps N   student training steps (default 600)
  --batch N           GT rows per step (default 16)
  --kd-batch N        labeled rows per step (default 16)
  --alpha A           weight of the LM loss in the W2S run (default 0.5)
  --tau T             distillation temperature (default 1)
  --kd-tail MODE      bucket|renorm (default bucket)
  --topk K            soft labels kept per position (default 32)
  --labels KIND       label kind stored by distill: topk:K or sample:N
                      (default topk:K from --topk)
  --aux-conf B        auxiliary confidence weight of the W2S run (default 0)
  --kd-loss L[,L...]  divergence(s) of the W2S run: fkl (default), rkl, gjsd,
                      skl, srkl, tvd; a list runs one W2S student per entry
  --kd-beta B         gjsd's beta (default 0.5)
  --kd-skew A         skl / srkl skew (default 0.1)
  --kd-weight W[,W..] per-position trust: none (default), conf, entropy; a
                      list runs every loss with every weighting
  --kd-min-conf P     skip KD positions whose teacher top-1 is below P
                      (default 0)
  --threads N         threads per program (default: all cores)
  -h, --help          this help
EOF
}

die() { echo "pipeline.sh: $*" >&2; exit 1; }

data="" records=fortune work="" reports=runs quick=0 seeds=1
vocab=258 teacher=2,4,128,128 student=3,4,192,128
teacher_steps=500 student_steps=600 batch=16 kd_batch=16
alpha=0.5 tau=1 kd_tail=bucket topk=32 labels="" aux_conf=0 threads=0
kd_losses=fkl kd_beta=0.5 kd_skew=0.1 kd_weights=none kd_min_conf=0
teacher_lr=4e-3 student_lr=3e-3
# --quick changes the defaults; options given with it still win.
for arg in "$@"; do
    if [[ $arg = --quick ]]; then
        # Small enough for a test; the numbers mean nothing.
        quick=1 teacher=1,2,32,32 student=1,2,48,32 vocab=300
        teacher_steps=30 student_steps=30 batch=4 kd_batch=4 topk=8
    fi
done

need_value() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value (see --help)"; }
while [[ $# -gt 0 ]]; do
    case $1 in
    --data) need_value "$@"; data=$2; shift 2 ;;
    --records) need_value "$@"; records=$2; shift 2 ;;
    --out) need_value "$@"; work=$2; shift 2 ;;
    --reports) need_value "$@"; reports=$2; shift 2 ;;
    --quick) shift ;;
    --seeds) need_value "$@"; seeds=$2; shift 2 ;;
    --vocab) need_value "$@"; vocab=$2; shift 2 ;;
    --teacher) need_value "$@"; teacher=$2; shift 2 ;;
    --student) need_value "$@"; student=$2; shift 2 ;;
    --teacher-steps) need_value "$@"; teacher_steps=$2; shift 2 ;;
    --student-steps) need_value "$@"; student_steps=$2; shift 2 ;;
    --batch) need_value "$@"; batch=$2; shift 2 ;;
    --kd-batch) need_value "$@"; kd_batch=$2; shift 2 ;;
    --alpha) need_value "$@"; alpha=$2; shift 2 ;;
    --tau) need_value "$@"; tau=$2; shift 2 ;;
    --kd-tail) need_value "$@"; kd_tail=$2; shift 2 ;;
    --topk) need_value "$@"; topk=$2; shift 2 ;;
    --labels) need_value "$@"; labels=$2; shift 2 ;;
    --aux-conf) need_value "$@"; aux_conf=$2; shift 2 ;;
    --kd-loss) need_value "$@"; kd_losses=$2; shift 2 ;;
    --kd-beta) need_value "$@"; kd_beta=$2; shift 2 ;;
    --kd-skew) need_value "$@"; kd_skew=$2; shift 2 ;;
    --kd-weight) need_value "$@"; kd_weights=$2; shift 2 ;;
    --kd-min-conf) need_value "$@"; kd_min_conf=$2; shift 2 ;;
    --threads) need_value "$@"; threads=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "pipeline.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[[ $seeds =~ ^[1-9][0-9]*$ ]] || die "--seeds: '$seeds' is not a positive integer"
IFS=, read -r -a loss_list <<<"$kd_losses"
IFS=, read -r -a weight_list <<<"$kd_weights"
for l in "${loss_list[@]}"; do
    [[ $l =~ ^(fkl|rkl|gjsd|skl|srkl|tvd)$ ]] || die "--kd-loss: '$l' is not fkl, rkl, gjsd, skl, srkl or tvd"
done
for w in "${weight_list[@]}"; do
    [[ $w =~ ^(none|conf|entropy)$ ]] || die "--kd-weight: '$w' is not none, conf or entropy"
done

# W2S variants: every --kd-loss with every --kd-weight. A variant at the
# defaults is plain "w2s" and passes no KD options, so its stage keeps the
# command (and cache) it had before these options existed; the others are
# "w2s-<loss><param>-<weight>-minconf<P>" with the default parts left out.
variants=()
declare -A variant_args=()
for l in "${loss_list[@]}"; do
    for w in "${weight_list[@]}"; do
        tag="" args=""
        case $l in
        fkl) ;;
        gjsd) tag=gjsd$kd_beta args="--kd-loss gjsd --kd-beta $kd_beta" ;;
        skl|srkl) tag=$l$kd_skew args="--kd-loss $l --kd-skew $kd_skew" ;;
        *) tag=$l args="--kd-loss $l" ;;
        esac
        [[ $w != none ]] && tag=${tag:+$tag-}$w args="$args --kd-weight $w"
        [[ $kd_min_conf != 0 ]] && tag=${tag:+$tag-}minconf$kd_min_conf args="$args --kd-min-conf $kd_min_conf"
        v=w2s${tag:+-$tag}
        [[ -n ${variant_args[$v]+x} ]] || variants+=("$v")
        variant_args[$v]=${args# }
    done
done

[[ $quick = 1 ]] && work=${work:-runs/quick}
work=${work:-runs/work}
labels=${labels:-topk:$topk}
labels_db=$work/labels-${labels/:/-}.db   # one database per label kind

# ---- set-up: packages and build -------------------------------------------
# The libraries, zstd, gnuplot and, for the default corpus, fortunes.
corpus_pkgs=fortunes
[[ -n $data ]] && corpus_pkgs=
make --no-print-directory deps-pipeline CORPUS_DEB_PKGS="$corpus_pkgs"
make --no-print-directory -j"$(nproc)" all >/dev/null

inputs=()
if [[ -z $data ]]; then
    while IFS= read -r f; do inputs+=("$f"); done < <(
        find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | LC_ALL=C sort)
    [[ ${#inputs[@]} -gt 0 ]] || die "no fortune files in /usr/share/games/fortunes"
    if [[ $quick = 1 ]]; then
        inputs=(/usr/share/games/fortunes/computers /usr/share/games/fortunes/science)
    fi
else
    [[ -e $data ]] || die "$data: no such file or directory"
    inputs=("$data")
fi

shape_args() { # L,H,C,T -> train options
    IFS=, read -r l h c t <<<"$1"
    [[ -n $t ]] || die "shape '$1' is not L,H,C,T"
    echo "--layers $l --heads $h --channels $c --seq $t"
}

mkdir -p "$work/data"
stamp=$(date +%Y%m%d-%H%M%S)
report_dir=$reports/$stamp
n=1
while [[ -e $report_dir ]]; do report_dir=$reports/$stamp-$n; n=$((n + 1)); done
mkdir -p "$report_dir"
commands=$report_dir/commands.sh
echo "# Commands of the run $stamp, in order (stages already complete are marked)." >"$commands"

# fingerprint PATH...: size and CRC of every file under the paths, so a stage
# whose inputs changed (a retrained teacher, a new checkpoint) runs again even
# when its command line did not change.
fingerprint() {
    find "$@" -type f -print0 | sort -z | xargs -0 -r cksum | awk '{ printf "%s:%s ", $1, $2 }'
}

# run_stage NAME N INPUT1..INPUTN COMMAND...: runs COMMAND unless NAME
# completed before with the same command on inputs of the same content; logs
# to WORK/NAME.log and records the wall time.
run_stage() {
    local name=$1 n=$2; shift 2
    local deps=("${@:1:n}"); shift "$n"
    local cmd
    cmd="$(printf '%q ' "$@")# inputs $(fingerprint "${deps[@]}")"
    local marker=$work/$name.done
    stage_ran=0
    if [[ -f $marker && $(head -n 1 "$marker") == "$cmd" ]]; then
        echo "== $name: up to date"
        echo "# $name (up to date): $cmd" >>"$commands"
        return 0
    fi
    rm -f "$marker"
    echo "== $name"
    echo "$cmd" >>"$commands"
    local start end
    start=$(date +%s.%N)
    if ! "$@" >"$work/$name.out" 2>"$work/$name.log"; then
        tail -n 5 "$work/$name.log" >&2
        die "stage $name failed (log: $work/$name.log)"
    fi
    end=$(date +%s.%N)
    stage_ran=1
    printf '%s\n%s\n' "$cmd" "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')" >"$marker"
}
stage_seconds() { sed -n 2p "$work/$1.done"; }
json_field() { # FILE FIELD -> value of "FIELD": number in a one-line JSON object
    sed -n "s/.*\"$2\": *\([-0-9.eE+naifNI]*\).*/\1/p" "$1" | head -n 1
}

threads_arg=()
[[ $threads != 0 ]] && threads_arg=(--threads "$threads")
d=$work/data

# 1. Split: 5% ground truth (a tenth of it held out), 10% test, 85% unlabeled.
input_args=()
for f in "${inputs[@]}"; do input_args+=(--input "$f"); done
run_stage split "${#inputs[@]}" "${inputs[@]}" build/distill split --records "$records" --out "$d" \
    --parts gt:4.5,heldout:0.5,test:10,unlabeled:85 "${input_args[@]}"
# Each part is a tar of one member per record, read back by the default
# --records file whatever a record holds (distill split --help).
run_stage pack 1 "$d/unlabeled.tar" zstd -q -f "$d/unlabeled.tar" -o "$d/unlabeled.tar.zst"

# 2. Teacher: LM loss on GT only; learns the tokenizer every model shares.
run_stage teacher 2 "$d/gt.tar" "$d/heldout.tar" build/train --gt "$d/gt.tar" --out "$work/teacher.ckpt" \
    --vocab "$vocab" $(shape_args "$teacher") --steps "$teacher_steps" --batch $((batch + kd_batch)) \
    --lr "$teacher_lr" --eval-input "$d/heldout.tar" --eval-every 25 --seed 1 \
    --metrics "$work/teacher.jsonl" --quiet --json "${threads_arg[@]}"

# Labels of an earlier teacher cannot be resumed or mixed (distill refuses them).
if ((stage_ran)); then rm -f "$work"/labels-*.db "$work"/labels-*.db-wal "$work"/labels-*.db-shm; fi

# 3. Distill the unlabeled archive with the teacher.
run_stage distill 2 "$work/teacher.ckpt" "$d/unlabeled.tar.zst" build/distill --teacher "$work/teacher.ckpt" --db "$labels_db" \
    --input "$d/unlabeled.tar.zst" --labels "$labels" --quiet --json "${threads_arg[@]}"

# 4-6. Students: baseline (GT only), ceiling (GT + real tokens), W2S (GT + KD).
student_common() { # SEED
    echo "--gt $d/gt.tar --tokenizer $work/teacher.ckpt $(shape_args "$student")"
    echo "--steps $student_steps --lr $student_lr --eval-input $d/heldout.tar --eval-every 25 --seed $1"
}
student_inputs=("$d/gt.tar" "$d/heldout.tar" "$work/teacher.ckpt")
for seed in $(seq 1 "$seeds"); do
    common=$(student_common "$seed")
    # shellcheck disable=SC2086
    run_stage "baseline-s$seed" 3 "${student_inputs[@]}" build/train $common --batch $((batch + kd_batch)) \
        --out "$work/baseline-s$seed.ckpt" --metrics "$work/baseline-s$seed.jsonl" --quiet --json "${threads_arg[@]}"
    # shellcheck disable=SC2086
    run_stage "ceiling-s$seed" 4 "${student_inputs[@]}" "$labels_db" build/train $common --batch "$batch" --kd-batch "$kd_batch" \
        --labels "$labels_db" --labels-hard --alpha "$alpha" \
        --out "$work/ceiling-s$seed.ckpt" --metrics "$work/ceiling-s$seed.jsonl" --quiet --json "${threads_arg[@]}"
    # the variants last: a run cut short still has the baseline and ceiling
    for v in "${variants[@]}"; do
        # shellcheck disable=SC2086
        run_stage "$v-s$seed" 4 "${student_inputs[@]}" "$labels_db" build/train $common --batch "$batch" --kd-batch "$kd_batch" \
            --labels "$labels_db" --alpha "$alpha" --tau "$tau" --kd-tail "$kd_tail" --aux-conf "$aux_conf" ${variant_args[$v]} \
            --out "$work/$v-s$seed.ckpt" --metrics "$work/$v-s$seed.jsonl" --quiet --json "${threads_arg[@]}"
    done
done

# 7. Evaluate every model on the test split.
models=(teacher)
for seed in $(seq 1 "$seeds"); do
    models+=("baseline-s$seed")
    for v in "${variants[@]}"; do models+=("$v-s$seed"); done
    models+=("ceiling-s$seed")
done
for m in "${models[@]}"; do
    run_stage "eval-$m" 2 "$work/$m.ckpt" "$d/test.tar" build/train --eval --model "$work/$m.ckpt" --input "$d/test.tar" \
        --positions "$work/eval-$m.tsv" --json "${threads_arg[@]}"
done

# ---- report ------------------------------------------------------------------
loss() { json_field "$work/eval-$1.out" loss; }
params() { json_field "$work/$1.out" params; }
report=$report_dir/report.md
{
    echo "# w2s weak-to-strong run $stamp"
    echo
    echo "Corpus: ${data:-/usr/share/games/fortunes (plain files)}, records: $records."
    echo "Teacher $teacher, student $student (L,H,C,T), vocab $vocab, labels $labels,"
    echo "alpha $alpha, tau $tau, tail $kd_tail, aux-conf $aux_conf, kd-loss $kd_losses (gjsd beta $kd_beta, skew $kd_skew),"
    echo "kd-weight $kd_weights, kd-min-conf $kd_min_conf, $teacher_steps teacher and $student_steps student steps."
    echo
    echo "| model | params | test loss (nats/token) | perplexity | bits/byte | train time (s) |"
    echo "|---|---|---|---|---|---|"
    for m in "${models[@]}"; do
        printf '| %s | %s | %s | %s | %s | %s |\n' "$m" "$(params "$m")" "$(loss "$m")" \
            "$(json_field "$work/eval-$m.out" ppl)" "$(json_field "$work/eval-$m.out" bits_per_byte)" \
            "$(stage_seconds "$m")"
    done
    echo
} >"$report"

# PGR and the gain over the baseline per variant and seed, then their mean
# and spread (sample standard deviation over seeds).
pgr_summary() { # VARIANT
    for seed in $(seq 1 "$seeds"); do
        echo "$(loss teacher) $(loss "baseline-s$seed") $(loss "$1-s$seed") $(loss "ceiling-s$seed")"
    done | awk -v name="$1" '
        function sd(x, n, m,   i, v) { v = 0; for (i = 1; i <= n; i++) v += (x[i] - m) ^ 2
                                      return n > 1 ? sqrt(v / (n - 1)) : 0 }
        { t = $1; b = $2; w = $3; c = $4; n++
          gap = t - c; p[n] = (gap != 0) ? (t - w) / gap : 0; g[n] = b - w; sp += p[n]; sg += g[n]
          flag = ""; if (c >= t) { unsound++; flag = " (UNSOUND: ceiling does not beat teacher)" }
          printf "%s seed %d: PGR %.3f, W2S gain over baseline %.4f nats%s\n", name, n, p[n], g[n], flag }
        END { mp = sp / n; mg = sg / n
              printf "%s: PGR mean %.3f spread %.3f; W2S gain over baseline mean %.4f spread %.4f nats; %d seed(s)\n",
                     name, mp, sd(p, n, mp), mg, sd(g, n, mg), n
              if (unsound) printf "UNSOUND: in %d seed(s) the ceiling did not beat the teacher; PGR is not meaningful\n", unsound }'
}
{
    echo "PGR = (loss_teacher - loss_w2s) / (loss_teacher - loss_ceiling); W2S gain = loss_baseline - loss_w2s"
    echo "(test split; spread = sample standard deviation over seeds)."
    echo
    echo "| variant | KD options | PGR mean | PGR spread | W2S gain mean (nats) | gain spread |"
    echo "|---|---|---|---|---|---|"
    for v in "${variants[@]}"; do
        pgr_summary "$v" | awk -v v="$v" -v a="${variant_args[$v]:-(defaults)}" '$2 == "PGR" && $3 == "mean" { gsub(/;/, "")
            printf "| %s | %s | %s | %s | %s | %s |\n", v, a, $4, $6, $12, $14 }'
    done
    echo
    echo '```'
    for v in "${variants[@]}"; do pgr_summary "$v"; done
    echo '```'
    echo
    echo "Commands: [commands.sh](commands.sh). Loss curves: ![loss curves](curves.png)"
} >>"$report"

# ---- where the gap lies ------------------------------------------------------
# The test tokens binned by the teacher's own top-1 probability (the
# --positions files line up token by token, schemas/positions.md): per bin
# the mean loss of each model (students: mean over seeds), the bin's share of
# the teacher-ceiling gap and each variant's PGR within the bin. It shows
# where the teacher's labels carry what the ceiling learns from real tokens.
bins=5
# shellcheck disable=SC2016 # an awk fragment, expanded by awk
bin_of='b = int($6 * nb); b = b < nb ? b : nb - 1' # awk: field 6, the teacher's top-1, to its bin
bin_counts() { # -> the number of test tokens per bin
    awk -F'\t' -v nb="$bins" "NR > 1 { $bin_of; n[b]++ }"'
        END { for (b = 0; b < nb; b++) printf "%s%d", b ? " " : "", n[b]; print "" }' "$work/eval-teacher.tsv"
}
bin_means() { # RUN: mean test loss per bin, over the seeds for a student
    local files=("$work/eval-$1.tsv")
    if [[ $1 != teacher ]]; then
        files=()
        for seed in $(seq 1 "$seeds"); do files+=("$work/eval-$1-s$seed.tsv"); done
    fi
    for f in "${files[@]}"; do
        paste "$work/eval-teacher.tsv" "$f" | awk -F'\t' -v nb="$bins" "NR > 1 { $bin_of; s[b] += \$11; n[b]++ }"' END { for (b = 0; b < nb; b++) printf "%s%.6f", b ? " " : "", n[b] ? s[b] / n[b] : 0; print "" }'
    done | awk '{ for (i = 1; i <= NF; i++) s[i] += $i; k = NF }
        END { for (i = 1; i <= k; i++) printf "%s%.4f", (i > 1 ? " " : ""), s[i] / NR; print "" }'
}
gap_runs=(teacher baseline "${variants[@]}" ceiling)
bin_tokens=$(bin_counts)
for r in "${gap_runs[@]}"; do echo "$r $(bin_means "$r")"; done >"$report_dir/gap.dat"
{
    echo
    echo "Where the teacher-ceiling gap lies: test tokens by the teacher's top-1 probability;"
    echo "mean test loss per bin (students: mean over seeds), the bin's share of the gap"
    echo "(tokens x (teacher - ceiling) over the total) and each variant's PGR within the bin."
    echo
    printf '| teacher top-1 | tokens |'; printf ' %s |' "${gap_runs[@]}"; printf ' gap share |'
    for v in "${variants[@]}"; do printf ' PGR %s |' "$v"; done; echo
    printf '|---|---|'; for _ in "${gap_runs[@]}" gap "${variants[@]}"; do printf -- '---|'; done; echo
    awk -v nb="$bins" -v counts="$bin_tokens" -v nv="${#variants[@]}" '
        { for (b = 1; b <= nb; b++) m[NR, b] = $(b + 1); rows = NR }
        END { split(counts, n, " ")
              for (b = 1; b <= nb; b++) { gap[b] = m[1, b] - m[rows, b]; total += n[b] * gap[b]; all += n[b] }
              for (b = 1; b <= nb; b++) {
                  printf "| %.1f-%.1f | %.1f%% |", (b - 1) / nb, b / nb, 100 * n[b] / all
                  if (!n[b]) { for (r = 0; r <= rows + nv; r++) printf " - |"; print ""; continue }
                  for (r = 1; r <= rows; r++) printf " %.4f |", m[r, b]
                  printf " %.1f%% |", total ? 100 * n[b] * gap[b] / total : 0
                  for (v = 3; v < 3 + nv; v++) printf " %.2f |", gap[b] ? (m[1, b] - m[v, b]) / gap[b] : 0
                  print "" } }' "$report_dir/gap.dat"
    echo
    echo "Loss by the teacher's confidence: ![gap](gap.png)"
} >>"$report"

# ---- plot -----------------------------------------------------------------
# Two panels: GT training loss (a 20-step trailing mean) and held-out loss per
# step, mean over seeds with the min-max band across seeds, and the teacher's
# and the ceiling's final held-out losses as reference lines. The y-range
# comes from the curves after the first tenth of the steps, so the warm-up
# spike does not squeeze the rest; the key sits inside, above the data.
plot_data() { # JSONL FIELD -> "step value" lines
    awk -v f="\"$2\"" '{ s = $0; i = index(s, f); if (!i) next
        v = substr(s, i + length(f)); sub(/^ *: */, "", v); sub(/[,}].*/, "", v)
        j = index(s, "\"step\""); st = substr(s, j + 6); sub(/^ *: */, "", st); sub(/[,}].*/, "", st)
        print st, v }' "$1"
}
smooth() { # W: trailing mean of column 2 over W lines
    awk -v w="$1" '{ x[NR] = $2; s += $2; if (NR > w) s -= x[NR - w]; print $1, s / (NR < w ? NR : w) }'
}
across_seeds() { # RUN FIELD WINDOW -> "step mean min max" at the steps every seed has
    for seed in $(seq 1 "$seeds"); do plot_data "$work/$1-s$seed.jsonl" "$2" | smooth "$3"; done |
        awk -v n="$seeds" '{ s[$1] += $2; c[$1]++
            if (!($1 in lo) || $2 < lo[$1]) lo[$1] = $2; if (!($1 in hi) || $2 > hi[$1]) hi[$1] = $2 }
            END { for (k in c) if (c[k] == n) print k, s[k] / n, lo[k], hi[k] }' | sort -n
}
last_eval() { plot_data "$work/$1.jsonl" eval_loss | tail -n 1 | awk '{ print $2 }'; }
mean_over_seeds() { # COMMAND: the mean of "COMMAND RUN-sSEED" over the seeds
    for seed in $(seq 1 "$seeds"); do "$1" "ceiling-s$seed"; done | awk '{ s += $1 } END { printf "%.4f", s / NR }'
}
if command -v gnuplot >/dev/null; then
    runs=(baseline "${variants[@]}" ceiling)
    colours=("#555555" "#d95f02" "#7570b3" "#e7298a" "#66a61e" "#e6ab02" "#a6761d" "#1f78b4" "#b15928")
    ceiling_colour=${colours[$(((${#runs[@]} - 1) % ${#colours[@]}))]}
    skip=$((student_steps / 10))
    teacher_ref=$(last_eval teacher) ceiling_ref=$(mean_over_seeds last_eval)
    train_plots=() eval_plots=()
    for i in "${!runs[@]}"; do
        r=${runs[$i]} c=${colours[$((i % ${#colours[@]}))]}
        across_seeds "$r" lm_loss 20 >"$report_dir/$r.train.dat"
        across_seeds "$r" eval_loss 1 >"$report_dir/$r.eval.dat"
        for panel in train eval; do
            f="'$report_dir/$r.$panel.dat'"
            p="$f using 1:3:4 with filledcurves fc rgb '$c' fs transparent solid 0.2 notitle"
            p="$p, $f using 1:2 with lines lw 2 lc rgb '$c' title '$r'"
            if [[ $panel = train ]]; then train_plots+=("$p"); else eval_plots+=("$p"); fi
        done
    done
    # yrange PANEL [VALUE...] -> "[lo:hi]" of the bands after the skip and the
    # values, padded 5% below and 35% above: the key sits in that headroom.
    yrange() {
        local panel=$1; shift
        { for r in "${runs[@]}"; do awk -v s="$skip" '$1 > s { print $3; print $4 }' "$report_dir/$r.$panel.dat"; done
          printf '%s\n' "$@"; } |
            awk 'NF { if (!n++ || $1 < lo) lo = $1; if (n == 1 || $1 > hi) hi = $1 }
                 END { d = hi - lo + 1e-3; printf "[%g:%g]", lo - 0.05 * d, hi + 0.35 * d }'
    }
    two_panels() { # PNG TITLE: gnuplot's opening of a figure of two panels side by side
        printf '%s\n' "set terminal pngcairo size 1400,560 font ',11'" "set output '$1'" \
            "set multiplot layout 1,2 title \"$2\"" "set grid lc rgb '#dddddd'"
    }
    gnuplot <<EOF || echo "pipeline.sh: gnuplot failed; report has no plot" >&2
$(two_panels "$report_dir/curves.png" "w2s $stamp: mean over $seeds seed(s), shaded: min-max across seeds")
set xlabel 'step'
set ylabel 'loss (nats/token)'
set key top right horizontal maxcols 2 samplen 2
set xrange [0:$student_steps]
set title 'GT training loss (20-step trailing mean)'
set yrange $(yrange train)
plot $(IFS=,; echo "${train_plots[*]}")
set title sprintf('held-out loss; final: teacher %.3f (test %.3f), ceiling %.3f (test %.3f)', \
    $teacher_ref, $(loss teacher), $ceiling_ref, $(mean_over_seeds loss))
set yrange $(yrange eval "$teacher_ref" "$ceiling_ref")
plot $(IFS=,; echo "${eval_plots[*]}"), \
    $teacher_ref with lines dt 2 lw 1.5 lc rgb 'black' title 'teacher final', \
    $ceiling_ref with lines dt 3 lw 1.5 lc rgb '$ceiling_colour' title 'ceiling final'
unset multiplot
EOF
    # gap.dat transposed: one line per bin, its centre, then every run's loss
    awk -v nb="$bins" '{ for (b = 1; b <= nb; b++) m[NR, b] = $(b + 1); rows = NR }
        END { split(counts, n, " ")
              for (b = 1; b <= nb; b++) if (n[b]) { printf "%g", (b - 0.5) / nb
                  for (r = 1; r <= rows; r++) printf " %s", m[r, b]; print "" } }' \
        counts="$bin_tokens" "$report_dir/gap.dat" >"$report_dir/gap.bins.dat"
    # The second panel is the figure's point: a PGR that is flat across the
    # bins says the student closes the same share of the gap wherever the
    # teacher stands, so trusting confident positions more cannot raise it.
    teacher_col=2 ceiling_col=$((${#gap_runs[@]} + 1))
    gap_plots=() pgr_plots=()
    for i in "${!gap_runs[@]}"; do
        c=black
        ((i > 0)) && c=${colours[$(((i - 1) % ${#colours[@]}))]}
        style="with linespoints lw 2 pt 7 lc rgb '$c' title '${gap_runs[$i]}'"
        gap_plots+=("'$report_dir/gap.bins.dat' using 1:$((i + 2)) $style")
        ((i >= 2 && i < ${#gap_runs[@]} - 1)) &&
            pgr_plots+=("'$report_dir/gap.bins.dat' using 1:((\$$teacher_col - \$$((i + 2))) / (\$$teacher_col - \$$ceiling_col)) $style")
    done
    gnuplot <<EOF || echo "pipeline.sh: gnuplot failed; report has no gap plot" >&2
$(two_panels "$report_dir/gap.png" "test tokens by the teacher's top-1 probability (students: mean over $seeds seed(s))")
set xlabel "teacher's top-1 probability (centre of a bin of width 1/$bins)"
set xrange [0:1]
set key top right
set title 'mean test loss per bin'
set ylabel 'mean test loss (nats/token)'
plot $(IFS=,; echo "${gap_plots[*]}")
set title 'PGR within each bin: (teacher - student) / (teacher - ceiling)'
set ylabel 'PGR'
set yrange [0:1]
set key bottom right
plot $(IFS=,; echo "${pgr_plots[*]}")
unset multiplot
EOF
fi

cat "$report"
echo
echo "report: $report"
