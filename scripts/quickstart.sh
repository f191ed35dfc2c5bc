#!/usr/bin/env bash
# The main job on the embedded default: install fot_jax, then train a tiny FoT model in the two stages FoT needs
# (configs/experiments/tiny_fot.py): stage 1 learns the task within its local context, stage 2 FoT-tunes the
# memory layer with crossbatch from that checkpoint. Then the at-a-glance table (passkey accuracy far beyond the
# training context, held-out loss beyond the local context, r_d; memory on vs off, stage 1 beside) and an export
# to a Hugging Face folder. About 10 minutes on 2 CPU cores, the first corpus build included.
# Everything lands under $WORKDIR (default runs/quickstart). Re-running resumes training from the latest
# checkpoints and keeps earlier results and exports (it never overwrites them).
# QUICK=1 runs the test-sized variant (a few steps per stage, short prompts): the pipeline end to end in ~2 min.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKDIR=${WORKDIR:-runs/quickstart}
STAGE1="$WORKDIR/stage1_local"
TRAIN="$WORKDIR/train"
if [[ "${QUICK:-0}" == 1 ]]; then
  LOCAL=local_quick FOT=quick PASSKEY=(--passkey_tokens=512,1k --passkey_seeds=2 --contexts=2,4 --rd_queries=4
                                        --loss_length=512 --loss_docs=2)
else
  LOCAL=local FOT="" PASSKEY=()
fi
mkdir -p "$WORKDIR"

if [[ "${SKIP_INSTALL:-0}" != 1 ]]; then python -m pip install --quiet -e .; fi

echo "== stage 1: local pretraining (the passkey task and stdlib text within a 128-token context; no memory)"
python -m fot_jax.train --config="configs/experiments/tiny_fot.py:$LOCAL" --workdir="$STAGE1"

echo "== stage 2: FoT fine-tuning from stage 1 (k=4 chunks of 128 tokens: earlier chunks + other documents)"
python -m fot_jax.train --config="configs/experiments/tiny_fot.py:$FOT" --workdir="$TRAIN" --config.init_from="$STAGE1"

if [[ -e "$WORKDIR/summary.json" ]]; then
  echo "== summary: $WORKDIR/summary.json exists, kept"
  python -c "import json,sys; from fot_jax.eval import summary; print(summary.table(json.load(open(sys.argv[1]))))" \
    "$WORKDIR/summary.json"
else
  echo "== summary: memory on vs off (and stage 1) far beyond the training context"
  python -m fot_jax.evaluate summary --checkpoint="$TRAIN" --baseline="$STAGE1" --out="$WORKDIR/summary.json" \
    "${PASSKEY[@]}"
fi

if [[ -e "$WORKDIR/hf/config.json" ]]; then
  echo "== export: $WORKDIR/hf exists, kept"
else
  echo "== export to Hugging Face (LLaMA weights + LongLLaMA config and modeling file)"
  python -m fot_jax.export --workdir="$TRAIN" --out="$WORKDIR/hf"
fi
echo "checkpoints: $STAGE1, $TRAIN; table: $WORKDIR/summary.json (figure summary.png); export: $WORKDIR/hf"
