"""LongLLaMA-3B: FoT fine-tuning of OpenLLaMA-3B (paper section 5 / appendix): not run here, must validate.

Local context 2048, k=4 (8k tokens of one document per stream), the released stepping mix with d=3 (per stream
1/4 (0,0), 1/4 (1,1), 1/4 (2,1), 1/4 (3,0) as (positives, negatives)), memory layers [6, 12, 18] of 26,
256K tokens per step (128 entries x 2048), constant lr 2e-5 after warmup, weight decay 0.01, bf16 compute with
float32 params, full remat, FSDP over the whole pod. Set config.init_from to a workdir written by
`python -m fot_jax.convert` (OpenLLaMA-3B) and data.vocab to its tokenizer.model.
"""

from fot_jax.configs import base


def get_config(variant: str = ""):
  c = base.get_config()
  c.num_steps = 10_000
  c.init_from = ""  # e.g. /ckpt/open_llama_3b (output of python -m fot_jax.convert)
  c.model = base.model_config("longllama_3b", dtype="bfloat16", param_dtype="float32",
                              attention_impl="chunked", attention_chunk_size=512)
  c.fot.k = 4
  c.fot.plan = "released"
  c.fot.stepping = True
  c.fot.d_schedule = "fixed"
  c.fot.d = 3
  c.data.task = "mixture:longllama"
  c.data.vocab = "tokenizer.model"  # OpenLLaMA's SentencePiece model (path, local or gs://)
  c.data.batch_size = 128
  c.data.seq_len = 2048
  c.data.micro_batches = 1  # on a slice with fewer than 64 chips, raise this (gradient accumulation)
  c.optim.optimizer = "adamw"
  c.optim.learning_rate = 2e-5
  c.optim.schedule = "constant"
  c.optim.warmup_steps = 100
  c.optim.weight_decay = 0.01
  c.optim.b2 = 0.95
  c.optim.grad_clip = 1.0
  c.mesh.shape = (1, -1, 1)
  c.mesh.remat = "full"
  c.checkpoint.every_steps = 500
  c.checkpoint.keep = 2
  c.log.every_steps = 10
  c.eval.every_steps = 500
  c.eval.num_batches = 8
  c.eval.batch_size = 64
  c.eval.k = 4
  c.eval.d = 3
  if variant:
    raise ValueError(f"longllama_3b_fot: unknown variant {variant!r}; known: only the default '' (no variant)")
  return c
