"""Claim (b) on dictionary lookup: dict_lookup_fot fine-tuned from a local pretraining with one or three memory
layers, against three memory layers from scratch; accuracy by dictionary tokens in memory, with memory off, and
at 64k-256k tokens. docs/RESULTS.md section (b); published results in experiments/dict_lookup/.
  fot-launch experiment --manifest=experiments/dict_lookup.py --runs=runs/dict --parallel=4
"""

CONFIG = "configs/experiments/dict_lookup_fot.py"
KEEP = "--config.checkpoint.keep=1"
LOOKUP = "dict_lookup --memory_tokens=256,1k,4k,16k,32k"

RUNS = [
    f"dl_pre={CONFIG}:pretrain_local --config.num_steps=3000 {KEEP}",
    f"dl_ft<dl_pre={CONFIG} {KEEP}",
    f"dl_ft_mem123<dl_pre={CONFIG}:mem123 {KEEP}",
    f"dl_scratch_mem123={CONFIG}:mem123 {KEEP}",
]
EVALS = [
    f"dl_*={LOOKUP}",
    f"dl_ft*:nomem={LOOKUP} --mem_layers=",
    "dl_ft*:long=dict_lookup --memory_tokens=64k,256k --num_docs=4",
]
