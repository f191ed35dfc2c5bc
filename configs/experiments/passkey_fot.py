"""Experiment (b) of docs/RESULTS.md: passkey retrieval from memory far beyond the training context.

Training data: half the tokens are Landmark/LongLLaMA passkey prompts (plus answer) of U[128, 512] tokens, the
other half stdlib segments of 128 tokens repeated 4 times ('repeat:stdlib:128x4'), loss on every token. The
repeats are meant to teach copying through memory (every repeat is exactly one chunk back, out of local reach):
passkey prompts alone carry ~5 memory-copyable tokens per document. Local context 128 and k=4 chunks per
document stream, so the total differentiable context is 4 x 128 = 512 tokens; each chunk sees the previous
chunks of its own stream (FoT positives) and, in the default variant, 2 chunks of other streams (negatives;
they hold other documents' filler and passkeys).
At evaluation the whole prompt (up to 32k-256k tokens) goes through memory inference with W = 128:
  python -m fot_jax.train --config=configs/experiments/passkey_fot.py --workdir=DIR
  python -m fot_jax.evaluate passkey --checkpoint=DIR --lengths=1k,4k,16k,32k --out=...
  (and the same with --mem_layers= for the memory-disabled model)
Variants: '' (positives + 2 negatives), 'positives' (no negatives), 'quick' (30 steps, for smoke tests).
Result at 2000 steps (RESULTS.md, round 3): 0% passkey accuracy even at 512 tokens; not reproduced.
"""

from configs import base

MIXES = {"": "0:0,1:2,2:2,3:2", "positives": "0:0,1:0,2:0,3:0", "quick": "0:0,1:2,2:2,3:2"}


def get_config(variant: str = ""):
  if variant not in MIXES:
    raise ValueError(f"passkey_fot: unknown variant {variant!r}; known: {sorted(MIXES)}")
  c = base.cpu_experiment_config(num_steps=2000, learning_rate=2e-3, warmup_steps=50, weight_decay=0.01,
                                 checkpoint_every=500)
  c.model = base.model_config("tiny", vocab_size=2000, hidden_size=128, num_heads=4, num_kv_heads=2, num_layers=4,
                              intermediate_size=344, mem_layers=(1, 2, 3), max_position_embeddings=128,
                              last_context_length=128, initializer_range=0.05)
  c.fot.k = 4
  c.fot.plan = "mix"
  c.fot.mix = MIXES[variant]
  c.data.task = "passkey:128-512@1+repeat:stdlib:128x4@1"
  c.data.vocab = "stdlib_sp2000"
  c.data.batch_size = 16
  c.data.seq_len = 128
  if variant == "quick":
    c.num_steps = 30
    c.checkpoint.every_steps = 30
  return c
