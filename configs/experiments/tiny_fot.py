"""The embedded default (the quick start's main job): a tiny FoT model that reads passkeys far beyond its training
context, trained on a 2-core CPU in a few minutes, in the two stages FoT needs.

  :local  stage 1, local pretraining: the authors' passkey prompts (training seeds) that fit one 128-token row,
          blended with CPython standard-library text (a quarter of the tokens); no additional contexts
  ''      stage 2, FoT fine-tuning from stage 1 (--config.init_from=STAGE1): longer passkey prompts, each starting
          a stream of k = 4 chunks of 128 tokens; each chunk also attends to the earlier chunks of its stream
          (crossbatch positives, differentiable), so the key line is found in memory; loss on the answer
  :local_quick, :quick  the same in a few steps, for tests
A 1.2M-parameter LLaMA (4 layers, 128 wide) with one memory layer (2) without positional encoding
(mem_positionals="none"), a SentencePiece vocabulary of 2000 pieces trained on the stdlib corpus.
Run: bash scripts/quickstart.sh, or by hand:
     python -m fot_jax.train --config=configs/experiments/tiny_fot.py:local --workdir=/tmp/stage1
     python -m fot_jax.train --config=configs/experiments/tiny_fot.py --workdir=/tmp/tiny_fot \
       --config.init_from=/tmp/stage1
"""

from fot_jax.configs import base

VARIANTS = ("", "quick", "local", "local_quick")


def get_config(variant: str = ""):
  if variant not in VARIANTS:
    raise ValueError(f"tiny_fot: unknown variant {variant!r}; known: {list(VARIANTS)}")
  local = variant.startswith("local")
  c = base.get_config()
  c.num_steps = 400 if local else 300
  c.model = base.model_config("tiny", vocab_size=2000, hidden_size=128, num_heads=4, num_kv_heads=4, num_layers=4,
                              intermediate_size=256, mem_layers=(2,), mem_positionals="none",
                              max_position_embeddings=128, last_context_length=128, initializer_range=0.05)
  c.fot.plan = "mix"
  if local:
    c.fot.k, c.fot.mix = 1, "0:0"
    c.data.task = "landmark:1-60@0.75+stdlib@0.25"
    c.data.batch_size = 16
    c.optim.learning_rate = 3e-3
  else:
    c.fot.k, c.fot.mix = 4, "0:0,1:0,2:0,3:0"
    c.data.task = "landmark_answers:200-900"
    c.data.batch_size = 32
    c.optim.learning_rate = 1e-3
  c.data.align_documents = True  # one prompt per stream: a chunk's earlier chunks are its own prompt's
  c.data.vocab = "stdlib_sp2000"
  c.data.seq_len = 128
  c.data.micro_batches = 1

  c.optim.optimizer = "adamw"
  c.optim.schedule = "constant"
  c.optim.warmup_steps = 30
  c.optim.weight_decay = 0.0

  c.mesh.shape = (1, -1, 1)
  c.checkpoint.every_steps = 100
  c.log.every_steps = 25
  c.log.tensorboard = False
  c.eval.every_steps = 0

  if variant.endswith("quick"):
    c.num_steps = 20
    c.optim.warmup_steps = 5
    c.checkpoint.every_steps = 10
  return c
