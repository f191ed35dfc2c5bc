"""Instruction/chat JSONL: loss weights on answers only through the batcher, the chat template, and errors that
name the file, line and field of a malformed line."""

import json

import numpy as np
import pytest

from fot_jax.data import instruct
from fot_jax.data.batcher import BatcherConfig, DocumentBatcher

BOS, EOS = 1, 2


def encode(text):
  return [b + 3 for b in text.encode()]


def decode(ids):
  return bytes(int(i) - 3 for i in ids).decode()


def _write(path, records):
  path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
  return str(path)


def _stream(docs, seq_len, k=1, steps=None):
  """All targets and loss weights of one stream (batch_size = k: one slot), in stream order."""
  cfg = BatcherConfig(batch_size=k, seq_len=seq_len, k=k, shuffle=False, num_epochs=1, bos_id=BOS, eos_id=EOS)
  batches = list(DocumentBatcher(docs, cfg))
  targets = np.concatenate([b["targets"].reshape(-1) for b in batches])
  weights = np.concatenate([b["loss_mask"].reshape(-1) for b in batches])
  return targets, weights


PAIR = {"prompt": "Question: 2 + 3?\nAnswer: ", "completion": "5"}
CHAT = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                     {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Sum 1 2"},
                     {"role": "assistant", "content": "3"}], "id": "extra keys are ignored"}


def test_prompt_tokens_carry_zero_loss_and_completion_tokens_carry_loss(tmp_path):
  _write(tmp_path / "train.jsonl", [PAIR, CHAT])
  docs = instruct.InstructDocuments(instruct.read_examples(str(tmp_path / "{split}.jsonl"), "train"), encode, EOS)
  # seq_len 8 with k = 2: every example spans several chunks and batches, the weights follow the tokens
  targets, weights = _stream(docs, seq_len=8, k=2)
  trained = targets[weights > 0]
  want = encode("5") + [EOS] + encode("Hello") + [EOS] + encode("3") + [EOS]
  np.testing.assert_array_equal(trained, want)
  untrained = [int(t) for t, w in zip(targets, weights) if w == 0 and t > EOS]  # real text targets only
  want_prompt = (PAIR["prompt"] + "System: Be brief.\n\nUser: Hi\n\nAssistant: User: Sum 1 2\n\nAssistant: ")
  assert decode(untrained) == want_prompt


def test_chat_template_renders_role_markers_and_eos():
  segments = instruct.parse_record(CHAT, "f.jsonl", 1)
  doc = instruct.tokenize(segments, encode, EOS)
  ids = list(doc["targets"])
  first_eos = ids.index(EOS)
  assert decode(ids[:first_eos]) == "System: Be brief.\n\nUser: Hi\n\nAssistant: Hello"
  assert decode(ids[first_eos + 1:]) == "User: Sum 1 2\n\nAssistant: 3"  # the batcher adds the closing EOS
  assert doc["eos_loss_weight"] == 1.0


def test_generation_prompt_is_the_training_prefix_before_the_answer():
  doc = instruct.tokenize(instruct.parse_record(CHAT, "f.jsonl", 1), encode, EOS)
  last_answer = len(doc["targets"]) - len(encode("3"))
  prompt = instruct.generation_prompt(CHAT["messages"][:-1], encode, EOS)
  assert prompt == list(doc["targets"][:last_answer])
  assert decode(prompt[-len("Assistant: "):]) == "Assistant: "


def test_an_example_ending_on_a_user_turn_leaves_its_closing_eos_untrained():
  record = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                         {"role": "user", "content": "c"}]}
  doc = instruct.tokenize(instruct.parse_record(record, "f.jsonl", 1), encode, EOS)
  targets, weights = _stream([doc], seq_len=64)
  closing = int(np.flatnonzero(targets == EOS)[-1])
  assert weights[closing] == 0 and targets[weights > 0].tolist() == encode("b") + [EOS]


@pytest.mark.parametrize("line, field", [
    ("{not json", "<line>"),
    ("[1, 2]", "<line>"),
    ({"text": "plain"}, "<line>"),
    ({"prompt": "p", "completion": "c", "messages": []}, "<line>"),
    ({"prompt": "p"}, "completion"),
    ({"prompt": 3, "completion": "c"}, "prompt"),
    ({"prompt": "p", "completion": ""}, "completion"),
    ({"messages": "hi"}, "messages"),
    ({"messages": [{"role": "user", "content": "q"}, "answer"]}, "messages[1]"),
    ({"messages": [{"role": "bot", "content": "q"}]}, "messages[0].role"),
    ({"messages": [{"role": "assistant", "content": None}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "q"}]}, "messages"),
])
def test_a_malformed_line_names_file_line_and_field(tmp_path, line, field):
  path = _write(tmp_path / "train.jsonl", [PAIR, line])
  with pytest.raises(instruct.InstructDataError) as e:
    instruct.read_examples(str(tmp_path / "{split}.jsonl"), "train")
  message = str(e.value)
  assert message.startswith(f"{path}:2: field {field!r}: expected "), message
  assert "\n" not in message


def test_missing_or_empty_files_are_refused(tmp_path):
  with pytest.raises(FileNotFoundError, match="no files match"):
    instruct.read_examples(str(tmp_path / "{split}.jsonl"), "validation")
  _write(tmp_path / "train.jsonl", ["", "  "])
  with pytest.raises(instruct.InstructDataError, match="no examples"):
    instruct.read_examples(str(tmp_path / "{split}.jsonl"), "train")
  with pytest.raises(ValueError, match="instruct:<glob"):
    instruct.parse_name("instruct:")


def test_shipped_sample_parses_with_both_formats():
  from fot_jax.configs.experiments import instruct_fot
  pattern = instruct.parse_name(instruct_fot.get_config().data.task)
  for split in ("train", "validation"):
    examples = instruct.read_examples(pattern, split)
    assert len(examples) >= 40
    assert any(text.startswith("User: ") for ex in examples for text, _ in ex)
    assert any(text.startswith("Question: ") for ex in examples for text, _ in ex)


def test_compressed_files_read_through_the_corpus_reader_with_line_numbers(tmp_path):
  from tests.data.corpus_fixtures import write_jsonl
  path = write_jsonl(str(tmp_path / "train.jsonl.gz"), [PAIR, CHAT])
  (tmp_path / "plain").mkdir()
  plain = _write(tmp_path / "plain" / "train.jsonl", [PAIR, "", CHAT])
  assert instruct.read_examples(str(tmp_path / "{split}.jsonl.gz"), "train") == \
      instruct.read_examples(plain, "train")
  write_jsonl(path, [PAIR, {"messages": [{"role": "bot", "content": "q"}]}])
  with pytest.raises(instruct.InstructDataError, match=rf"{path}:2: field 'messages\[0\].role'"):
    instruct.read_examples(path, "train")
