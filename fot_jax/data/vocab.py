"""Vocabularies: SentencePiece from any path (local or gs://), seqio.ByteVocabulary, 'ids:<size>' (no tokenizer,
for sources that are already token ids), Hugging Face tokenizers ('hf:<path>', fot_jax.data.hf_vocab), and a
deterministic SentencePiece trainer for the offline corpora so the default run has a real subword vocabulary.

LLaMA conventions: <unk>=0, <s>=1, </s>=2, no pad piece. seqio adds no BOS and its SentencePiece vocabulary
reports pad_id 0 (LLaMA's <unk>): the batcher adds BOS/EOS itself and uses explicit masks, never "id 0 = pad".
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterable, Iterator

UNK_ID, BOS_ID, EOS_ID = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class VocabConfig:
  """`name`: 'byte', 'ids:<size>', a SentencePiece model path (local or gs://), '<corpus>_sp<size>' (trained
  on demand), or 'hf:<dir or tokenizer.json>' (a Hugging Face `tokenizers` vocabulary)."""

  name: str = "stdlib_sp2000"
  data_dir: str | None = None  # fot_jax data dir for trained models; default corpora.default_data_dir()
  max_sentences: int = 60_000  # bound on training lines: keeps training a few seconds
  max_sentence_chars: int = 2048


@dataclasses.dataclass(frozen=True)
class IdVocabulary:
  """No tokenizer: `vocab_size` ids with LLaMA's specials, for sources that already yield ids (random:,
  repeat:random:..., dict_lookup). Needs neither seqio nor TensorFlow, so such runs start in seconds anywhere."""

  vocab_size: int
  bos_id: int = BOS_ID
  eos_id: int = EOS_ID

  def encode(self, text: str):
    raise ValueError(f"vocabulary 'ids:{self.vocab_size}' has no tokenizer and cannot encode text ({text[:40]!r}); "
                     "use it only with id sources (random:, repeat:random:..., dict_lookup) or name a "
                     "SentencePiece vocabulary")

  def decode(self, ids) -> str:
    return " ".join(str(int(i)) for i in ids)


def parse_id_vocabulary(name: str) -> IdVocabulary | None:
  """'ids:<size>' -> IdVocabulary(size) (size > EOS_ID); None for other names."""
  if not name.startswith("ids:"):
    return None
  size = name[len("ids:"):]
  if not size.isdigit() or int(size) <= EOS_ID:
    raise ValueError(f"vocabulary {name!r}: expected 'ids:<size>' with size > {EOS_ID}, e.g. 'ids:2000'")
  return IdVocabulary(int(size))


def _exists(path: str) -> bool:
  if path.startswith("gs://"):
    import tensorflow as tf
    return tf.io.gfile.exists(path)
  return os.path.exists(path)


def load_sentencepiece(path: str):
  """seqio SentencePieceVocabulary from a local or gs:// path, with a clear error when it is missing."""
  import seqio
  if not _exists(path):
    raise FileNotFoundError(f"SentencePiece model not found at {path!r}")
  return seqio.SentencePieceVocabulary(path)


def special_ids(vocab) -> tuple[int | None, int | None]:
  """(bos_id, eos_id) the batcher should add; ByteVocabulary has no BOS (None)."""
  if vocab is None or isinstance(vocab, IdVocabulary):
    return getattr(vocab, "bos_id", None), getattr(vocab, "eos_id", None)
  import seqio
  if isinstance(vocab, seqio.ByteVocabulary):
    return None, vocab.eos_id
  if isinstance(vocab, seqio.SentencePieceVocabulary):
    bos = vocab.tokenizer.bos_id()
    return (bos if bos >= 0 else None), vocab.eos_id
  return getattr(vocab, "bos_id", None), getattr(vocab, "eos_id", None)


def check_model_vocab(vocab, model_vocab_size: int) -> None:
  """Raises if token ids of `vocab` would index past the model's embedding table."""
  if vocab.vocab_size > model_vocab_size:
    raise ValueError(f"vocabulary/model mismatch: the vocabulary has {vocab.vocab_size} ids but "
                     f"model.vocab_size={model_vocab_size}; set model.vocab_size >= {vocab.vocab_size}")


def _sentences(texts: Iterable[str], max_sentences: int, max_chars: int) -> Iterator[str]:
  """Deterministic bounded sample of non-empty lines: an even stride over the documents' lines."""
  lines = [ln[:max_chars] for t in texts for ln in t.splitlines() if ln.strip()]
  if not lines:
    raise ValueError("cannot train a SentencePiece model: the corpus has no non-empty lines")
  stride = max(1, len(lines) // max_sentences)
  return iter(lines[::stride][:max_sentences])


def train_sentencepiece(texts: Iterable[str], model_path: str, vocab_size: int = 2000,
                        max_sentences: int = 60_000, max_sentence_chars: int = 2048) -> str:
  """Trains a LLaMA-style BPE model (byte fallback, unk=0 bos=1 eos=2, no pad) deterministically."""
  import sentencepiece as spm
  os.makedirs(os.path.dirname(os.path.abspath(model_path)), exist_ok=True)
  prefix = model_path[:-len(".model")] if model_path.endswith(".model") else model_path
  tmp_prefix = f"{prefix}.tmp{os.getpid()}"
  spm.SentencePieceTrainer.train(
      sentence_iterator=_sentences(texts, max_sentences, max_sentence_chars), model_prefix=tmp_prefix,
      vocab_size=vocab_size, model_type="bpe", character_coverage=0.9995, byte_fallback=True,
      unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID, pad_id=-1, split_digits=True, allow_whitespace_only_pieces=True,
      remove_extra_whitespaces=False, normalization_rule_name="identity", shuffle_input_sentence=False,
      input_sentence_size=0, max_sentence_length=max_sentence_chars * 4, num_threads=1,
      minloglevel=2)
  from sentencepiece import sentencepiece_model_pb2
  proto = sentencepiece_model_pb2.ModelProto()
  with open(f"{tmp_prefix}.model", "rb") as f:
    proto.ParseFromString(f.read())
  proto.trainer_spec.model_prefix = os.path.basename(prefix)  # the temp name would make the bytes differ
  with open(f"{tmp_prefix}.model", "wb") as f:
    f.write(proto.SerializeToString())
  os.replace(f"{tmp_prefix}.model", f"{prefix}.model")  # atomic: concurrent runs never see half a file
  os.replace(f"{tmp_prefix}.vocab", f"{prefix}.vocab")
  return f"{prefix}.model"


def parse_trained_name(name: str) -> tuple[str, int] | None:
  """'stdlib_sp2000' -> ('stdlib', 2000); None for other names."""
  corpus, sep, size = name.rpartition("_sp")
  if sep and corpus and size.isdigit():
    return corpus, int(size)
  return None


def trained_model_path(corpus: str, vocab_size: int, data_dir: str | None = None) -> str:
  from fot_jax.data import corpora
  return os.path.join(data_dir or corpora.default_data_dir(), "vocab", f"{corpus}_sp{vocab_size}.model")


def ensure_trained(corpus: str, vocab_size: int, data_dir: str | None = None, max_sentences: int = 60_000,
                   max_sentence_chars: int = 2048, force: bool = False) -> str:
  """Path of the corpus's SentencePiece model, training it on the train split first if missing (idempotent)."""
  from fot_jax.data import corpora
  path = trained_model_path(corpus, vocab_size, data_dir)
  if force or not os.path.exists(path):
    texts = (t for _, t in corpora.corpus_documents(corpus, "train", data_dir))
    train_sentencepiece(texts, path, vocab_size, max_sentences, max_sentence_chars)
  return path


def build_vocabulary(cfg: VocabConfig | str):
  """The vocabulary named by cfg: 'byte', 'ids:<size>', a SentencePiece path, '<corpus>_sp<size>' or 'hf:<path>'."""
  cfg = VocabConfig(name=cfg) if isinstance(cfg, str) else cfg
  ids = parse_id_vocabulary(cfg.name)
  if ids is not None:
    return ids
  if cfg.name.startswith("hf:"):
    from fot_jax.data.hf_vocab import HFVocabulary
    return HFVocabulary(cfg.name[len("hf:"):])
  import seqio
  if cfg.name == "byte":
    return seqio.ByteVocabulary()
  trained = parse_trained_name(cfg.name)
  if trained and not cfg.name.endswith(".model"):
    return load_sentencepiece(ensure_trained(*trained, data_dir=cfg.data_dir, max_sentences=cfg.max_sentences,
                                             max_sentence_chars=cfg.max_sentence_chars))
  return load_sentencepiece(cfg.name)
