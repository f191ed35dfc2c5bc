"""Experiment (b) of docs/RESULTS.md: extrapolation of memory far beyond the training context.

Dictionary lookup (the paper's synthetic task; 512-token documents: definitions, then queries) with local context 128 and
k=4 chunks per document stream, so the total differentiable context is 4 x 128 = 512 tokens; crossbatch
d switches from 2 to 6 (negatives from other streams). At evaluation the definitions of many dictionaries are
put in memory (up to 32k+ tokens) before the queries:
  python -m fot_jax.train --config=configs/experiments/dict_lookup_fot.py --workdir=DIR
  python -m fot_jax.evaluate dict_lookup --checkpoint=DIR --memory_tokens=256,1k,4k,16k,32k --out=...
  (and the same with --mem_layers='' for the memory-disabled model)
Variants: ':quick' (30 steps, for smoke tests); ':pretrain_local' (128-token dictionaries, definitions and
queries in one local context, no additional contexts: learns the lookup locally, to start the default from with
--config.init_from=DIR, as FoT fine-tunes a pretrained model); ':mem123' (memory layers 1-3 instead of 2).
"""

from fot_jax.configs import base


def get_config(variant: str = ""):
  c = base.cpu_experiment_config(num_steps=800, learning_rate=2e-3, warmup_steps=50, weight_decay=0.01,
                                 checkpoint_every=200)
  c.model = base.model_config("tiny", vocab_size=128, hidden_size=128, num_heads=4, num_kv_heads=2, num_layers=4,
                              intermediate_size=344, mem_layers=(2,), max_position_embeddings=128,
                              last_context_length=128, initializer_range=0.05)
  c.fot.k = 4
  c.fot.plan = "released"
  c.fot.stepping = True
  c.fot.d_schedule = "switch"
  c.fot.d = 2
  c.fot.d_after = 6
  c.fot.switch_step = 200
  c.data.task = "dict_lookup"
  c.data.vocab = "ids:128"  # dict_lookup documents are ids already
  c.data.batch_size = 16
  c.data.seq_len = 128
  if variant == "quick":
    c.num_steps = 30
    c.fot.switch_step = 10
    c.checkpoint.every_steps = 30
  elif variant == "pretrain_local":
    c.data.task = "dict_lookup:128"
    c.fot.d_schedule, c.fot.d = "fixed", 0
  elif variant == "mem123":
    c.model.mem_layers = (1, 2, 3)
  elif variant:
    raise ValueError(f"dict_lookup_fot: unknown variant {variant!r}; known: '', 'quick', 'pretrain_local', "
                     f"'mem123'")
  return c
