"""A tiny random checkpoint (orbax, byte vocabulary recorded) shared by the evaluator tests."""

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
  from fot_jax.model.config import preset
  from fot_jax.model.params import init_params
  from fot_jax.train.checkpoint import save_params_checkpoint
  path = str(tmp_path_factory.mktemp("eval_ckpt"))
  config = preset("tiny", max_position_embeddings=32, last_context_length=16)
  save_params_checkpoint(path, init_params(config, 0), config, extra_config={"data": {"vocab": "byte"}})
  return path


@pytest.fixture(scope="session")
def jsonl_corpus(tmp_path_factory):
  """'{split}' glob of a small two-split JSONL corpus of word soup documents (~1.5k bytes each)."""
  import json
  import random
  root = tmp_path_factory.mktemp("eval_corpus")
  rng = random.Random(0)
  for split in ("train", "validation"):
    with open(root / f"{split}.jsonl", "w") as f:
      for i in range(5):
        words = " ".join(rng.choice(["alpha", "beta", "gamma", "delta"]) + str(rng.randint(0, 9)) for _ in range(200))
        f.write(json.dumps({"text": f"doc {i}: {words}"}) + "\n")
  return str(root / "{split}.jsonl")
