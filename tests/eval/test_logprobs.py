"""`python -m fot_jax.evaluate logprobs`: shapes, values, orbax vs HF inputs, flag overrides, bad inputs."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.convert import tiny

from fot_jax import evaluate
from fot_jax.convert import hf
from fot_jax.model.inference import MemoryInference
from fot_jax.train.checkpoint import save_params_checkpoint

CONFIG = tiny.tiny_config()  # W=16, LCL=8, memory layers 1, 2; memory in float32


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
  root = tmp_path_factory.mktemp("logprobs")
  params = tiny.tiny_params(CONFIG, seed=4)
  save_params_checkpoint(str(root / "ckpt"), params, CONFIG)
  hf.write_hf_folder(str(root / "hf"), params, CONFIG)
  toks = tiny.tokens(2, 40, seed=5)
  np.save(root / "tokens.npy", toks)
  return root, params, toks


def _expected(params, config, toks):
  runner = MemoryInference(params, config, batch=toks.shape[0], initial_capacity=48)
  logits = np.asarray(runner.encode(toks), np.float64)
  logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - \
      logits.max(-1, keepdims=True)
  return np.take_along_axis(logp[:, :-1], toks[:, 1:, None].astype(np.int64), -1)[..., 0]


def test_orbax_and_hf_checkpoints_agree(model_dirs, tmp_path):
  root, params, toks = model_dirs
  outs = []
  for name in ("ckpt", "hf"):
    out = str(tmp_path / f"{name}.npy")
    assert evaluate.main(["logprobs", f"--checkpoint={root / name}", f"--tokens={root / 'tokens.npy'}",
                          f"--out={out}"]) == 0
    outs.append(np.load(out))
  assert outs[0].shape == (2, 39) and outs[0].dtype == np.float32
  np.testing.assert_allclose(outs[0], _expected(params, CONFIG, toks), atol=1e-5)
  np.testing.assert_allclose(outs[0], outs[1], atol=1e-6)
  assert (outs[0] < 0).all()


def test_flags_override_the_checkpoint(model_dirs, tmp_path):
  root, params, toks = model_dirs
  out = str(tmp_path / "o.npy")
  assert evaluate.main(["logprobs", f"--checkpoint={root / 'ckpt'}", f"--tokens={root / 'tokens.npy'}",
                        f"--out={out}", "--mem_layers=1", "--window=8", "--last_context_length=4",
                        "--batch_size=1"]) == 0
  config = CONFIG.replace(mem_layers=(1,), max_position_embeddings=8, last_context_length=4)
  np.testing.assert_allclose(np.load(out), _expected(params, config, toks), atol=1e-5)
  assert np.abs(np.load(out) - _expected(params, CONFIG, toks)).max() > 1e-3


@pytest.mark.parametrize("tokens,flags,message", [
    (np.zeros((2, 3, 4), np.int32), [], "2-D integer"),
    (np.zeros((2, 8), np.float32), [], "2-D integer"),
    (np.zeros((2, 1), np.int32), [], "2 tokens"),
    (np.full((1, 8), 999, np.int32), [], "vocab_size"),
    (np.zeros((1, 8), np.int32), ["--mem_layers=1,7"], "mem_layers"),
    (np.zeros((1, 8), np.int32), ["--mem_layers=a"], "--mem_layers"),
    (np.zeros((1, 8), np.int32), ["--last_context_length=32"], "last_context_length"),
    (np.zeros((1, 8), np.int32), ["--mem_dtype=int8"], "mem_dtype"),
])
def test_bad_inputs(model_dirs, tmp_path, capsys, tokens, flags, message):
  root, _, _ = model_dirs
  path = str(tmp_path / "t.npy")
  np.save(path, tokens)
  out = str(tmp_path / "o.npy")
  assert evaluate.main(["logprobs", f"--checkpoint={root / 'ckpt'}", f"--tokens={path}", f"--out={out}"]
                       + flags) == 2
  assert message in capsys.readouterr().err
  assert not os.path.exists(out)


def test_missing_files_and_existing_output(model_dirs, tmp_path, capsys):
  root, _, _ = model_dirs
  tokens = str(root / "tokens.npy")
  assert evaluate.main(["logprobs", f"--checkpoint={tmp_path / 'nope'}", f"--tokens={tokens}",
                        f"--out={tmp_path / 'o.npy'}"]) == 2
  assert "--checkpoint" in capsys.readouterr().err
  assert evaluate.main(["logprobs", f"--checkpoint={root / 'ckpt'}", f"--tokens={tmp_path / 'nope.npy'}",
                        f"--out={tmp_path / 'o.npy'}"]) == 2
  assert "--tokens" in capsys.readouterr().err
  existing = tmp_path / "exists.npy"
  existing.write_bytes(b"keep")
  assert evaluate.main(["logprobs", f"--checkpoint={root / 'ckpt'}", f"--tokens={tokens}",
                        f"--out={existing}"]) == 2
  assert existing.read_bytes() == b"keep"
  assert evaluate.main(["nosuchtask"]) == 2
