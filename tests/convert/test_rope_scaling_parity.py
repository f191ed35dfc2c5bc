"""Scaled RoPE (linear, dynamic, yarn, llama3) against transformers' LlamaForCausalLM: import, logprobs, export,
and the exported PyTorch modeling file (tiny random models, fp32, offline)."""

from __future__ import annotations

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from tests.convert import tiny

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from fot_jax import evaluate  # noqa: E402
from fot_jax import export as export_cli  # noqa: E402
from fot_jax.convert import __main__ as convert_cli  # noqa: E402
from fot_jax.convert import hf  # noqa: E402
from fot_jax.eval.logprobs import token_logprobs  # noqa: E402
from fot_jax.eval.loading import load_model  # noqa: E402
from fot_jax.model.inference import MemoryInference  # noqa: E402
from fot_jax.model.transformer import forward  # noqa: E402
from fot_jax.train.checkpoint import load_params, save_params_checkpoint  # noqa: E402
from tests.convert.test_hf_roundtrip import make_hf_llama  # noqa: E402

TOL = 1e-4
W = 64  # make_hf_llama's max_position_embeddings
SCALINGS = {
    "linear": {"rope_type": "linear", "factor": 2.0},
    "dynamic": {"rope_type": "dynamic", "factor": 2.0},
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16},
    "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 16},
}


def torch_logprobs(model, toks: np.ndarray) -> np.ndarray:
  logp = torch.log_softmax(torch.tensor(tiny.torch_logits(model, toks)), dim=-1)[:, :-1]
  return torch.gather(logp, -1, torch.tensor(toks[:, 1:, None], dtype=torch.long))[..., 0].numpy()


@pytest.mark.parametrize("kv_heads", [4, 2], ids=["mha", "gqa"])
@pytest.mark.parametrize("name", sorted(SCALINGS))
def test_evaluate_logprobs_matches_llama(tmp_path, name, kv_heads):
  src = str(tmp_path / "hf")
  model = make_hf_llama(src, kv_heads, 1e4, rope_scaling=dict(SCALINGS[name]))
  toks = tiny.tokens(2, 40)  # within W = 64: one window, as LlamaForCausalLM sees it
  np.save(tmp_path / "toks.npy", toks)
  out = str(tmp_path / "logprobs.npy")
  assert evaluate.main(["logprobs", f"--checkpoint={src}", f"--tokens={tmp_path / 'toks.npy'}",
                        f"--out={out}"]) == 0
  ours, ref = np.load(out), torch_logprobs(model, toks)
  assert np.abs(ours - ref).max() <= TOL
  # The scaling is in effect (dynamic is plain RoPE within max_position_embeddings, as in transformers).
  loaded = load_model(src)
  assert loaded.config.rope_scaling.rope_type == SCALINGS[name]["rope_type"]
  plain = token_logprobs(loaded.params, loaded.config.replace(rope_scaling=None), toks)
  assert (np.abs(plain - ref).max() > 1e-3) == (name != "dynamic")


def test_dynamic_beyond_max_positions_in_a_training_forward(tmp_path):
  """A forward over S > max_position_embeddings tokens uses the NTK base of S, as LlamaForCausalLM does."""
  src = str(tmp_path / "hf")
  model = make_hf_llama(src, 2, 1e4, rope_scaling=dict(SCALINGS["dynamic"]))
  toks = tiny.tokens(1, 2 * W + 8)
  ref = tiny.torch_logits(model, toks)
  loaded = load_model(src)
  ours = np.asarray(forward(loaded.params, jnp.asarray(toks), loaded.config))
  assert np.abs(ours - ref).max() <= TOL
  plain = np.asarray(forward(loaded.params, jnp.asarray(toks), loaded.config.replace(rope_scaling=None)))
  assert np.abs(plain - ref).max() > 1e-3


@pytest.mark.parametrize("name", sorted(SCALINGS))
def test_import_export_round_trip_keeps_scaling(tmp_path, name):
  src, ckpt, out = str(tmp_path / "hf"), str(tmp_path / "ckpt"), str(tmp_path / "export")
  model = make_hf_llama(src, 2, 1e6, rope_scaling=dict(SCALINGS[name]))
  assert convert_cli.main(["--from=hf", src, f"--out={ckpt}"]) == 0
  assert load_params(ckpt)[1].rope_scaling.to_dict() == SCALINGS[name]
  assert export_cli.main([f"--workdir={ckpt}", f"--out={out}"]) == 0
  with open(os.path.join(out, "config.json")) as f:
    assert json.load(f)["rope_scaling"] == SCALINGS[name]
  reloaded = transformers.LlamaForCausalLM.from_pretrained(out).eval()
  assert reloaded.config.rope_parameters["rope_type"] == SCALINGS[name]["rope_type"]
  toks = tiny.tokens(2, 24)
  assert np.abs(tiny.torch_logits(reloaded, toks) - tiny.torch_logits(model, toks)).max() <= TOL


@pytest.mark.parametrize("name", sorted(SCALINGS))
def test_modeling_file_with_scaled_rope(tmp_path, name):
  """Short inputs: the FoT file equals LlamaForCausalLM on the same folder; long inputs (memory in use): it equals
  fot_jax's memory inference, memory keys unrotated in both."""
  config = tiny.tiny_config(rope_scaling=dict(SCALINGS[name], **(
      {"original_max_position_embeddings": 8} if "original_max_position_embeddings" in SCALINGS[name] else {})))
  params = tiny.tiny_params(config)
  out = str(tmp_path / "export")
  hf.write_hf_folder(out, params, config)
  fot = transformers.AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True).eval()
  llama = transformers.LlamaForCausalLM.from_pretrained(out).eval()
  short = tiny.tokens(2, 8)
  assert np.abs(tiny.torch_logits(fot, short) - tiny.torch_logits(llama, short)).max() <= TOL
  toks = tiny.tokens(2, 45)  # W=16, LCL=8: three windows into memory, then the last 8 tokens
  ours = np.asarray(MemoryInference(params, config, batch=2, initial_capacity=64).encode(toks))
  assert np.abs(ours - tiny.torch_logits(fot, toks)).max() <= TOL
  plain = np.asarray(MemoryInference(params, config.replace(rope_scaling=None), batch=2,
                                     initial_capacity=64).encode(toks))
  assert (np.abs(plain - ours).max() > 1e-3) == (name != "dynamic")


@pytest.mark.parametrize("entry,message", [
    ({"rope_type": "longrope", "short_factor": [1.0], "long_factor": [1.0]}, "'longrope'"),
    ({"rope_type": "llama3", "factor": 8.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
     "low_freq_factor"),
    ({"rope_type": "linear", "factor": 2.0, "partial_rotary_factor": 0.5}, "partial_rotary_factor"),
])
def test_convert_refuses_bad_rope_scaling(tmp_path, capsys, entry, message):
  src = tmp_path / "hf"
  make_hf_llama(str(src), 2, 1e4)
  cfg = json.loads((src / "config.json").read_text())
  cfg.pop("rope_parameters", None)
  cfg["rope_scaling"] = entry
  (src / "config.json").write_text(json.dumps(cfg))
  assert convert_cli.main(["--from=hf", str(src), f"--out={tmp_path / 'ckpt'}"]) == 2
  err = capsys.readouterr().err
  assert "rope_scaling" in err and message in err
  assert not (tmp_path / "ckpt").exists()


def test_transformers4_style_config_json():
  """Older config.json files carry `rope_scaling` with the legacy `type` key and a top-level rope_theta."""
  hf_cfg = {"vocab_size": 256, "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2,
            "intermediate_size": 96, "max_position_embeddings": 64, "rope_theta": 5e5,
            "rope_scaling": {"type": "yarn", "factor": 4.0}}
  config = hf.model_config_from_hf(hf_cfg)
  # As transformers does: yarn without original_max_position_embeddings takes max_position_embeddings.
  assert config.rope_scaling.to_dict() == {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}
  assert config.rope_theta == 5e5
  assert hf.model_config_from_hf({**hf_cfg, "rope_scaling": {"rope_type": "default"}}).rope_scaling is None


def test_save_params_checkpoint_keeps_scaling(tmp_path):
  config = tiny.tiny_config(mem_layers=(), rope_scaling=SCALINGS["llama3"])
  save_params_checkpoint(str(tmp_path / "ckpt"), tiny.tiny_params(config), config)
  assert load_params(str(tmp_path / "ckpt"))[1] == config
