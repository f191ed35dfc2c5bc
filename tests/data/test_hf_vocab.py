"""Hugging Face tokenizers as data vocabularies ('hf:<dir or tokenizer.json>'): a small BPE trained offline,
BOS/EOS from the tokenizer, the seqio path, and export files that AutoTokenizer loads without remote code."""

import json
import os

import numpy as np
import pytest

from fot_jax.data import pipeline
from fot_jax.data.vocab import build_vocabulary, special_ids

from tests.data.hf_bpe import TEXTS, train_bpe


@pytest.fixture(scope="module")
def bpe_dir(tmp_path_factory):
  return train_bpe(tmp_path_factory.mktemp("bpe"))


def test_bos_eos_come_from_the_tokenizer(bpe_dir, tmp_path):
  vocab = build_vocabulary(f"hf:{bpe_dir}")
  assert special_ids(vocab) == (2, 3) and vocab.unk_id == 1 and vocab.vocab_size == 300
  file_vocab = build_vocabulary(f"hf:{os.path.join(bpe_dir, 'tokenizer.json')}")  # the file itself works too
  assert special_ids(file_vocab) == (2, 3)
  named = train_bpe(tmp_path / "named", {"bos_token": "<pad>", "eos_token": {"content": "<unk>"}})
  assert special_ids(build_vocabulary(f"hf:{named}")) == (0, 1)  # tokenizer_config.json wins


def test_encode_decode_round_trip_without_specials(bpe_dir):
  vocab = build_vocabulary(f"hf:{bpe_dir}")
  ids = vocab.encode(TEXTS[7])
  assert 2 not in ids and 3 not in ids and len(ids) < len(TEXTS[7]) / 2  # subwords, no added specials
  assert vocab.decode(ids) == TEXTS[7]
  np.testing.assert_array_equal(vocab.encode_tf(TEXTS[7]).numpy(), ids)


def test_clear_errors(bpe_dir, tmp_path):
  with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
    build_vocabulary(f"hf:{tmp_path / 'missing'}")
  bad = train_bpe(tmp_path / "bad", {"eos_token": "<nope>"})
  with pytest.raises(ValueError, match="eos_token='<nope>' is not in the vocabulary"):
    build_vocabulary(f"hf:{bad}")


def test_text_corpus_batches_with_the_tokenizers_specials(bpe_dir, tmp_path):
  for split in ("train", "validation"):
    with open(tmp_path / f"{split}.jsonl", "w") as f:
      for t in TEXTS[:20]:
        f.write(json.dumps({"text": t}) + "\n")
  vocab = build_vocabulary(f"hf:{bpe_dir}")
  batcher = pipeline.make_batcher(f"jsonl:{tmp_path}/{{split}}.jsonl", "train", vocab, batch_size=2, seq_len=64,
                                  data_dir=str(tmp_path / "data"), shuffle=False, model_vocab_size=300)
  batch = next(batcher)
  stream = batch["inputs"][0]
  assert stream[0] == 2  # BOS of the tokenizer starts the first document
  end = int(np.flatnonzero(stream == 3)[0])  # its EOS closes it
  assert vocab.decode(stream[1:end].tolist()) in TEXTS[:20]


def _export_tokenizer(bpe_dir, out, monkeypatch, model_config_json=None):
  """Writes the export's tokenizer files (and optionally a config.json) into out; AutoTokenizer loads them with
  any prompt for remote code failing the test."""
  import transformers
  from fot_jax.data.hf_vocab import write_export_files
  monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("AutoTokenizer asked to run remote code"))
  out.mkdir()
  if model_config_json is not None:
    with open(out / "config.json", "w") as f:
      json.dump(model_config_json, f)
  written = write_export_files(str(out), bpe_dir, model_max_length=64)
  assert written == ["tokenizer.json", "tokenizer_config.json"]
  return transformers.AutoTokenizer.from_pretrained(str(out))


def test_export_tokenizer_files_load_with_autotokenizer(bpe_dir, tmp_path, monkeypatch):
  tok = _export_tokenizer(bpe_dir, tmp_path / "export", monkeypatch)
  vocab = build_vocabulary(f"hf:{bpe_dir}")
  assert tok.is_fast and tok.model_max_length == 64
  assert tok.bos_token == "<|begin_of_text|>" and tok.eos_token_id == 3
  assert tok(TEXTS[3], add_special_tokens=False)["input_ids"] == vocab.encode(TEXTS[3])


def test_export_folder_loads_with_autotokenizer_without_remote_code(bpe_dir, tmp_path, monkeypatch):
  import transformers
  from fot_jax.convert import hf
  from fot_jax.model.config import ModelConfig
  config = ModelConfig(vocab_size=300, hidden_size=32, num_heads=4, num_layers=2, intermediate_size=64,
                       mem_layers=(1,))
  out = tmp_path / "export"
  tok = _export_tokenizer(bpe_dir, out, monkeypatch, hf.hf_config(config, "float32"))
  assert tok.eos_token_id == 3 and tok.is_fast
  # The config (auto_map kept for trust_remote_code) reads as plain LLaMA without remote code or a prompt.
  assert type(transformers.AutoConfig.from_pretrained(str(out))) is transformers.LlamaConfig
