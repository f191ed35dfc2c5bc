"""RoPE scaling: frequencies equal transformers' definitions, bad fields are refused, memory keys stay at 0."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fot_jax.model.config import ModelConfig
from fot_jax.model.layers import apply_rope_freqs
from fot_jax.model.rope import RopeScaling, inv_frequencies, rope_keys, rope_queries

W = 64
SCALINGS = {
    "linear": {"rope_type": "linear", "factor": 4.0},
    "dynamic": {"rope_type": "dynamic", "factor": 3.0},
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16},
    "yarn-mscale": {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 2048, "beta_fast": 16,
                    "beta_slow": 2, "truncate": False, "mscale": 1.0, "mscale_all_dim": 0.5},
    "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 16},
}


@pytest.mark.parametrize("head_dim,theta", [(16, 1e4), (128, 5e5)])
@pytest.mark.parametrize("name", sorted(SCALINGS))
def test_frequencies_match_transformers(name, head_dim, theta):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
  entry = SCALINGS[name]
  hf = transformers.LlamaConfig(hidden_size=4 * head_dim, num_attention_heads=4, num_hidden_layers=1,
                                vocab_size=8, rope_scaling=dict(entry), max_position_embeddings=W, rope_theta=theta)
  scaling = RopeScaling.from_dict(entry)
  plain = np.asarray(inv_frequencies(head_dim, theta, None, W, W))
  for seq_len in (W, 3 * W):  # `dynamic` is scaled only beyond max_position_embeddings
    ref, attention_factor = ROPE_INIT_FUNCTIONS[entry["rope_type"]](hf, torch.device("cpu"), seq_len=seq_len)
    ours = np.asarray(inv_frequencies(head_dim, theta, scaling, seq_len, W))
    np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-6)
    assert scaling.attention_scale == pytest.approx(attention_factor, rel=1e-12)
    scaled = name != "dynamic" or seq_len > W
    assert (np.abs(ours / plain - 1).max() > 1e-3) == scaled


@pytest.mark.parametrize("entry,field", [
    ({"rope_type": "longrope", "factor": 2.0}, "'longrope'"),
    ({"rope_type": "linear"}, "rope_scaling.factor"),
    ({"rope_type": "linear", "factor": 0.5}, "rope_scaling.factor"),
    ({"rope_type": "dynamic", "factor": "2"}, "rope_scaling.factor"),
    ({"rope_type": "yarn", "factor": 2.0}, "rope_scaling.original_max_position_embeddings"),
    ({"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 16, "low_freq_factor": 1.0},
     "rope_scaling.low_freq_factor"),
    ({"rope_type": "llama3", "factor": 8.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
     "rope_scaling.low_freq_factor"),
    ({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 1.0,
      "original_max_position_embeddings": 16}, "rope_scaling.high_freq_factor"),
    ({"rope_type": "linear", "factor": 2.0, "scale": 3}, "'scale'"),
    ({"factor": 2.0}, "rope_scaling.rope_type"),
])
def test_bad_rope_scaling_refused_by_name(entry, field):
  with pytest.raises(ValueError, match="ModelConfig.rope_scaling") as info:
    ModelConfig(rope_scaling=entry)
  assert field in str(info.value)


def test_config_dict_round_trip_and_hash():
  config = ModelConfig(rope_scaling=SCALINGS["llama3"])
  assert isinstance(config.rope_scaling, RopeScaling)
  d = config.to_dict()
  assert d["rope_scaling"] == SCALINGS["llama3"]
  back = ModelConfig.from_dict(d)
  assert back == config and hash(back) == hash(config)  # a static jit argument
  assert ModelConfig.from_dict(ModelConfig().to_dict()).rope_scaling is None


def test_yarn_factor_on_queries_keeps_memory_keys_at_position_zero():
  """rope_queries . rope_keys = (m rot q).(m rot k) as transformers scores; an unrotated (memory) key scores as
  the key rotated at position 0 with transformers' scaled cos/sin."""
  config = ModelConfig(hidden_size=64, num_heads=4, max_position_embeddings=W, rope_scaling=SCALINGS["yarn"])
  m = config.rope_scaling.attention_scale
  assert m > 1.05
  q, k = jax.random.normal(jax.random.key(0), (2, 1, 8, 4, 16))
  pos = jnp.arange(8)
  inv_freq = inv_frequencies(16, config.rope_theta, config.rope_scaling, W, W)
  hf_q, hf_k = m * apply_rope_freqs(q, pos, inv_freq), m * apply_rope_freqs(k, pos, inv_freq)
  ours_q = rope_queries(q, pos, config, W)
  local = lambda a, b: jnp.einsum("bthd,bshd->bhts", a, b)
  np.testing.assert_allclose(local(ours_q, rope_keys(k, pos, config, W)), local(hf_q, hf_k), rtol=1e-5, atol=1e-5)
  hf_memory_k = m * apply_rope_freqs(k, jnp.zeros(8, jnp.int32), inv_freq)
  np.testing.assert_allclose(local(ours_q, k), local(hf_q, hf_memory_k), rtol=1e-5, atol=1e-5)
