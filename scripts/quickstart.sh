#!/usr/bin/env bash
# The main job on the embedded default: install fot_jax, train a tiny FoT model on the CPython standard library
# (configs/experiments/tiny_fot.py), evaluate it with memory, and export it to a Hugging Face folder.
# Everything lands under $WORKDIR (default runs/quickstart). Re-running resumes training from the latest
# checkpoint and keeps earlier evaluation results and exports (it never overwrites them).
set -euo pipefail
cd "$(dirname "$0")/.."
WORKDIR=${WORKDIR:-runs/quickstart}
TRAIN="$WORKDIR/train"
EVAL="$WORKDIR/eval"
mkdir -p "$EVAL"

python -m pip install --quiet -e .

echo "== train: tiny FoT (memory layer 2 of 4, k=4 packing, d 2 -> 6) on the stdlib corpus"
python -m fot_jax.train --config=configs/experiments/tiny_fot.py --workdir="$TRAIN"

run_eval() {  # run_eval NAME TASK [flags...]: skips results that already exist
  local name=$1; shift
  if [[ -e "$EVAL/$name.json" ]]; then echo "== eval $name: $EVAL/$name.json exists, kept"; return; fi
  echo "== eval $name"
  python -m fot_jax.evaluate "$@" --checkpoint="$TRAIN" --out="$EVAL/$name.json"
}
# Per-token loss vs context length on held-out documents, with memory and with memory disabled.
run_eval ppl_single perplexity --mode=single --num_docs=4 --max_length=2k --batch_size=4
run_eval ppl_single_nomem perplexity --mode=single --num_docs=4 --max_length=2k --batch_size=4 --mem_layers=
# Multi-doc: other documents in memory as distractors.
run_eval ppl_multi perplexity --mode=multi --num_docs=4 --target_length=512 --distractor_length=512 \
  --distractors=0,1,2,4
# The positive attention mass r_d of the memory layer against the number of contexts.
run_eval distraction distraction --contexts=2,4,8,16 --num_queries=16

if [[ -e "$WORKDIR/hf/config.json" ]]; then
  echo "== export: $WORKDIR/hf exists, kept"
else
  echo "== export to Hugging Face (LLaMA weights + LongLLaMA config and modeling file)"
  python -m fot_jax.export --workdir="$TRAIN" --out="$WORKDIR/hf"
fi
echo "done: checkpoints in $TRAIN, results in $EVAL, export in $WORKDIR/hf"
