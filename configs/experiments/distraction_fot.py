"""Experiment (a) of docs/RESULTS.md: does crossbatch training with negatives focus the memory layers?

Three runs with the same model, data and budget, differing only in what the memory layers see during training
(mix plan, k=4: chunks 1..3 of each document stream follow chunk 0):
  :baseline   "0:0,0:0,0:0,0:0"  no additional context (a standard transformer at local context 32)
  :d1         "0:0,1:0,1:0,1:0"  each chunk sees its own previous chunk only (FoT d=1, no negatives)
  :negatives  "0:0,1:0,1:0,1:0" until step 1500, then "0:0,1:7,1:7,1:7": the previous chunk and 7 chunks of
              other streams (FoT d=8), after a positives-only warm-up (the paper's small-to-large d curriculum)
  :negatives_from_start  "0:0,1:7,1:7,1:7" from step 0
  :pretrain_local  the baseline mix on 'repeat:random:64:6-16x6' (repeats within the local context, at varying
              periods): a model that learns induction heads locally, to start the others from with
              --config.init_from=DIR, as FoT fine-tunes a pretrained LLaMA (the copy probe learns to read memory
              within 100 steps from such a start, and only after ~1400 steps from scratch)
Data: 32-token sequences of random symbols (64 of them) repeated 8 times ('repeat:random:64:32x8'). A repeat is
exactly one chunk back, out of local reach, so only retrieval from the additional contexts predicts it; other
documents' contexts hold the same symbols, so a key must carry enough preceding tokens to tell its own context
from theirs: the distraction issue in miniature. The model is the copy probe's (fot_jax.eval.copy_probe), with
memory layers 1-3: a single memory layer, and natural-text data, never learned to use memory within a CPU budget
(RESULTS.md).
Run: python -m fot_jax.train --config=configs/experiments/distraction_fot.py:negatives --workdir=DIR
then: python -m fot_jax.evaluate distraction --checkpoint=DIR --corpus=repeat:random:64:32x4 --context_length=32
or all of it: bash scripts/reproduce.sh distraction
"""

from configs import base

MIXES = {"baseline": "0:0,0:0,0:0,0:0", "d1": "0:0,1:0,1:0,1:0", "negatives": "0:0,1:0,1:0,1:0",
         "negatives_from_start": "0:0,1:7,1:7,1:7", "pretrain_local": "0:0,0:0,0:0,0:0"}
TASK, LOCAL_TASK = "repeat:random:64:32x8", "repeat:random:64:6-16x6"
NEGATIVES_MIX, SWITCH_STEP = "0:0,1:7,1:7,1:7", 1500


def get_config(variant: str = "negatives"):
  if variant not in MIXES:
    raise ValueError(f"distraction_fot: unknown variant {variant!r}; known: {sorted(MIXES)}")
  c = base.cpu_experiment_config(num_steps=3000, learning_rate=3e-3, warmup_steps=20, weight_decay=0.0,
                                 checkpoint_every=500)
  c.model = base.model_config("tiny", vocab_size=2000, hidden_size=64, num_heads=4, num_kv_heads=4, num_layers=4,
                              intermediate_size=128, mem_layers=(1, 2, 3), max_position_embeddings=32,
                              last_context_length=32)
  c.fot.k = 4
  c.fot.plan = "mix"
  c.fot.mix = MIXES[variant]
  if variant == "negatives":
    c.fot.mix_after, c.fot.switch_step = NEGATIVES_MIX, SWITCH_STEP
  c.data.task = LOCAL_TASK if variant == "pretrain_local" else TASK
  c.data.vocab = "ids:2000"  # the sources are ids already: no tokenizer (and no seqio/TensorFlow) needed
  c.data.batch_size = 32
  c.data.seq_len = 32
  c.optim.schedule = "constant"  # a decaying rate delays the late retrieval transition (the copy probe's, ~step 1400)
  return c
