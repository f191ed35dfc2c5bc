"""Claim (a) on seeds 0, 1, 2 (SEEDS=0,1,2) on CPU: each seed's local pretraining is gated on its own focus.

A pretraining whose memory layer does not focus (r_d * d >= 1.3 at d = 8 and 64, fot_jax.eval.focus_gate) trains
again from seed + 1000 (at most ATTEMPTS times, MAX_ATTEMPTS=4); d1, negatives and baseline are fine-tuned from
the first one that passes, with the seed itself, and evaluated for r_d. docs/RESULTS.md section (a).
  SEEDS=0,1,2 fot-launch experiment --manifest=experiments/distraction_gated.py --runs=runs/reproduce
"""

import os

CONFIG = "configs/experiments/distraction_fot.py"
SEEDS = [int(s) for s in os.environ.get("SEEDS", "0,1,2").replace(",", " ").split()]
R_D = "distraction --corpus=repeat:random:64:32x4 --context_length=32"

RUNS, EVALS = [], ["dist_s*_pre=" + R_D, "dist_s*_ft_[dn]*=" + R_D]
for seed in SEEDS:
  pre = f"dist_s{seed}_pre"
  RUNS += [f"{pre}={CONFIG}:pretrain_local --config.seed={seed}"]
  RUNS += [f"dist_s{seed}_ft_{v}<{pre}={CONFIG}:ft_{v} --config.seed={seed}" for v in ("d1", "negatives", "baseline")]
  EVALS += [f"dist_s{seed}_ft_baseline={R_D} --figure={{runs}}/dist_s{seed}_ft_baseline.png "
            f"--compare=d1={{runs}}/dist_s{seed}_ft_d1.distraction.json "
            f"--compare=negatives={{runs}}/dist_s{seed}_ft_negatives.distraction.json"]
GATES = ["dist_s*_pre:distraction=--layer=1 --d=8,64 --min_focus=1.3"]
ATTEMPTS = int(os.environ.get("MAX_ATTEMPTS", "4"))
