"""Claims (a), (c), (d) on held-out Python code: a memory layer taught to copy code, d = 1 vs negatives.

Per seed: local pretraining, then d1 and negatives fine-tuned from it; r_d of each (a), multi-doc loss against
distractor documents in memory (c), single-doc loss beyond the local context with memory on and off (d). The
report (fot_jax.eval.claims_report) prints one table row per seed and draws {runs}/claims.png.
docs/RESULTS.md sections (a), (c), (d); published results docs/figures/code/.
  SEEDS=0,1,2 fot-launch experiment --manifest=experiments/code.py --runs=runs/code --parallel=2
"""

import os

CONFIG = "configs/experiments/code_fot.py"
SEEDS = [int(s) for s in os.environ.get("SEEDS", "0").replace(",", " ").split()]
FINE_TUNED = "code_s*_[dn]*"  # the d1 and negatives runs of every seed
SINGLE = "perplexity --mode=single --max_length=4k --num_docs=16"

RUNS = []
for seed in SEEDS:
  RUNS += [f"code_s{seed}_local={CONFIG}:local --config.seed={seed}"]
  RUNS += [f"code_s{seed}_{v}<code_s{seed}_local={CONFIG}:{v} --config.seed={seed}" for v in ("d1", "negatives")]
EVALS = [
    "*=distraction --context_length=64",
    "*_local:ppl_single=" + SINGLE,
    f"{FINE_TUNED}:ppl_multi=perplexity --mode=multi --target_length=1k --distractor_length=1k "
    "--distractors=0,1,2,4,8 --num_docs=16",
    f"{FINE_TUNED}:ppl_single_off={SINGLE} --no_memory",
    f"{FINE_TUNED}:ppl_single={SINGLE} --compare=memory-off={{runs}}/{{name}}.ppl_single_off.json "
    "--figure={runs}/{name}.ppl_single.png",
]
REPORTS = [f"fot_jax.eval.claims_report --results={{runs}} --seeds={','.join(map(str, SEEDS))} "
           "--figure={runs}/claims.png"]
