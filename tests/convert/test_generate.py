"""generate() of the exported PyTorch FoT model through transformers' GenerationMixin, against fot_jax's memory
inference: sampling, repetition penalty, left-padded batches, stop strings, pipeline, half precision, top-k
memory from config.json, beam search refused."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests.convert import tiny

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from fot_jax.convert import hf  # noqa: E402
from fot_jax.model.inference import MemoryInference, MemoryOptions  # noqa: E402

TOL = 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """(folder, fot_jax params, config) of a tiny FoT model: W=16, LCL=8, memory layers 1 and 2."""
  config = tiny.tiny_config()
  params = tiny.tiny_params(config, seed=1)
  out = str(tmp_path_factory.mktemp("generate") / "export")
  hf.write_hf_folder(out, params, config)
  return out, params, config


def load(folder, **kw):
  model = transformers.AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True, **kw).eval()
  assert type(model).__name__ == "LongLlamaForCausalLM"
  return model


def long_tensor(a):
  return torch.tensor(np.asarray(a), dtype=torch.long)


def reference_step_logits(params, config, prompt, valid, new_tokens, options=MemoryOptions()) -> np.ndarray:
  """fot_jax's next-token logits [steps, B, V] along given new tokens [B, steps]: encode, then one step each."""
  runner = MemoryInference(params, config, batch=prompt.shape[0], initial_capacity=64, options=options)
  logits = [np.asarray(runner.encode(prompt, valid))[:, -1]]
  for tok in np.asarray(new_tokens)[:, :-1].T:
    logits.append(np.asarray(runner.step(tok[:, None]))[:, -1])
  return np.stack(logits)


def test_sampling_follows_fot_jax_logits_through_memory(exported):
  out, params, config = exported
  model = load(out)
  prompt = tiny.tokens(2, 13, seed=3)  # 13 + 12 new tokens: the local cache (W=16) is flushed into memory
  greedy = model.generate(long_tensor(prompt), max_new_tokens=12, eos_token_id=None)
  torch.manual_seed(0)
  sampled = model.generate(long_tensor(prompt), max_new_tokens=12, eos_token_id=None, do_sample=True,
                           temperature=0.8, top_p=0.9, top_k=50, return_dict_in_generate=True, output_logits=True)
  new = sampled.sequences[:, 13:].numpy()
  assert new.shape == (2, 12) and not np.array_equal(new, greedy[:, 13:].numpy())
  theirs = torch.stack(sampled.logits).numpy()  # [steps, B, V], before the logits processors
  ours = reference_step_logits(params, config, prompt, np.ones(prompt.shape, bool), new)
  assert np.abs(theirs - ours).max() <= TOL
  torch.manual_seed(0)
  again = model.generate(long_tensor(prompt), max_new_tokens=12, eos_token_id=None, do_sample=True,
                         temperature=0.8, top_p=0.9, top_k=50)
  assert torch.equal(again, sampled.sequences)  # seeded sampling is reproducible
  one = model.generate(long_tensor(prompt), max_new_tokens=12, eos_token_id=None, do_sample=True, top_k=1)
  assert torch.equal(one, greedy)  # top_k=1 sampling is greedy


def test_repetition_penalty(exported):
  model = load(exported[0])
  prompt = tiny.tokens(1, 10, seed=4)
  out = model.generate(long_tensor(prompt), max_new_tokens=20, eos_token_id=None, repetition_penalty=1e6)
  seq = out[0].tolist()
  assert len(set(seq[10:])) == 20 and not set(seq[10:]) & set(seq[:10])  # no token seen before comes again
  plain = model.generate(long_tensor(prompt), max_new_tokens=20, eos_token_id=None)
  assert not torch.equal(plain, out)


def test_left_padded_short_batch_equals_each_row_alone(exported):
  model = load(exported[0])
  rows = [tiny.tokens(1, 6, seed=5)[0], tiny.tokens(1, 10, seed=6)[0]]
  ids = np.zeros((2, 10), np.int64)
  mask = np.zeros((2, 10), np.int64)
  for i, r in enumerate(rows):
    ids[i, 10 - len(r):], mask[i, 10 - len(r):] = r, 1
  batch = model.generate(long_tensor(ids), attention_mask=long_tensor(mask), max_new_tokens=5, eos_token_id=None)
  for i, r in enumerate(rows):  # 10 + 5 tokens fit in the window: no flush, so each row alone is the same
    alone = model.generate(long_tensor(r[None]), max_new_tokens=5, eos_token_id=None)
    assert batch[i, 10:].tolist() == alone[0, len(r):].tolist()


def test_left_padded_long_batch_matches_fot_jax_and_keeps_padding_out_of_memory(exported):
  out, params, config = exported
  model = load(out)
  rows = [tiny.tokens(1, 9, seed=7)[0], tiny.tokens(1, 21, seed=8)[0]]
  ours = MemoryInference(params, config, batch=2, initial_capacity=64).generate(rows, max_new_tokens=10)
  ids = np.zeros((2, 21), np.int64)
  mask = np.zeros((2, 21), np.int64)
  for i, r in enumerate(rows):
    ids[i, 21 - len(r):], mask[i, 21 - len(r):] = r, 1
  res = model.generate(long_tensor(ids), attention_mask=long_tensor(mask), max_new_tokens=10, eos_token_id=None,
                       return_dict_in_generate=True)
  np.testing.assert_array_equal(res.sequences[:, 21:].numpy(), ours)
  # The prompt's first 13 tokens (21 - LCL 8) went to memory: row 0's 12 padded positions are invalid keys there.
  mem_valid = (res.cache if hasattr(res, "cache") else res.past_key_values).mem_valid.numpy()
  assert mem_valid.shape[1] >= 13
  np.testing.assert_array_equal(mem_valid[:, :13], mask[:, :13].astype(bool))


@pytest.fixture(scope="module")
def exported_with_tokenizer(tmp_path_factory):
  """A tiny FoT export over the test BPE vocabulary (300 tokens, BOS 2, EOS 3) with its tokenizer files."""
  from fot_jax.data.hf_vocab import write_export_files
  from tests.data.hf_bpe import train_bpe
  root = tmp_path_factory.mktemp("generate_tok")
  config = tiny.tiny_config(vocab_size=300, bos_token_id=2, eos_token_id=3)
  out = str(root / "export")
  hf.write_hf_folder(out, tiny.tiny_params(config, seed=2), config)
  write_export_files(out, train_bpe(root / "bpe"), config.max_position_embeddings)
  return out


def test_stop_strings(exported_with_tokenizer):
  out = exported_with_tokenizer
  tok = transformers.AutoTokenizer.from_pretrained(out)
  model = load(out)
  ids = tok("def function_3(x):", return_tensors="pt")["input_ids"]
  full = model.generate(ids, max_new_tokens=12, eos_token_id=None)[0, ids.shape[1]:].tolist()
  stop_at = next(i for i in range(2, len(full)) if tok.decode(full[i:i + 1]).strip())
  stop = tok.decode(full[stop_at:stop_at + 1])
  cut = model.generate(ids, max_new_tokens=12, eos_token_id=None, stop_strings=[stop], tokenizer=tok)
  new = cut[0, ids.shape[1]:].tolist()
  assert len(new) <= stop_at + 1 and new == full[:len(new)] and tok.decode(new).endswith(stop)


def test_text_generation_pipeline(exported_with_tokenizer):
  out = exported_with_tokenizer
  pipe = transformers.pipeline("text-generation", model=out, trust_remote_code=True, device="cpu")
  assert type(pipe.model).__name__ == "LongLlamaForCausalLM"
  prompt = "def function_7(x):\n    return"
  text = pipe(prompt, max_new_tokens=8, do_sample=False)[0]["generated_text"]
  ids = pipe.tokenizer(prompt, return_tensors="pt")["input_ids"]
  expected = pipe.model.generate(ids, max_new_tokens=8, do_sample=False)[0, ids.shape[1]:]
  assert text == prompt + pipe.tokenizer.decode(expected) and len(text) > len(prompt)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_loading(exported, dtype):
  out, _, _ = exported
  model = load(out, dtype=getattr(torch, dtype))
  assert model.model.layers[0].self_attn.q_proj.weight.dtype == getattr(torch, dtype)
  toks = tiny.tokens(2, 45, seed=9)  # windowed, memory in use
  half = tiny.torch_logits(model, toks)
  full = tiny.torch_logits(load(out), toks)
  assert np.isfinite(half).all() and np.abs(half - full).max() <= 0.1 * np.abs(full).max()
  assert model.generate(long_tensor(toks[:, :13]), max_new_tokens=6, eos_token_id=None).shape == (2, 19)


def test_top_k_memory_from_config_json_matches_fot_jax(exported, tmp_path):
  out, params, config = exported
  folder = tmp_path / "topk"
  folder.mkdir()
  for name in os.listdir(out):
    (folder / name).write_bytes(open(os.path.join(out, name), "rb").read())
  cfg = json.loads((folder / "config.json").read_text())
  assert cfg["mem_top_k"] is None  # dense by default
  cfg["mem_top_k"] = 3
  (folder / "config.json").write_text(json.dumps(cfg))
  model = load(str(folder))
  assert model.config.mem_top_k == 3
  toks = tiny.tokens(2, 45, seed=10)  # 37 tokens in memory, 3 read per query and head
  valid = np.ones(toks.shape, bool)
  valid[1, :5] = False
  mask = torch.tensor(valid.astype(np.int64))
  ref = np.asarray(MemoryInference(params, config, batch=2, initial_capacity=64,
                                   options=MemoryOptions(topk=3)).encode(toks, valid))
  theirs = tiny.torch_logits(model, toks, attention_mask=mask)
  assert np.abs(ref - theirs)[valid].max() <= TOL
  dense = tiny.torch_logits(load(out), toks, attention_mask=mask)
  assert np.abs(dense - theirs)[valid].max() > 1e-3  # top-k changes the result: the setting is honoured
  prompt = tiny.tokens(2, 13, seed=11)
  ours = MemoryInference(params, config, batch=2, initial_capacity=64,
                         options=MemoryOptions(topk=3)).generate(prompt, max_new_tokens=10)
  gen = model.generate(long_tensor(prompt), max_new_tokens=10, eos_token_id=None)
  np.testing.assert_array_equal(gen[:, 13:].numpy(), ours)


def test_bad_mem_top_k_and_beam_search_are_refused(exported):
  out, _, _ = exported
  with pytest.raises(ValueError, match="mem_top_k: expected a positive integer"):
    load(out, mem_top_k=0)
  model = load(out)
  with pytest.raises(ValueError, match=r"num_beams=2\): beam search is not supported"):
    model.generate(long_tensor(tiny.tokens(1, 5)), max_new_tokens=3, num_beams=2)
