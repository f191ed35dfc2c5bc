"""Experiments (a), (c), (d) of docs/RESULTS.md, from scratch: the three training variants on stdlib code.

Three runs with the same model, data and budget (300 steps x 16 entries x 64 tokens on the stdlib corpus),
differing only in what the memory layer sees during training (mix plan, k=2: chunk 1 of each document stream
follows chunk 0):
  :baseline   "0:0,0:0"  no additional context (a standard transformer at local context 64)
  :d1         "0:0,1:0"  chunk 1 sees its own previous chunk only (FoT d=1, no negatives)
  :negatives  "0:0,1:7"  chunk 1 sees its previous chunk and 7 chunks of other documents (FoT d=8)
Run: python -m fot_jax.train --config=configs/experiments/distraction_stdlib_fot.py:negatives --workdir=DIR
then: python -m fot_jax.evaluate distraction --checkpoint=DIR --context_length=64 --out=DIR/distraction.json

Fine-tuning variants (the random-symbol recipe of claim (a), carried to code for (c) and (d)): memory
layers 1-3, k = 4, a constant learning rate,
  :pretrain_local  1500 steps without additional contexts
  :ft_baseline, :ft_d1, :ft_negatives  1000 steps from it (--config.init_from=DIR): no additional contexts /
                   the previous chunk / the previous chunk, then (from step 300) also 7 chunks of other streams
(bash scripts/reproduce.sh stdlib_ft).
"""

from fot_jax.configs import base

MIXES = {"baseline": "0:0,0:0", "d1": "0:0,1:0", "negatives": "0:0,1:7"}
FINETUNE_MIXES = {"pretrain_local": "0:0,0:0,0:0,0:0", "ft_baseline": "0:0,0:0,0:0,0:0",
                "ft_d1": "0:0,1:0,1:0,1:0", "ft_negatives": "0:0,1:0,1:0,1:0"}
FINETUNE_NEGATIVES_MIX, FINETUNE_SWITCH_STEP = "0:0,1:7,1:7,1:7", 300
FINETUNE_PRETRAIN_STEPS, FINETUNE_FT_STEPS = 1500, 1000


def get_config(variant: str = "negatives"):
  if variant not in MIXES and variant not in FINETUNE_MIXES:
    raise ValueError(f"distraction_stdlib_fot: unknown variant {variant!r}; known: "
                     f"{sorted(MIXES) + sorted(FINETUNE_MIXES)}")
  c = base.cpu_experiment_config(num_steps=300, learning_rate=3e-3, warmup_steps=20, weight_decay=0.01,
                                 checkpoint_every=300)
  c.model = base.model_config("tiny", vocab_size=2000, hidden_size=96, num_heads=4, num_kv_heads=2, num_layers=4,
                              intermediate_size=256, mem_layers=(2,), max_position_embeddings=64,
                              last_context_length=64, initializer_range=0.05)
  finetune = variant in FINETUNE_MIXES
  c.fot.k = 4 if finetune else 2
  c.fot.plan = "mix"
  c.fot.mix = FINETUNE_MIXES[variant] if finetune else MIXES[variant]
  c.data.task = "stdlib"
  c.data.vocab = "stdlib_sp2000"
  c.data.batch_size = 16
  c.data.seq_len = 64
  if finetune:
    c.model.mem_layers = (1, 2, 3)
    if variant == "ft_negatives":
      c.fot.mix_after, c.fot.switch_step = FINETUNE_NEGATIVES_MIX, FINETUNE_SWITCH_STEP
    c.num_steps = FINETUNE_PRETRAIN_STEPS if variant == "pretrain_local" else FINETUNE_FT_STEPS
    c.checkpoint.every_steps = 500
    c.optim.schedule = "constant"
  return c
