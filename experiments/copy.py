"""Claim (b) on random-symbol repeats: copying a needle from up to 16k tokens back, after the distraction
fine-tuning (its runs are shared: use the same --runs folder as experiments/distraction.py) and a wider-window
negatives run; memory off as the floor. Figure: {runs}/dist_ft_negatives_wide.png. docs/RESULTS.md section (b).
  fot-launch experiment --manifest=experiments/copy.py --runs=runs/reproduce
"""

CONFIG = "configs/experiments/distraction_fot.py"
COPY = "copy_distance --distances=0,256,1k,4k,16k --num_docs=8"

RUNS = [f"dist_pretrain_local={CONFIG}:pretrain_local"]
RUNS += [f"dist_ft_{v}<dist_pretrain_local={CONFIG}:ft_{v}" for v in ("d1", "negatives", "negatives_wide")]
EVALS = [
    f"dist_ft_negatives:copy_nomem={COPY} --mem_layers=",
    f"dist_ft_d1:copy={COPY}",
    f"dist_ft_negatives:copy={COPY}",
    f"dist_ft_negatives_wide:copy={COPY} --figure={{runs}}/dist_ft_negatives_wide.png "
    "--compare=d1={runs}/dist_ft_d1.copy.json --compare=negatives={runs}/dist_ft_negatives.copy.json "
    "--compare=no-memory={runs}/dist_ft_negatives.copy_nomem.json",
]
