"""Claim (a) on random-symbol repeats trained from scratch: the d1, negatives and baseline mixes (no memory use is
learned at this budget), r_d of each and one figure ({runs}/dist_baseline.png). docs/RESULTS.md section (a).
  fot-launch experiment --manifest=experiments/distraction_scratch.py --runs=runs/reproduce
"""

CONFIG = "configs/experiments/distraction_fot.py"
R_D = "distraction --corpus=repeat:random:64:32x4 --context_length=32"

RUNS = [f"dist_{v}={CONFIG}:{v}" for v in ("d1", "negatives", "baseline")]
EVALS = [
    f"dist_[dn]*={R_D}",
    f"dist_baseline={R_D} --figure={{runs}}/dist_baseline.png "
    "--compare=d1={runs}/dist_d1.distraction.json --compare=negatives={runs}/dist_negatives.distraction.json",
]
