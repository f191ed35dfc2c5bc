"""Small configs shared by the trainer tests: a ~0.1M-parameter FoT model on a small JSONL text corpus."""

from __future__ import annotations

import json
import os
import sysconfig

from fot_jax.configs import base
from fot_jax.train.config import TrainConfig

CORPUS_FILES = ("json", "email", "logging", "asyncio", "unittest", "xml", "http", "importlib", "concurrent")


def write_text_corpus(directory: str) -> str:
  """{train,validation}.jsonl of stdlib package sources (one document per file); returns the data.task name."""
  os.makedirs(directory, exist_ok=True)
  root = sysconfig.get_paths()["stdlib"]
  docs = []
  for package in CORPUS_FILES:
    pkg = os.path.join(root, package)
    for name in sorted(os.listdir(pkg)):
      if name.endswith(".py"):
        with open(os.path.join(pkg, name), encoding="utf-8", errors="replace") as f:
          text = f.read()
        if len(text) > 2000:
          docs.append(text[:20000])
  for split, part in (("train", docs[::5] + docs[1::5] + docs[2::5] + docs[3::5]), ("validation", docs[4::5])):
    with open(os.path.join(directory, f"{split}.jsonl"), "w") as f:
      for text in part:
        f.write(json.dumps({"text": text}) + "\n")
  return "jsonl:" + os.path.join(directory, "{split}.jsonl")


def tiny_config(task: str = "dict_lookup", data_dir: str = "", **data):
  c = base.get_config()
  c.num_steps = 6
  c.model = base.model_config("tiny", vocab_size=272, hidden_size=32, num_heads=4, num_kv_heads=2, num_layers=3,
                              intermediate_size=64, mem_layers=(1,), max_position_embeddings=64,
                              last_context_length=32)
  c.fot.k = 2
  c.fot.d = 2
  c.data.task = task
  c.data.data_dir = data_dir
  c.data.vocab = "byte"
  c.data.batch_size = 8
  c.data.seq_len = 32
  c.data.micro_batches = 1
  c.optim.learning_rate = 1e-2
  c.optim.warmup_steps = 2
  c.mesh.shape = (1, -1, 1)
  c.checkpoint.every_steps = 2
  c.checkpoint.async_save = True
  c.log.every_steps = 1
  c.log.tensorboard = False
  c.eval.every_steps = 0
  for key, value in data.items():
    c.data[key] = value
  return c


def typed(c, num_devices: int | None = None, process_count: int = 1) -> TrainConfig:
  """The typed config of a ConfigDict as the entry point converts it, checked for num_devices devices."""
  return TrainConfig.from_config_dict(c).check_devices(num_devices, process_count)
