"""Instruction and chat data: JSONL examples as documents whose loss counts the answer tokens only.

A line is {"prompt": str, "completion": str} or {"messages": [{"role": "system"|"user"|"assistant",
"content": str}, ...]} (other keys are ignored). Every line of every matching file is checked when the source is
built, before training starts; a malformed one raises InstructDataError naming the file, line and field.

Chat template (plain text; the batcher adds <s> before and </s> after every document):
  each turn is "<Role>: <content>" with Role in System, User, Assistant;
  a system or user turn ends with "\n\n"; an assistant turn ends with </s> (the vocabulary's EOS), trained.
A prompt/completion line is rendered as its prompt followed by its completion and </s>: no markers are added.
Loss weights are 1 on assistant contents (completions) and their </s>, 0 on everything else, so the batcher's
loss_mask keeps exactly those targets.
"""

from __future__ import annotations

import json
from typing import Callable, Sequence

import numpy as np

from fot_jax.data import corpus_files

ROLES = ("system", "user", "assistant")
TURN_END = "\n\n"

Segment = tuple[str, bool]  # (text, trained)


class InstructDataError(ValueError):
  """A malformed instruction/chat JSONL line (the message names the file, the line number and the field)."""


def role_header(role: str) -> str:
  """The plain-text marker that starts a turn: 'User: ' for role 'user'."""
  return f"{role.capitalize()}: "


def _fail(path: str, lineno: int, field: str, expected: str, found) -> InstructDataError:
  shown = repr(found) if not isinstance(found, (dict, list)) else type(found).__name__
  return InstructDataError(f"{path}:{lineno}: field {field!r}: expected {expected}, found {shown[:60]}")


def _string(record: dict, key: str, path: str, lineno: int, field: str) -> str:
  if key not in record:
    raise _fail(path, lineno, field, "a string", "nothing (missing)")
  if not isinstance(record[key], str):
    raise _fail(path, lineno, field, "a string", record[key])
  return record[key]


def parse_record(record, path: str, lineno: int) -> list[Segment]:
  """The (text, trained) segments of one decoded JSONL line, in order; raises InstructDataError if malformed."""
  if not isinstance(record, dict):
    raise _fail(path, lineno, "<line>", "a JSON object", record)
  has_pair, has_messages = "prompt" in record or "completion" in record, "messages" in record
  if has_pair == has_messages:
    raise _fail(path, lineno, "<line>", "either 'prompt' and 'completion' or 'messages'",
                "both" if has_pair else f"keys {sorted(record)}")
  if has_pair:
    prompt = _string(record, "prompt", path, lineno, "prompt")
    completion = _string(record, "completion", path, lineno, "completion")
    if not completion:
      raise _fail(path, lineno, "completion", "a non-empty string", completion)
    return [(prompt, False), (completion, True)]
  messages = record["messages"]
  if not isinstance(messages, list) or not messages:
    raise _fail(path, lineno, "messages", "a non-empty list of {role, content} objects", messages)
  segments: list[Segment] = []
  for i, m in enumerate(messages):
    field = f"messages[{i}]"
    if not isinstance(m, dict):
      raise _fail(path, lineno, field, "an object with 'role' and 'content'", m)
    role = _string(m, "role", path, lineno, f"{field}.role")
    if role not in ROLES:
      raise _fail(path, lineno, f"{field}.role", f"one of {list(ROLES)}", role)
    content = _string(m, "content", path, lineno, f"{field}.content")
    if role == "assistant":
      segments += [(role_header(role), False), (content, True)]
    else:
      segments.append((role_header(role) + content + TURN_END, False))
  if not any(trained for _, trained in segments):
    raise _fail(path, lineno, "messages", "at least one 'assistant' turn (the tokens that carry loss)",
                "none")
  return segments


def read_examples(pattern: str, split: str) -> list[list[Segment]]:
  """Segments of every line of the files matching pattern ('{split}' replaced by split; plain, .gz or .zst, any
  fsspec path), validated up front."""
  examples = []
  for path in corpus_files.files("instruct", pattern, split):
    for lineno, line in corpus_files.jsonl_lines(path):
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        raise _fail(path, lineno, "<line>", "one JSON object per line", f"invalid JSON ({e.msg})") from None
      examples.append(parse_record(record, path, lineno))
  if not examples:
    raise InstructDataError(f"instruct data: the files matching {pattern.replace('{split}', split)!r} hold no "
                            f"examples")
  return examples


def tokenize(segments: Sequence[Segment], encode: Callable[[str], Sequence[int]], eos_id: int | None
             ) -> dict[str, np.ndarray]:
  """One example as a batcher document: 'targets', 'loss_weights' and 'eos_loss_weight' (its closing </s>, added
  by the batcher, is trained). A trained segment ends with </s>, except the last (the batcher's closes it)."""
  ids, weights = [], []
  for j, (text, trained) in enumerate(segments):
    piece = list(encode(text)) if text else []
    if trained and eos_id is not None and j < len(segments) - 1:
      piece.append(eos_id)
    ids += piece
    weights += [float(trained)] * len(piece)
  return {"targets": np.asarray(ids, np.int32), "loss_weights": np.asarray(weights, np.float32),
          "eos_loss_weight": float(segments[-1][1])}


def generation_prompt(messages: Sequence[dict], encode: Callable[[str], Sequence[int]], eos_id: int | None
                      ) -> list[int]:
  """Token ids (without BOS) that prompt a model trained on this template for the next assistant turn."""
  segments = parse_record({"messages": [*messages, {"role": "assistant", "content": ""}]}, "<messages>", 1)
  return list(tokenize(segments[:-1], encode, eos_id)["targets"])  # up to the open assistant turn's marker


class InstructDocuments:
  """The tokenized examples of an 'instruct:<glob>' split (all tokenized once, on construction)."""

  def __init__(self, examples: Sequence[Sequence[Segment]], encode: Callable[[str], Sequence[int]],
               eos_id: int | None):
    self.docs = [tokenize(s, encode, eos_id) for s in examples]
    self.lengths = np.array([len(d["targets"]) for d in self.docs], np.int64)

  def __len__(self) -> int:
    return len(self.docs)

  def __getitem__(self, i: int) -> dict:
    return self.docs[i]


def parse_name(name: str) -> str:
  """'instruct:<glob>' -> the glob."""
  pattern = name[len("instruct:"):]
  if not pattern:
    raise ValueError(f"{name!r}: expected 'instruct:<glob of .jsonl files>' ('{{split}}' is replaced by the split)")
  return pattern

