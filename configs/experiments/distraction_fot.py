"""Experiment (a) of docs/RESULTS.md: does crossbatch training with negatives focus the memory layers?

Three runs with the same model, data and budget, differing only in what the memory layers see during training
(mix plan, k=4: chunks 1..3 of each document stream follow chunk 0):
  :baseline   "0:0,0:0,0:0,0:0"  no additional context (a standard transformer at local context 32)
  :d1         "0:0,1:0,1:0,1:0"  each chunk sees its own previous chunk only (FoT d=1, no negatives)
  :negatives  "0:0,1:0,1:0,1:0" until step 1500, then "0:0,1:7,1:7,1:7": the previous chunk and 7 chunks of
              other streams (FoT d=8), after a positives-only warm-up (the paper's small-to-large d curriculum)
  :negatives_from_start  "0:0,1:7,1:7,1:7" from step 0
  :pretrain_local  1500 steps of the baseline mix on 'repeat:random:64:6-16x6' (repeats within the local
              context, at varying periods): a model that learns induction heads locally, as a pretrained LLaMA has
              them before FoT fine-tuning
  :pretrain_mixed  pretrain_local's steps with the d1 mix on a token-share blend of the local repeats and the
              one-chunk-back repeats: memory use may form together with the induction heads (a robustness
              candidate; docs/RESULTS.md (a))
  :ft_negatives_wide  ft_negatives with every other stream of the batch as negatives after the warm-up:
              "0:0,1:28,1:28,1:28" (d = 29, the most a 32-row batch with k = 4 allows)
  :ft_negatives_unaligned  ft_negatives on 'repeat:random:64:20-44x8': periods around L, so a copy sits in the
              previous chunk at a varying offset (or locally): no positional shortcut, content retrieval only
  :ft_baseline, :ft_d1, :ft_negatives  1000 steps of the baseline, d1 and negatives mixes (negatives after a
              300-step d1 warm-up), to start from pretrain_local with --config.init_from=DIR. In
              docs/RESULTS.md (a): from scratch no mix ever learned to read memory (20k steps on a GPU); from
              pretrain_local it does within a few hundred steps, for the seeds whose pretraining put a content
              (induction) head in memory layer 1, which pretrain_local's own r_d shows (above 1/d)
Data: 32-token sequences of random symbols (64 of them) repeated 8 times ('repeat:random:64:32x8'). A repeat is
exactly one chunk back, out of local reach, so only retrieval from the additional contexts predicts it; other
documents' contexts hold the same symbols, so a key must carry enough preceding tokens to tell its own context
from theirs: the distraction issue in miniature. The model is the copy task's (tests/model/copy_task.py), with
memory layers 1-3: a single memory layer, and natural-text data, never learned to use memory within a CPU budget
(RESULTS.md).
Run: python -m fot_jax.train --config=configs/experiments/distraction_fot.py:pretrain_local --workdir=PRE
then: python -m fot_jax.train --config=configs/experiments/distraction_fot.py:ft_negatives --workdir=DIR \
        --config.init_from=PRE
then: python -m fot_jax.evaluate distraction --checkpoint=DIR --corpus=repeat:random:64:32x4 --context_length=32
or all of it: bash scripts/reproduce.sh distraction (fine-tuning), bash scripts/reproduce.sh distraction_scratch (from scratch)
"""

from fot_jax.configs import base

MIXES = {"baseline": "0:0,0:0,0:0,0:0", "d1": "0:0,1:0,1:0,1:0", "negatives": "0:0,1:0,1:0,1:0",
         "negatives_from_start": "0:0,1:7,1:7,1:7", "pretrain_local": "0:0,0:0,0:0,0:0",
         "pretrain_mixed": "0:0,1:0,1:0,1:0"}
TASK, LOCAL_TASK = "repeat:random:64:32x8", "repeat:random:64:6-16x6"
MIXED_TASK = f"{LOCAL_TASK}@0.5+{TASK}@0.5"
UNALIGNED_TASK = "repeat:random:64:20-44x8"
NEGATIVES_MIX, SWITCH_STEP, FT_SWITCH_STEP = "0:0,1:7,1:7,1:7", 1500, 300
WIDE_NEGATIVES_MIX = "0:0,1:28,1:28,1:28"
PRETRAIN_STEPS, FT_STEPS = 1500, 1000


def get_config(variant: str = "negatives"):
  fine_tune = variant.startswith("ft_")
  wide, unaligned = variant == "ft_negatives_wide", variant == "ft_negatives_unaligned"
  mix_name = "negatives" if wide or unaligned else variant[len("ft_"):] if fine_tune else variant
  if mix_name not in MIXES or (fine_tune and mix_name not in ("baseline", "d1", "negatives")):
    known = sorted(MIXES) + ["ft_baseline", "ft_d1", "ft_negatives", "ft_negatives_wide", "ft_negatives_unaligned"]
    raise ValueError(f"distraction_fot: unknown variant {variant!r}; known: {known}")
  c = base.cpu_experiment_config(num_steps=3000, learning_rate=3e-3, warmup_steps=20, weight_decay=0.0,
                                 checkpoint_every=500)
  c.model = base.model_config("tiny", vocab_size=2000, hidden_size=64, num_heads=4, num_kv_heads=4, num_layers=4,
                              intermediate_size=128, mem_layers=(1, 2, 3), max_position_embeddings=32,
                              last_context_length=32)
  c.fot.k = 4
  c.fot.plan = "mix"
  c.fot.mix = MIXES[mix_name]
  if mix_name == "negatives":
    c.fot.mix_after = WIDE_NEGATIVES_MIX if wide else NEGATIVES_MIX
    c.fot.switch_step = FT_SWITCH_STEP if fine_tune else SWITCH_STEP
  if variant in ("pretrain_local", "pretrain_mixed"):
    c.num_steps = PRETRAIN_STEPS
  if fine_tune:
    c.num_steps = FT_STEPS
  c.data.task = {"pretrain_local": LOCAL_TASK, "pretrain_mixed": MIXED_TASK,
                 "ft_negatives_unaligned": UNALIGNED_TASK}.get(variant, TASK)
  c.data.vocab = "ids:2000"  # the sources are ids already: no tokenizer (and no seqio/TensorFlow) needed
  c.data.batch_size = 32
  c.data.seq_len = 32
  c.optim.schedule = "constant"  # a decaying rate delays the late retrieval transition (the copy probe's, ~step 1400)
  return c
