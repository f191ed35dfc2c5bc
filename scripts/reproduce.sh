#!/usr/bin/env bash
# Reproduces one experiment of docs/RESULTS.md end to end (training, then evaluation and figures):
#   bash scripts/reproduce.sh distraction   # (a) r_d of baseline / FoT d=1 / FoT with negatives      ~20 min
#   bash scripts/reproduce.sh passkey       # (b) passkey accuracy up to 32k tokens, memory on and off  ~30 min
#   bash scripts/reproduce.sh multidoc      # (c) perplexity vs distractor documents in memory          (needs (a))
#   bash scripts/reproduce.sh singledoc     # (d) perplexity vs context length, memory on and off       (needs (a))
# Runs land in $RUNS (default runs/reproduce); results and figures in $OUT (default docs/figures). Finished
# training runs are resumed/kept, and an existing result file is never overwritten (delete it to redo it).
# Times are for the 2-core CPU this project is developed on; a GPU or TPU runs the same commands.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs/reproduce}
OUT=${OUT:-docs/figures}
mkdir -p "$RUNS" "$OUT"

train() {  # train NAME CONFIG [overrides...]
  local name=$1 config=$2; shift 2
  echo "== train $name ($config)"
  python -m fot_jax.train --config="$config" --workdir="$RUNS/$name" "$@"
}
evaluate() {  # evaluate RESULT TASK [flags...]: skipped when $OUT/RESULT.json exists
  local result=$1; shift
  if [[ -e "$OUT/$result.json" ]]; then echo "== eval $result: $OUT/$result.json exists, kept"; return; fi
  echo "== eval $result"
  python -m fot_jax.evaluate "$@" --out="$OUT/$result.json"
}

REPEAT_CORPUS='repeat:stdlib:64x4'

case "${1:-}" in
  distraction)
    for v in baseline d1 negatives; do
      train "dist_$v" "configs/experiments/distraction_fot.py:$v"
    done
    for v in baseline d1 negatives; do
      evaluate "r3_distraction_$v" distraction --checkpoint="$RUNS/dist_$v" --corpus="$REPEAT_CORPUS" \
        --context_length=64 --label="$v"
      evaluate "r3_distraction_stdlib_$v" distraction --checkpoint="$RUNS/dist_$v" --corpus=stdlib \
        --context_length=64 --label="$v"
    done
    for corpus in "" "_stdlib"; do
      python -m fot_jax.evaluate distraction --checkpoint="$RUNS/dist_baseline" --context_length=64 \
        --corpus="$([[ -z $corpus ]] && echo "$REPEAT_CORPUS" || echo stdlib)" --label=baseline \
        --out="/tmp/fot_reproduce_distraction$corpus.json" --figure="$OUT/r3_distraction$corpus.png" \
        --compare="d1=$OUT/r3_distraction${corpus}_d1.json" \
        --compare="negatives=$OUT/r3_distraction${corpus}_negatives.json"
    done
    ;;
  passkey)
    train passkey configs/experiments/passkey_fot.py
    evaluate r3_passkey passkey --checkpoint="$RUNS/passkey" --lengths=1k,4k,16k,32k --depths=0,0.25,0.5,0.75,1 \
      --samples=2 --label=FoT
    evaluate r3_passkey_nomem passkey --checkpoint="$RUNS/passkey" --lengths=1k,4k,16k,32k \
      --depths=0,0.25,0.5,0.75,1 --samples=2 --mem_layers= --label=no-memory \
      --compare="FoT=$OUT/r3_passkey.json" --figure="$OUT/r3_passkey.png"
    ;;
  multidoc)
    for v in d1 negatives; do
      evaluate "r3_ppl_multi_$v" perplexity --checkpoint="$RUNS/dist_$v" --mode=multi --target_length=1k \
        --distractor_length=1k --distractors=0,1,2,4,8 --num_docs=8 --label="$v"
    done
    python -m fot_jax.evaluate perplexity --checkpoint="$RUNS/dist_d1" --mode=multi --target_length=1k \
      --distractor_length=1k --distractors=0,1,2,4,8 --num_docs=8 --label=d1 --out=/tmp/fot_reproduce_multi.json \
      --compare="negatives=$OUT/r3_ppl_multi_negatives.json" --figure="$OUT/r3_ppl_multi.png"
    ;;
  singledoc)
    evaluate r3_ppl_single_nomem perplexity --checkpoint="$RUNS/dist_negatives" --mode=single --max_length=4k \
      --num_docs=8 --mem_layers= --label=no-memory
    evaluate r3_ppl_single perplexity --checkpoint="$RUNS/dist_negatives" --mode=single --max_length=4k \
      --num_docs=8 --label=negatives --compare="no-memory=$OUT/r3_ppl_single_nomem.json" \
      --figure="$OUT/r3_ppl_single.png"
    ;;
  *)
    echo "usage: bash scripts/reproduce.sh {distraction|passkey|multidoc|singledoc}" >&2
    exit 2
    ;;
esac
