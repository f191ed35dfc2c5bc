"""Hugging Face `tokenizers` vocabularies ('hf:<dir or tokenizer.json>') as seqio vocabularies, and the files an
export needs so that `AutoTokenizer.from_pretrained(export_dir)` loads them without remote code.

BOS/EOS come from the tokenizer: tokenizer_config.json's bos_token/eos_token when the folder (or the
tokenizer.json's folder) has one, else the first of the usual special tokens the vocabulary holds. Text is
encoded without the tokenizer's own specials: the batcher adds BOS/EOS around every document.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import seqio
import tensorflow as tf

BOS_CANDIDATES = ("<s>", "<|begin_of_text|>", "<bos>", "<|startoftext|>")
EOS_CANDIDATES = ("</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>")
UNK_CANDIDATES = ("<unk>", "<|unk|>")
CONFIG_FILE, TOKENIZER_FILE = "tokenizer_config.json", "tokenizer.json"
COPIED_FILES = (TOKENIZER_FILE, "special_tokens_map.json")
FAST_CLASS = "PreTrainedTokenizerFast"


def tokenizer_file(path: str) -> str:
  """The tokenizer.json a 'hf:' path names (a folder holding one, or the file itself)."""
  file = os.path.join(path, TOKENIZER_FILE) if os.path.isdir(path) else path
  if not os.path.isfile(file):
    raise FileNotFoundError(f"vocabulary 'hf:{path}': no tokenizer.json at {file!r}")
  return file


def _token_content(value) -> str | None:
  """A tokenizer_config.json special token: a string or {'content': ...}."""
  return value.get("content") if isinstance(value, dict) else value


def read_tokenizer_config(file: str) -> dict:
  path = os.path.join(os.path.dirname(file), CONFIG_FILE)
  if not os.path.isfile(path):
    return {}
  with open(path) as f:
    return json.load(f)


class HFVocabulary(seqio.Vocabulary):
  """A `tokenizers.Tokenizer` behind seqio's interface; `bos_id`/`eos_id`/`unk_id` from the tokenizer."""

  def __init__(self, path: str):
    import tokenizers
    self.path = os.path.abspath(path)
    self.tokenizer_file = tokenizer_file(self.path)
    self.tokenizer = tokenizers.Tokenizer.from_file(self.tokenizer_file)
    self.config = read_tokenizer_config(self.tokenizer_file)
    self._bos = self._special("bos_token", BOS_CANDIDATES)
    self._eos = self._special("eos_token", EOS_CANDIDATES)
    self._unk = self._special("unk_token", UNK_CANDIDATES)
    if self._eos is None:
      raise ValueError(f"vocabulary 'hf:{path}': the tokenizer has no EOS token (none of {list(EOS_CANDIDATES)}); "
                       f"set eos_token in {CONFIG_FILE} next to {self.tokenizer_file}")
    super().__init__()

  def _special(self, key: str, candidates) -> int | None:
    named = _token_content(self.config.get(key))
    if named is not None:
      token_id = self.tokenizer.token_to_id(named)
      if token_id is None:
        raise ValueError(f"vocabulary 'hf:{self.path}': {CONFIG_FILE} {key}={named!r} is not in the vocabulary")
      return token_id
    ids = (self.tokenizer.token_to_id(t) for t in candidates)
    return next((i for i in ids if i is not None), None)

  def token(self, token_id: int | None) -> str | None:
    return None if token_id is None else self.tokenizer.id_to_token(token_id)

  @property
  def bos_id(self) -> int | None:
    return self._bos

  @property
  def eos_id(self) -> int:
    return self._eos

  @property
  def unk_id(self) -> int | None:
    return self._unk

  @property
  def _base_vocab_size(self) -> int:
    return self.tokenizer.get_vocab_size(with_added_tokens=True)

  def _encode(self, s: str) -> list[int]:
    return self.tokenizer.encode(s, add_special_tokens=False).ids

  def _decode(self, ids) -> str:
    return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)

  def _encode_tf(self, s):
    def encode(text) -> np.ndarray:  # a bytes scalar in graphs, a str array in eager mode
      value = np.asarray(text).item()
      return np.asarray(self._encode(value.decode("utf-8") if isinstance(value, bytes) else value), np.int32)
    ids = tf.numpy_function(encode, [s], tf.int32, stateful=False)
    ids.set_shape([None])
    return ids

  def _decode_tf(self, ids):
    def decode(values: np.ndarray) -> bytes:
      return self._decode(values.tolist()).encode("utf-8")
    text = tf.numpy_function(decode, [ids], tf.string, stateful=False)
    text.set_shape([])
    return text

  def __eq__(self, other) -> bool:
    return isinstance(other, HFVocabulary) and self.tokenizer.to_str() == other.tokenizer.to_str()

  def __hash__(self) -> int:
    return hash(self.tokenizer_file)


def write_export_files(out_dir: str, path: str, model_max_length: int) -> list[str]:
  """Copies the training tokenizer's files into an export folder with a tokenizer_config.json naming a
  tokenizer class (the fast class unless the source names one), so AutoTokenizer never asks for remote code."""
  file = tokenizer_file(path)
  vocab = HFVocabulary(path)
  written = []
  for name in COPIED_FILES:
    src = file if name == TOKENIZER_FILE else os.path.join(os.path.dirname(file), name)
    if os.path.isfile(src):
      shutil.copyfile(src, os.path.join(out_dir, name))
      written.append(name)
  config = {k: v for k, v in vocab.config.items() if k != "auto_map"}
  config.setdefault("tokenizer_class", FAST_CLASS)
  config.setdefault("model_max_length", int(model_max_length))
  for key, token_id in (("bos_token", vocab.bos_id), ("eos_token", vocab.eos_id), ("unk_token", vocab.unk_id)):
    if token_id is not None:
      config.setdefault(key, vocab.token(token_id))
  with open(os.path.join(out_dir, CONFIG_FILE), "w") as f:
    json.dump(config, f, indent=2)
    f.write("\n")
  return written + [CONFIG_FILE]
