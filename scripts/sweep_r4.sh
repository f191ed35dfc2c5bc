#!/usr/bin/env bash
# Round-4 sweeps of docs/RESULTS.md, run in parallel under one deadline by launch.experiment, each run evaluated:
#   distraction  (a): distraction_fot mixes from scratch (20k steps) and fine-tuned from a locally pretrained model
#   robustness   (a): the fine-tuned recipe with seeds 1 and 2, and at a CPU-sized budget (1500 + 1000 steps)
#   seeds        (a): the CPU-sized recipe with seeds 1-3, and with a longer (4000-step) pretraining for seeds 1-2
#   dict         (b): dict_lookup fine-tuned from a local pretraining, one or three memory layers, vs from scratch
# Sized for a 16-core GPU host (the device runs in RESULTS.md took 3-8 minutes); on the 2-core CPU use
# PARALLEL=2 and no deadline, or expect far fewer steps.
#   RUNS=runs/sweep_r4 PARALLEL=12 DEADLINE_S=240 bash scripts/sweep_r4.sh robustness dict
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs/sweep_r4}
DIST=configs/experiments/distraction_fot.py
DICT=configs/experiments/dict_lookup_fot.py
K="--config.checkpoint.keep=1"
args=()
for mode in "$@"; do
  case "$mode" in
    distraction)
      args+=(--run="pre=$DIST:pretrain_local --config.num_steps=3000 $K"
             --run="ft_d1<pre=$DIST:d1 --config.num_steps=3000 $K"
             --run="ft_negatives<pre=$DIST:negatives_from_start --config.num_steps=3000 $K"
             --run="ft_baseline<pre=$DIST:baseline --config.num_steps=3000 $K"
             --run="ft_negatives_curriculum<pre=$DIST:negatives --config.num_steps=3000 --config.fot.switch_step=1000 $K")
      for v in d1 negatives negatives_from_start baseline; do
        args+=(--run="scratch_$v=$DIST:$v --config.num_steps=20000 $K")
      done
      args+=(--eval="*=distraction --corpus=repeat:random:64:32x4 --context_length=32") ;;
    robustness)
      for s in 1 2; do
        args+=(--run="pre_s$s=$DIST:pretrain_local --config.num_steps=3000 --config.seed=$s $K"
               --run="ft_d1_s$s<pre_s$s=$DIST:d1 --config.num_steps=3000 --config.seed=$s $K"
               --run="ft_negatives_s$s<pre_s$s=$DIST:negatives_from_start --config.num_steps=3000 --config.seed=$s $K"
               --run="ft_negatives_curriculum_s$s<pre_s$s=$DIST:negatives --config.num_steps=3000 --config.seed=$s --config.fot.switch_step=1000 $K"
               --run="ft_baseline_s$s<pre_s$s=$DIST:baseline --config.num_steps=3000 --config.seed=$s $K")
      done
      args+=(--run="pre_short=$DIST:pretrain_local --config.num_steps=1500 $K"
             --run="short_d1<pre_short=$DIST:d1 --config.num_steps=1000 $K"
             --run="short_negatives_curriculum<pre_short=$DIST:negatives --config.num_steps=1000 --config.fot.switch_step=300 $K"
             --run="short_baseline<pre_short=$DIST:baseline --config.num_steps=1000 $K"
             --eval="*_s[12]=distraction --corpus=repeat:random:64:32x4 --context_length=32"
             --eval="*short*=distraction --corpus=repeat:random:64:32x4 --context_length=32") ;;
    seeds)
      for s in 1 2 3; do
        args+=(--run="pre_short_s$s=$DIST:pretrain_local --config.num_steps=1500 --config.seed=$s $K"
               --run="short_d1_s$s<pre_short_s$s=$DIST:d1 --config.num_steps=1000 --config.seed=$s $K"
               --run="short_negatives_curriculum_s$s<pre_short_s$s=$DIST:negatives --config.num_steps=1000 --config.seed=$s --config.fot.switch_step=300 $K")
      done
      for s in 1 2; do
        args+=(--run="pre_long_s$s=$DIST:pretrain_local --config.num_steps=4000 --config.seed=$s $K"
               --run="long_d1_s$s<pre_long_s$s=$DIST:d1 --config.num_steps=1000 --config.seed=$s $K"
               --run="long_negatives_curriculum_s$s<pre_long_s$s=$DIST:negatives --config.num_steps=1000 --config.seed=$s --config.fot.switch_step=300 $K")
      done
      args+=(--eval="*=distraction --corpus=repeat:random:64:32x4 --context_length=32") ;;
    dict)
      args+=(--run="dl_pre=$DICT:pretrain_local --config.num_steps=3000 $K"
             --run="dl_ft<dl_pre=$DICT $K"
             --run="dl_ft_mem123<dl_pre=$DICT:mem123 $K"
             --run="dl_scratch_mem123=$DICT:mem123 $K"
             --eval="dl_*=dict_lookup --memory_tokens=256,1k,4k,16k,32k"
             --eval="dl_ft*:nomem=dict_lookup --memory_tokens=256,1k,4k,16k,32k --mem_layers="
             --eval="dl_ft*:long=dict_lookup --memory_tokens=64k,256k --num_docs=4") ;;
    *) echo "usage: bash scripts/sweep_r4.sh {distraction|robustness|seeds|dict}..." >&2; exit 2 ;;
  esac
done
[[ ${#args[@]} -gt 0 ]] || { echo "usage: bash scripts/sweep_r4.sh {distraction|robustness|seeds|dict}..." >&2; exit 2; }
python -m fot_jax.launch.experiment --runs="$RUNS" --parallel="${PARALLEL:-2}" --deadline_s="${DEADLINE_S:-0}" \
  --eval_timeout_s="${EVAL_TIMEOUT_S:-0}" "${args[@]}"
