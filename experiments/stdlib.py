"""Claims (a), (c), (d) from scratch on stdlib code: the baseline, d1 and negatives mixes trained from scratch;
r_d of each, multi-doc loss of d1 and negatives, single-doc loss of negatives with memory on and off.
docs/RESULTS.md sections (a), (c), (d).
  fot-launch experiment --manifest=experiments/stdlib.py --runs=runs/reproduce
"""

CONFIG = "configs/experiments/distraction_stdlib_fot.py"
SINGLE = "perplexity --mode=single --max_length=4k --num_docs=8"

RUNS = [f"stdlib_{v}={CONFIG}:{v}" for v in ("baseline", "d1", "negatives")]
EVALS = [
    "*=distraction --context_length=64",
    "stdlib_[dn]*:ppl_multi=perplexity --mode=multi --target_length=1k --distractor_length=1k "
    "--distractors=0,1,2,4,8 --num_docs=4",
    f"stdlib_negatives:ppl_single={SINGLE}",
    f"stdlib_negatives:ppl_single_nomem={SINGLE} --mem_layers=",
]
