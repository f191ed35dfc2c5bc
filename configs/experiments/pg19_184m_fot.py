"""The paper's small-model setup: a ~184M-class decoder trained from scratch with FoT on PG-19 (not run here).

Paper (section 5 / appendix, small models): 12 layers, one memory layer (index 8), no positional encoding in
the memory layer, local context 512, crossbatch training. The exact hidden/FFN sizes and d are our reading of
the paper: hidden 1024, 8 heads, SwiGLU FFN 2816, 32k vocabulary; with our untied LM head this is ~220M
parameters (184M with tied embeddings). The d schedule follows the paper's small-to-large switch (d=8, then 64).
PG-19 must be prepared by the user as a TFDS dataset in the data dir (we never download); see docs/DATA.md.
Run on a pod: python -m fot_jax.train --config=configs/experiments/pg19_184m_fot.py --workdir=gs://...
"""

from fot_jax.configs import base


def get_config(variant: str = ""):
  c = base.get_config()
  c.num_steps = 100_000
  c.model = base.model_config(None, vocab_size=32000, hidden_size=1024, num_heads=8, num_layers=12,
                              intermediate_size=2816, mem_layers=(8,), mem_positionals="none",
                              max_position_embeddings=512, last_context_length=512, mem_dtype="bfloat16",
                              dtype="bfloat16", param_dtype="float32", attention_impl="chunked",
                              attention_chunk_size=512)
  c.fot.k = 1
  c.fot.plan = "released"
  c.fot.stepping = False
  c.fot.d_schedule = "switch"
  c.fot.d = 8
  c.fot.d_after = 64
  c.fot.switch_step = 50_000
  c.data.task = "pg19"
  c.data.vocab = "tokenizer.model"  # a 32k SentencePiece model (path, local or gs://)
  c.data.batch_size = 128
  c.data.seq_len = 512
  c.data.micro_batches = 1
  c.optim.optimizer = "adamw"
  c.optim.learning_rate = 3e-4
  c.optim.schedule = "cosine"
  c.optim.warmup_steps = 1000
  c.optim.weight_decay = 0.01
  c.mesh.shape = (1, -1, 1)
  c.mesh.remat = "dots_no_batch"
  c.checkpoint.every_steps = 1000
  c.eval.every_steps = 2000
  c.eval.batch_size = 128
  c.eval.k = 1
  c.eval.d = 64
  if variant:
    raise ValueError(f"pg19_184m_fot: unknown variant {variant!r}; known: only the default '' (no variant)")
  return c
