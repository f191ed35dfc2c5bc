"""LongLLaMA-7B-style FoT fine-tuning with the paper's 7B crossbatch mix: not run here, must validate.

k=4 chunks of 2048 tokens per stream with the per-position (positives, negatives) mix
1/4 (0,0), 1/4 (1,2), 1/4 (2,5), 1/4 (3,4) (so d = 7), memory layers [8, 16, 24] of 32, constant lr 2e-5,
weight decay 0.01, bf16 compute with float32 params, full remat, FSDP. Set init_from and data.vocab.
"""

from configs import base


def get_config(variant: str = ""):
  c = base.get_config()
  c.num_steps = 10_000
  c.init_from = ""
  c.model = base.model_config("longllama_7b", dtype="bfloat16", param_dtype="float32",
                              attention_impl="chunked", attention_chunk_size=512)
  c.fot.k = 4
  c.fot.plan = "mix"
  c.fot.mix = "0:0,1:2,2:5,3:4"
  c.data.task = "mixture:longllama"
  c.data.vocab = "tokenizer.model"
  c.data.batch_size = 128
  c.data.seq_len = 2048
  c.data.micro_batches = 1  # raise on small slices (gradient accumulation)
  c.optim.optimizer = "adamw"
  c.optim.learning_rate = 2e-5
  c.optim.schedule = "constant"
  c.optim.warmup_steps = 100
  c.optim.weight_decay = 0.01
  c.mesh.shape = (1, -1, 1)
  c.mesh.remat = "full"
  c.checkpoint.every_steps = 500
  c.checkpoint.keep = 2
  c.eval.every_steps = 500
  c.eval.num_batches = 8
  c.eval.batch_size = 64
  c.eval.k = 4
  c.eval.d = 3
  if variant:
    raise ValueError(f"longllama_7b_fot: unknown variant {variant!r}")
  return c
