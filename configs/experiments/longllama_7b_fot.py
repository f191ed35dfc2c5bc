"""LongLLaMA-7B-style FoT fine-tuning with the paper's 7B crossbatch mix: not run here, must validate.

The 3B recipe (configs/experiments/longllama_3b_fot.py: k=4 chunks of 2048 tokens per stream, 256K tokens per
step, constant lr 2e-5, weight decay 0.01, bf16 compute with float32 params, full remat, FSDP) on LLaMA-7B,
memory layers [8, 16, 24] of 32, with the per-position (positives, negatives) mix
1/4 (0,0), 1/4 (1,2), 1/4 (2,5), 1/4 (3,4) (so d = 7). Set init_from and data.vocab.
"""

from fot_jax.configs import base
from fot_jax.configs.experiments import longllama_3b_fot


def get_config(variant: str = ""):
  if variant:
    raise ValueError(f"longllama_7b_fot: unknown variant {variant!r}; known: only the default '' (no variant)")
  c = longllama_3b_fot.get_config()
  c.model = base.model_config("longllama_7b", dtype="bfloat16", param_dtype="float32",
                              attention_impl="chunked", attention_chunk_size=512)
  c.fot.plan = "mix"
  c.fot.mix = "0:0,1:2,2:5,3:4"
  return c
