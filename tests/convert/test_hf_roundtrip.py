"""HF LlamaForCausalLM -> import -> JAX logits -> export -> LlamaForCausalLM again, all against torch logits."""

from __future__ import annotations

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from tests.convert import tiny

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from fot_jax import export as export_cli  # noqa: E402
from fot_jax.convert import __main__ as convert_cli  # noqa: E402
from fot_jax.model.transformer import forward  # noqa: E402
from fot_jax.train.checkpoint import load_params, save_params_checkpoint  # noqa: E402

TOL = 1e-4


def make_hf_llama(folder, kv_heads: int, theta: float, seed: int = 0, rope_scaling: dict | None = None):
  """A random transformers LlamaForCausalLM saved to disk (non-trivial norm weights)."""
  torch.manual_seed(seed)
  config = transformers.LlamaConfig(
      vocab_size=tiny.VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
      num_key_value_heads=kv_heads, rope_theta=theta, max_position_embeddings=64, rms_norm_eps=1e-5,
      initializer_range=0.08, tie_word_embeddings=False, rope_scaling=rope_scaling)
  model = transformers.LlamaForCausalLM(config).eval()
  with torch.no_grad():
    for name, p in model.named_parameters():
      if name.endswith("norm.weight"):
        p.add_(0.1 * torch.randn_like(p))
  model.save_pretrained(folder)
  return model


@pytest.mark.parametrize("kv_heads,theta", [(4, 1e4), (2, 1e6)], ids=["mha-theta1e4", "gqa-theta1e6"])
def test_round_trip(tmp_path, kv_heads, theta):
  src, ckpt, out = str(tmp_path / "hf"), str(tmp_path / "ckpt"), str(tmp_path / "export")
  model = make_hf_llama(src, kv_heads, theta)
  toks = tiny.tokens(2, 24)
  ref = tiny.torch_logits(model, toks)

  assert convert_cli.main(["--from=hf", src, f"--out={ckpt}"]) == 0
  params, config, step = load_params(ckpt)
  assert (step, config.kv_heads, config.rope_theta, config.norm_eps) == (0, kv_heads, theta, 1e-5)
  assert config.mem_layers == () and config.last_context_length == config.max_position_embeddings == 64
  ours = np.asarray(forward(params, jnp.asarray(toks), config))
  assert np.abs(ours - ref).max() <= TOL

  assert export_cli.main([f"--workdir={ckpt}", f"--out={out}"]) == 0
  reloaded = transformers.LlamaForCausalLM.from_pretrained(out).eval()
  assert type(reloaded) is transformers.LlamaForCausalLM
  assert np.abs(tiny.torch_logits(reloaded, toks) - ref).max() <= TOL
  # fp32 conversion is a pure rename/transpose: every weight comes back bit-identical.
  original = model.state_dict()
  for name, value in reloaded.state_dict().items():
    assert torch.equal(value, original[name]), name


def test_config_json_has_longllama_fields(tmp_path):
  config = tiny.tiny_config(rope_theta=1e6, mem_positionals="none")
  save_params_checkpoint(str(tmp_path / "ckpt"), tiny.tiny_params(config), config)
  out = str(tmp_path / "export")
  assert export_cli.main([f"--workdir={tmp_path / 'ckpt'}", f"--out={out}"]) == 0
  with open(os.path.join(out, "config.json")) as f:
    cfg = json.load(f)
  expected = {
      "model_type": "llama", "architectures": ["LongLlamaForCausalLM"], "mem_layers": [1, 2],
      "mem_positionals": False, "mem_dtype": "float32", "last_context_length": 8,
      "mem_attention_grouping": None, "torch_attention": False, "mem_top_k": None, "gradient_checkpoint_every_ith": 1,
      "rope_theta": 1e6, "max_position_embeddings": 16, "vocab_size": 256, "hidden_size": 64,
      "intermediate_size": 96, "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
      "rms_norm_eps": 1e-6, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
      "tie_word_embeddings": False}
  assert {k: cfg[k] for k in expected} == expected
  assert cfg["auto_map"]["AutoModelForCausalLM"] == "modeling_longllama_fot.LongLlamaForCausalLM"
  assert cfg["auto_map"]["AutoConfig"] == "configuration_longllama_fot.LongLlamaConfig"
  for name in ("configuration_longllama_fot.py", "modeling_longllama_fot.py"):
    assert os.path.isfile(os.path.join(out, name))
  assert os.path.isfile(os.path.join(out, "generation_config.json"))
  with open(os.path.join(out, "README.md")) as f:  # the model card, from the stored run config
    card = f.read()
  assert "| Memory layers | [1, 2] |" in card and "| Training tokens seen | not recorded |" in card
  assert "| Memory keys positional (mem_positionals) | none |" in card
  # Importing the export gives back the same model config, memory fields included.
  assert convert_cli.main(["--from=hf", out, f"--out={tmp_path / 'back'}"]) == 0
  assert load_params(str(tmp_path / "back"))[1] == config


def test_sharded_and_half_precision_exports(tmp_path):
  config = tiny.tiny_config(mem_layers=())
  params = tiny.tiny_params(config)
  ckpt = str(tmp_path / "ckpt")
  save_params_checkpoint(ckpt, params, config)
  toks = tiny.tokens(1, 12)
  ref = np.asarray(forward(params, jnp.asarray(toks), config))

  sharded = str(tmp_path / "sharded")
  assert export_cli.main([f"--workdir={ckpt}", f"--out={sharded}", "--max_shard_size=40KB"]) == 0
  with open(os.path.join(sharded, "model.safetensors.index.json")) as f:
    index = json.load(f)
  assert len(set(index["weight_map"].values())) > 2
  model = transformers.LlamaForCausalLM.from_pretrained(sharded).eval()
  assert np.abs(tiny.torch_logits(model, toks) - ref).max() <= TOL

  half = str(tmp_path / "bf16")
  assert export_cli.main([f"--workdir={ckpt}", f"--out={half}", "--dtype=bfloat16"]) == 0
  model = transformers.LlamaForCausalLM.from_pretrained(half, dtype=torch.bfloat16).eval()
  weight = model.model.layers[0].self_attn.q_proj.weight
  assert weight.dtype == torch.bfloat16
  expected = torch.tensor(np.asarray(params["layers"]["q_proj"][0]).T).to(torch.bfloat16)
  assert torch.equal(weight, expected)


def test_tokenizer_copied_from_run_config(tmp_path, monkeypatch):
  monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("AutoTokenizer asked to run remote code"))
  spm = pytest.importorskip("sentencepiece")
  corpus = tmp_path / "corpus.txt"
  rng = np.random.RandomState(0)
  words = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), rng.randint(2, 7))) for _ in range(300)]
  corpus.write_text("\n".join(" ".join(rng.choice(words, 12)) for _ in range(300)) + "\nthe lazy dog\n")
  spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "sp"), vocab_size=64,
                                 bos_id=1, eos_id=2, unk_id=0, pad_id=-1, minloglevel=2)
  config = tiny.tiny_config()  # with memory layers: config.json carries auto_map to the FoT code
  ckpt = str(tmp_path / "ckpt")
  save_params_checkpoint(ckpt, tiny.tiny_params(config), config,
                         extra_config={"data": {"sentencepiece_model": str(tmp_path / "sp.model")}})
  out = str(tmp_path / "export")
  assert export_cli.main([f"--workdir={ckpt}", f"--out={out}"]) == 0
  assert open(os.path.join(out, "tokenizer.model"), "rb").read() == open(tmp_path / "sp.model", "rb").read()
  with open(os.path.join(out, "tokenizer_config.json")) as f:
    tok_config = json.load(f)
  assert (tok_config["bos_token"], tok_config["eos_token"]) == ("<s>", "</s>")
  tokenizer = transformers.AutoTokenizer.from_pretrained(out)
  sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "sp.model"))
  assert tokenizer("the lazy dog")["input_ids"][1:] == sp.encode("the lazy dog")
