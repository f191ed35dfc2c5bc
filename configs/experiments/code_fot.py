"""Experiments (c) and (d) of docs/RESULTS.md on real text: FoT fine-tuning that teaches the memory layer to
retrieve code, then single-document and multi-document loss on held-out stdlib code.

The model reads code only if its memory layer has a skill worth carrying into memory. Here that skill is
copying: a quarter of the tokens repeat a stdlib segment, so the layer learns to find earlier text by content
locally (stage 1) and then in the previous chunks (stage 2), while the other tokens keep it a language model.
  :local      stage 1, 1000 steps at L = 64, no additional contexts: stdlib text blended with stdlib segments of
              8-30 tokens repeated 3 times (the copies are within the local window)
  :d1         stage 2 from :local (--config.init_from=STAGE1), 600 steps, k = 4 chunks per stream: each chunk
              also sees its own previous chunk (FoT d = 1); the repeats now have periods of 40-120 tokens, so a
              copy is often only in the previous chunk
  :negatives  the same, with the d1 mix for 200 steps, then the previous chunk plus 7 chunks of other streams
              (d = 8), as the paper's small-to-large d curriculum
  :quick      a few steps of :local, for tests
A 1.2M-parameter LLaMA (4 layers, 128 wide), one memory layer (2) without positional encoding, the stdlib
SentencePiece-2000 vocabulary. Run all of it with: bash scripts/reproduce.sh code
"""

from fot_jax.configs import base

VARIANTS = ("local", "d1", "negatives", "quick")
LOCAL_TASK = "stdlib@0.75+repeat:stdlib:8-30x3@0.25"
FT_TASK = "stdlib@0.75+repeat:stdlib:40-120x3@0.25"
D1_MIX, NEGATIVES_MIX, SWITCH_STEP = "0:0,1:0,1:0,1:0", "0:0,1:7,1:7,1:7", 200


def get_config(variant: str = "negatives"):
  if variant not in VARIANTS:
    raise ValueError(f"code_fot: unknown variant {variant!r}; known: {list(VARIANTS)}")
  local = variant in ("local", "quick")
  c = base.cpu_experiment_config(num_steps=1000 if local else 600, learning_rate=3e-3 if local else 1e-3,
                                 warmup_steps=30, weight_decay=0.0, checkpoint_every=200)
  c.model = base.model_config("tiny", vocab_size=2000, hidden_size=128, num_heads=4, num_kv_heads=4, num_layers=4,
                              intermediate_size=256, mem_layers=(2,), mem_positionals="none",
                              max_position_embeddings=64, last_context_length=64, initializer_range=0.05)
  c.fot.plan = "mix"
  if local:
    c.fot.k, c.fot.mix = 1, "0:0"
    c.data.task = LOCAL_TASK
  else:
    c.fot.k, c.fot.mix = 4, D1_MIX
    c.data.task = FT_TASK
    if variant == "negatives":
      c.fot.mix_after, c.fot.switch_step = NEGATIVES_MIX, SWITCH_STEP
  c.data.vocab = "stdlib_sp2000"
  c.data.batch_size = 32
  c.data.seq_len = 64
  c.optim.schedule = "constant"
  if variant == "quick":
    c.num_steps, c.optim.warmup_steps, c.checkpoint.every_steps = 10, 2, 10
  return c
