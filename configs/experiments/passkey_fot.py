"""Passkey retrieval far beyond the training context: a tiny model FoT-tuned at local context 128, k = 4.

FoT fine-tunes a model that already does its task locally. Two stages:
  :pretrain_local  the authors' passkey prompts (synthetic.landmark_prompt, training seeds only) with 1-60 filler
                   characters (~95-125 tokens), one prompt per 128-token row (data.align_documents): the key line
                   is always in the local context; no additional contexts
  :ft              from pretrain_local (--config.init_from=DIR): prompts with 200-900 filler characters
                   (~195-520 tokens), each starting a stream of k = 4 chunks of 128, so the key line is usually out
                   of local reach; each chunk sees the earlier chunks of its own prompt (total differentiable
                   context 4 x 128 = 512 tokens); loss on the answer tokens only
  :ft_negatives    :ft, plus 3 chunks of other prompts as negatives
The memory layer (layer 2 of 4) has no positional encoding (mem_positionals="none", the paper's small models):
it finds the key by content alone, locally and in memory, so what stage 1 learns locally transfers. With RoPE
in the memory layer ("first") the same recipe learned far more slowly (docs/RESULTS.md).
Evaluation prompts use the authors' seeds 0, 1, ...; training prompts use seeds from 2e9 on.
Run: bash scripts/reproduce.sh passkey, or by hand:
     python -m fot_jax.train --config=configs/experiments/passkey_fot.py:pretrain_local --workdir=PRE
     python -m fot_jax.train --config=configs/experiments/passkey_fot.py:ft --workdir=FT --config.init_from=PRE
     python -m fot_jax.evaluate passkey --checkpoint=FT --tokens=32k,128k --out=...
"""

from fot_jax.configs import base

VARIANTS = ("pretrain_local", "ft", "ft_negatives")


def get_config(variant: str = "ft"):
  if variant not in VARIANTS:
    raise ValueError(f"passkey_fot: unknown variant {variant!r}; known: {list(VARIANTS)}")
  local = variant == "pretrain_local"
  c = base.cpu_experiment_config(num_steps=600, learning_rate=3e-3 if local else 1e-3, warmup_steps=30,
                                 weight_decay=0.0, checkpoint_every=200)
  c.model = base.model_config("tiny", vocab_size=2000, hidden_size=128, num_heads=4, num_kv_heads=4, num_layers=4,
                              intermediate_size=256, mem_layers=(2,), mem_positionals="none",
                              max_position_embeddings=128, last_context_length=128, initializer_range=0.05)
  c.fot.plan = "mix"
  if local:
    c.fot.k, c.fot.mix, c.data.task = 1, "0:0", "landmark:1-60"
  else:
    c.fot.k = 4
    c.fot.mix = "0:0,1:3,2:3,3:3" if variant == "ft_negatives" else "0:0,1:0,2:0,3:0"
    c.data.task = "landmark_answers:200-900"
  c.data.align_documents = True
  c.data.vocab = "stdlib_sp2000"
  c.data.batch_size = 32
  c.data.seq_len = 128
  c.optim.schedule = "constant"
  return c
