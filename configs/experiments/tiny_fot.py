"""The embedded default: a tiny FoT model trained on the CPython stdlib corpus on a 2-core CPU in minutes.

~0.8M parameters, one memory layer, k=4 packing (4 consecutive 64-token chunks of a document per stream),
crossbatch d switching from 2 to 6 at step 150 (the paper's small-to-large d schedule), a SentencePiece
vocabulary trained on the corpus, eval loss on the validation split.
Run: python -m fot_jax.train --config=configs/experiments/tiny_fot.py --workdir=/tmp/tiny_fot
Variants: `:quick` (40 steps, for tests) .
"""

from configs import base


def get_config(variant: str = ""):
  c = base.get_config()
  c.num_steps = 300
  c.model = base.model_config("tiny", vocab_size=2000, hidden_size=96, num_heads=4, num_kv_heads=2, num_layers=4,
                              intermediate_size=256, mem_layers=(2,), max_position_embeddings=256,
                              last_context_length=64, initializer_range=0.05)
  c.fot.k = 4
  c.fot.plan = "released"
  c.fot.stepping = True
  c.fot.d_schedule = "switch"
  c.fot.d = 2
  c.fot.d_after = 6
  c.fot.switch_step = 150

  c.data.task = "stdlib"
  c.data.vocab = "stdlib_sp2000"
  c.data.batch_size = 16
  c.data.seq_len = 64
  c.data.micro_batches = 1

  c.optim.optimizer = "adamw"
  c.optim.learning_rate = 3e-3
  c.optim.schedule = "cosine"
  c.optim.warmup_steps = 20
  c.optim.weight_decay = 0.01

  c.mesh.shape = (1, -1, 1)
  c.checkpoint.every_steps = 100
  c.log.every_steps = 10
  c.eval.every_steps = 100
  c.eval.num_batches = 2
  c.eval.batch_size = 8
  c.eval.k = 4
  c.eval.d = 3

  if variant == "quick":
    c.num_steps = 40
    c.fot.switch_step = 20
    c.checkpoint.every_steps = 20
    c.eval.every_steps = 20
    c.eval.num_batches = 1
  elif variant:
    raise ValueError(f"tiny_fot: unknown variant {variant!r}; known: '', 'quick'")
  return c
