"""EasyLM/FoT checkpoint import: the interleaved-RoPE permutation, both file formats, a negative control."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import msgpack
import numpy as np
import pytest
from flax import serialization

from tests.convert import tiny

from fot_jax.convert import __main__ as convert_cli
from fot_jax.convert import easylm
from fot_jax.model.transformer import forward
from fot_jax.train.checkpoint import load_params


def test_permutation_matches_spec_formula():
  heads, hd = 3, 8
  cols = np.arange(heads * hd)[None, :]  # EasyLM column indices as values
  ours = easylm.interleaved_to_halves(cols, hd)[0]
  for h in range(heads):
    for c in range(2):
      for i in range(hd // 2):
        assert ours[h * hd + c * hd // 2 + i] == h * hd + 2 * i + c
  np.testing.assert_array_equal(easylm.halves_to_interleaved(ours[None], hd)[0], cols[0])


def _interleaved_rope(x, pos, theta=1e4):
  """EasyLM-style RoPE (independent of ours): pairs (2i, 2i+1) of each head rotate by pos * theta^(-2i/hd)."""
  hd = x.shape[-1]
  freq = theta ** (-np.arange(0, hd, 2) / hd)
  ang = pos * freq
  x0, x1 = x[..., 0::2], x[..., 1::2]
  out = np.empty_like(x)
  out[..., 0::2] = x0 * np.cos(ang) - x1 * np.sin(ang)
  out[..., 1::2] = x0 * np.sin(ang) + x1 * np.cos(ang)
  return out


def test_permuted_qk_give_easylm_attention_scores():
  """q.k after EasyLM's interleaved RoPE on raw kernels == q.k after our rotate-half RoPE on permuted ones."""
  from fot_jax.model.layers import apply_rope
  rng = np.random.RandomState(0)
  d, heads, hd = 16, 2, 8
  wq, wk = rng.randn(d, heads * hd), rng.randn(d, heads * hd)
  x = rng.randn(5, d)
  pos = np.arange(5)[:, None, None]
  qe = _interleaved_rope((x @ wq).reshape(5, heads, hd), pos)
  ke = _interleaved_rope((x @ wk).reshape(5, heads, hd), pos)
  q = apply_rope(jnp.asarray((x @ easylm.interleaved_to_halves(wq, hd)).reshape(1, 5, heads, hd), jnp.float32),
                 jnp.arange(5), 1e4)[0]
  k = apply_rope(jnp.asarray((x @ easylm.interleaved_to_halves(wk, hd)).reshape(1, 5, heads, hd), jnp.float32),
                 jnp.arange(5), 1e4)[0]
  np.testing.assert_allclose(np.einsum("thd,shd->hts", q, k), np.einsum("thd,shd->hts", qe, ke), atol=1e-3)


def _write_flax_msgpack(path, params, config):
  """The other EasyLM format: one flax msgpack state dict {'params': {'params': {...}}}."""
  tree = {"transformer": {"wte": {"embedding": np.asarray(params["embed_tokens"])},
                          "ln_f": {"kernel": np.asarray(params["norm"])}, "h": {}},
          "lm_head": {"kernel": np.asarray(params["lm_head"])}}
  for i in range(config.num_layers):
    layer: dict = {}
    for (group, *rest), ours in easylm.LAYER_NAMES.items():
      a = np.asarray(params["layers"][ours][i])
      if ours in ("q_proj", "k_proj"):
        a = easylm.halves_to_interleaved(a, config.head_dim)
      node = layer.setdefault(group, {})
      if len(rest) == 2:
        node = node.setdefault(rest[0], {})
      node["kernel"] = a
    tree["transformer"]["h"][str(i)] = layer
  with open(path, "wb") as f:
    f.write(serialization.msgpack_serialize({"params": {"params": tree}}))


@pytest.mark.parametrize("fmt", ["streaming", "flax"])
def test_import_reproduces_logits(tmp_path, fmt):
  config = tiny.tiny_config(mem_layers=(1,), rope_theta=1e4)  # GQA: 4 heads, 2 kv heads
  params = tiny.tiny_params(config, seed=2)
  path = str(tmp_path / "easylm.msgpack")
  if fmt == "streaming":
    easylm.save_easylm_streaming(path, params, config, prefix=("params", "params"))
    with open(path, "rb") as f:  # a train-state file also holds optimizer entries: they are skipped
      body = f.read()
    with open(path, "wb") as f:
      f.write(msgpack.packb([["opt_state", "mu", "x"], serialization.to_bytes(np.zeros(3, np.float32))]) + body)
  else:
    _write_flax_msgpack(path, params, config)
  ckpt = str(tmp_path / "ckpt")
  args = ["--from=easylm", path, f"--out={ckpt}", "--num_heads=4", "--mem_layers=1", "--window=16",
          "--last_context_length=8", "--mem_dtype=float32", "--norm_eps=1e-6"]
  assert convert_cli.main(args) == 0
  loaded, loaded_config, _ = load_params(ckpt)
  assert loaded_config == config.replace(initializer_range=loaded_config.initializer_range)
  toks = jnp.asarray(tiny.tokens(2, 16))
  ref = np.asarray(forward(params, toks, config))
  assert np.abs(np.asarray(forward(loaded, toks, loaded_config)) - ref).max() <= 1e-5

  if fmt == "streaming":  # negative control: without the permutation the model still runs, but is wrong
    original = easylm.interleaved_to_halves
    try:
      easylm.interleaved_to_halves = lambda kernel, head_dim: kernel
      skipped, cfg = easylm.load_easylm(path, 4, norm_eps=config.norm_eps)
    finally:
      easylm.interleaved_to_halves = original
    wrong = np.asarray(forward(jax.tree.map(jnp.asarray, skipped), toks, cfg))
    assert np.abs(wrong - ref).max() > 1e-2


def test_easylm_requires_heads(tmp_path, capsys):
  config = tiny.tiny_config(mem_layers=())
  path = str(tmp_path / "easylm.msgpack")
  easylm.save_easylm_streaming(path, tiny.tiny_params(config), config)
  assert convert_cli.main(["--from=easylm", path, f"--out={tmp_path / 'ckpt'}"]) == 2
  assert "--num_heads" in capsys.readouterr().err
  assert convert_cli.main(["--from=easylm", path, f"--out={tmp_path / 'ckpt'}", "--num_heads=3"]) == 2
  assert "--num_heads" in capsys.readouterr().err
  assert convert_cli.main(["--from=easylm", path, f"--out={tmp_path / 'ckpt'}", "--preset=longllama_3b"]) == 2
  assert "preset expects vocab_size=32000" in capsys.readouterr().err
