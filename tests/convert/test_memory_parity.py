"""JAX memory inference vs the exported PyTorch modeling file (loaded with trust_remote_code, offline)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from tests.convert import tiny

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from fot_jax.convert import hf  # noqa: E402
from fot_jax.model.inference import MemoryInference  # noqa: E402
from fot_jax.model.transformer import forward  # noqa: E402

TOL = 1e-4


def export_and_load(tmp_path, config, params):
  out = str(tmp_path / "export")
  hf.write_hf_folder(out, params, config)
  model = transformers.AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True).eval()
  assert type(model).__name__ == "LongLlamaForCausalLM"
  return out, model


@pytest.mark.parametrize("mem_positionals", ["first", "none"])
def test_long_input_logits_match(tmp_path, mem_positionals):
  config = tiny.tiny_config(mem_positionals=mem_positionals)  # W=16, LCL=8, memory layers 1 and 2
  params = tiny.tiny_params(config)
  out, model = export_and_load(tmp_path, config, params)
  toks = tiny.tokens(2, 45)  # windows [0,16) [16,32) [32,37), then the last window [37,45)
  valid = np.ones(toks.shape, bool)
  valid[1, :5] = False  # left padding in one row
  runner = MemoryInference(params, config, batch=2, initial_capacity=64)
  ours = np.asarray(runner.encode(toks, valid))
  theirs = tiny.torch_logits(model, toks, attention_mask=torch.tensor(valid.astype(np.int64)))
  # Padded queries see no key at all; their (meaningless) outputs depend on buffer sizes, so skip them.
  assert np.abs(ours - theirs)[valid].max() <= TOL
  # The memory matters: a plain full-context forward gives different logits on the last window.
  plain = np.asarray(forward(params, jnp.asarray(toks), config))
  assert np.abs(plain[0, -8:] - ours[0, -8:]).max() > 1e-2
  if mem_positionals == "first":
    # Short inputs (one window) are plain LLaMA: the same folder as LlamaForCausalLM agrees.
    llama = transformers.LlamaForCausalLM.from_pretrained(out).eval()
    short = toks[:, :8]
    assert np.abs(tiny.torch_logits(llama, short) - tiny.torch_logits(model, short)).max() <= TOL


def test_greedy_generation_over_cache_flush(tmp_path):
  config = tiny.tiny_config()
  params = tiny.tiny_params(config, seed=1)
  _, model = export_and_load(tmp_path, config, params)
  prompt = tiny.tokens(2, 13, seed=3)  # [0,5) goes to memory, 8 tokens stay in the local cache
  ours = MemoryInference(params, config, batch=2, initial_capacity=64).generate(prompt, max_new_tokens=24)
  theirs = model.generate(torch.tensor(prompt, dtype=torch.long), max_new_tokens=24)
  assert theirs.shape == (2, 13 + 24)
  np.testing.assert_array_equal(theirs[:, 13:].numpy(), ours)
  # The local cache (W=16) overflowed once during those steps: 8 cached + 8 new, then a flush.
  out = model(torch.tensor(prompt, dtype=torch.long), use_cache=True)
  cache = out.cache if hasattr(out, "cache") else out.past_key_values
  for tok in ours[:, :-1].T:
    out = model(torch.tensor(tok[:, None], dtype=torch.long), cache=cache)
  assert cache.memory_size == 5 + 16
