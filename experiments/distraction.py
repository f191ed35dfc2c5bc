"""Claim (a) on random-symbol repeats, fine-tuned from a local model: r_d of the baseline, d = 1 and negatives.

Local pretraining (its own r_d too), then the d1, negatives and baseline mixes fine-tuned from it, each evaluated
for r_d; one figure of all three ({runs}/dist_ft_baseline.png). docs/RESULTS.md section (a).
  fot-launch experiment --manifest=experiments/distraction.py --runs=runs/reproduce
"""

CONFIG = "configs/experiments/distraction_fot.py"
R_D = "distraction --corpus=repeat:random:64:32x4 --context_length=32"
VARIANTS = ("d1", "negatives", "baseline")

RUNS = [f"dist_pretrain_local={CONFIG}:pretrain_local"]
RUNS += [f"dist_ft_{v}<dist_pretrain_local={CONFIG}:ft_{v}" for v in VARIANTS]
EVALS = [
    f"dist_pretrain_local={R_D}",
    f"dist_ft_[dn]*={R_D}",
    f"dist_ft_baseline={R_D} --figure={{runs}}/dist_ft_baseline.png "
    "--compare=d1={runs}/dist_ft_d1.distraction.json --compare=negatives={runs}/dist_ft_negatives.distraction.json",
]
