"""Claim (a), seed dependence of the CPU-sized recipe on random-symbol repeats: seeds 1-3 with 1500 pretraining
steps, seeds 1-2 with 4000, each fine-tuned 1000 steps (d1 and the negatives curriculum) and evaluated for r_d.
docs/RESULTS.md section (a); published results in experiments/distraction_seeds/.
  fot-launch experiment --manifest=experiments/distraction_seeds.py --runs=runs/seeds --parallel=12
"""

CONFIG = "configs/experiments/distraction_fot.py"
KEEP = "--config.checkpoint.keep=1"

RUNS = []
for length, pre_steps, seeds in (("short", 1500, (1, 2, 3)), ("long", 4000, (1, 2))):
  for s in seeds:
    flags = f"--config.seed={s} {KEEP}"
    pre = f"pre_{length}_s{s}"
    RUNS += [f"{pre}={CONFIG}:pretrain_local --config.num_steps={pre_steps} {flags}",
             f"{length}_d1_s{s}<{pre}={CONFIG}:d1 --config.num_steps=1000 {flags}",
             f"{length}_negatives_curriculum_s{s}<{pre}={CONFIG}:negatives --config.num_steps=1000 {flags} "
             "--config.fot.switch_step=300"]
EVALS = ["*=distraction --corpus=repeat:random:64:32x4 --context_length=32"]
