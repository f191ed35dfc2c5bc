"""Instruction tuning with FoT on chat/instruction JSONL: loss on the answers only (fot_jax.data.instruct).

By default it reads the toy sample shipped in fot_jax/data/samples/ (word reversal, sums, and lookups in a list
of key-value pairs given earlier in the prompt); point data.task at your own files with
--config.data.task='instruct:/path/{split}/*.jsonl'. Examples are packed into document streams of k = 2 chunks
like any document, so a chunk's memory layer also attends to the earlier chunk of its stream.
  ''     the tiny model of tiny_fot.py, 300 steps; start from a trained checkpoint with --config.init_from=DIR
  quick  the same in a few steps (tests)
Run: python -m fot_jax.train --config=configs/experiments/instruct_fot.py --workdir=/tmp/instruct \
       --config.init_from=/tmp/tiny_fot
"""

import os

import fot_jax
from fot_jax.configs import base

VARIANTS = ("", "quick")
# Found through the package, so it resolves the same in a source checkout and an installed wheel.
SAMPLE = os.path.join(os.path.dirname(fot_jax.__file__), "data", "samples", "instruct_{split}.jsonl")


def get_config(variant: str = ""):
  if variant not in VARIANTS:
    raise ValueError(f"instruct_fot: unknown variant {variant!r}; known: {list(VARIANTS)}")
  quick = variant == "quick"
  c = base.cpu_experiment_config(num_steps=6 if quick else 300, learning_rate=1e-3, warmup_steps=2 if quick else 30,
                                 weight_decay=0.0, checkpoint_every=3 if quick else 100)
  c.model = base.model_config("tiny", vocab_size=2000, hidden_size=128, num_heads=4, num_kv_heads=4, num_layers=4,
                              intermediate_size=256, mem_layers=(2,), mem_positionals="none",
                              max_position_embeddings=128, last_context_length=128, initializer_range=0.05)
  c.fot.plan = "mix"
  c.fot.k, c.fot.mix = 2, "0:0,1:0"
  c.data.task = "instruct:" + os.path.normpath(SAMPLE)
  c.data.vocab = "stdlib_sp2000"
  c.data.batch_size = 16
  c.data.seq_len = 128
  c.optim.schedule = "constant"
  c.eval.every_steps = 0 if quick else 100
  c.eval.batch_size = 8
  c.eval.k = 2
  return c
