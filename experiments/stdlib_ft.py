"""Claims (a), (c), (d) with the fine-tuning recipe on stdlib code: a local pretraining, d1 and negatives
fine-tuned from it; r_d, multi-doc loss against distractors in memory, single-doc loss with memory on and off
(figure {runs}/stdlib_ft_negatives.png). docs/RESULTS.md sections (a), (c), (d).
  fot-launch experiment --manifest=experiments/stdlib_ft.py --runs=runs/reproduce
"""

CONFIG = "configs/experiments/distraction_stdlib_fot.py"
SINGLE = "perplexity --mode=single --max_length=4k --num_docs=8"

RUNS = [f"stdlib_pretrain_local={CONFIG}:pretrain_local"]
RUNS += [f"stdlib_ft_{v}<stdlib_pretrain_local={CONFIG}:ft_{v}" for v in ("d1", "negatives")]
EVALS = [
    "stdlib_ft_*=distraction --context_length=64",
    "stdlib_ft_*:ppl_multi=perplexity --mode=multi --target_length=1k --distractor_length=1k "
    "--distractors=0,1,2,4,8 --num_docs=4",
    f"stdlib_ft_negatives:ppl_single_nomem={SINGLE} --mem_layers=",
    f"stdlib_ft_negatives:ppl_single={SINGLE} --compare=no-memory={{runs}}/stdlib_ft_negatives.ppl_single_nomem.json "
    "--figure={runs}/stdlib_ft_negatives.png",
]
