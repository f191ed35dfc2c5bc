"""Claim (a) on random-symbol repeats: distraction_fot's mixes from scratch (20k steps) and fine-tuned from a
locally pretrained model, each evaluated for r_d. Sized for a 16-core GPU host (3000 steps in 45-90 s per run);
on a 2-core CPU use --parallel=2 and no deadline. docs/RESULTS.md section (a); published results in
experiments/distraction_sweep/.
  fot-launch experiment --manifest=experiments/distraction_sweep.py --runs=runs/distraction --parallel=12
"""

CONFIG = "configs/experiments/distraction_fot.py"
KEEP = "--config.checkpoint.keep=1"
STEPS = f"--config.num_steps=3000 {KEEP}"

RUNS = [
    f"pre={CONFIG}:pretrain_local {STEPS}",
    f"ft_d1<pre={CONFIG}:d1 {STEPS}",
    f"ft_negatives<pre={CONFIG}:negatives_from_start {STEPS}",
    f"ft_baseline<pre={CONFIG}:baseline {STEPS}",
    f"ft_negatives_curriculum<pre={CONFIG}:negatives {STEPS} --config.fot.switch_step=1000",
] + [f"scratch_{v}={CONFIG}:{v} --config.num_steps=20000 {KEEP}"
     for v in ("d1", "negatives", "negatives_from_start", "baseline")]
EVALS = ["*=distraction --corpus=repeat:random:64:32x4 --context_length=32"]
