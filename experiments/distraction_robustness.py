"""Claim (a), robustness of the fine-tuning recipe on random-symbol repeats: seeds 1 and 2 at 3000 + 3000
steps, and seed 0 at a CPU-sized budget (1500 + 1000 steps), each evaluated for r_d. docs/RESULTS.md section
(a); published results in experiments/distraction_robustness/.
  fot-launch experiment --manifest=experiments/distraction_robustness.py --runs=runs/robustness --parallel=12
"""

CONFIG = "configs/experiments/distraction_fot.py"
KEEP = "--config.checkpoint.keep=1"
R_D = "distraction --corpus=repeat:random:64:32x4 --context_length=32"

RUNS = []
for s in (1, 2):
  flags = f"--config.num_steps=3000 --config.seed={s} {KEEP}"
  RUNS += [f"pre_s{s}={CONFIG}:pretrain_local {flags}",
           f"ft_d1_s{s}<pre_s{s}={CONFIG}:d1 {flags}",
           f"ft_negatives_s{s}<pre_s{s}={CONFIG}:negatives_from_start {flags}",
           f"ft_negatives_curriculum_s{s}<pre_s{s}={CONFIG}:negatives {flags} --config.fot.switch_step=1000",
           f"ft_baseline_s{s}<pre_s{s}={CONFIG}:baseline {flags}"]
RUNS += [f"pre_short={CONFIG}:pretrain_local --config.num_steps=1500 {KEEP}",
         f"short_d1<pre_short={CONFIG}:d1 --config.num_steps=1000 {KEEP}",
         f"short_negatives_curriculum<pre_short={CONFIG}:negatives --config.num_steps=1000 "
         f"--config.fot.switch_step=300 {KEEP}",
         f"short_baseline<pre_short={CONFIG}:baseline --config.num_steps=1000 {KEEP}"]
EVALS = [f"*_s[12]={R_D}", f"*short*={R_D}"]
