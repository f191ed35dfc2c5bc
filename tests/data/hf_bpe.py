"""A small byte-level BPE tokenizer trained offline with `tokenizers`, for the 'hf:' vocabulary tests."""

import json
import os

TEXTS = [f"def function_{i}(x):\n    return x * {i} + {i * i}  # value {i}\n" for i in range(200)]
SPECIALS = ["<pad>", "<unk>", "<|begin_of_text|>", "<|end_of_text|>"]  # BOS 2, EOS 3: not LLaMA's 1, 2


def train_bpe(directory, config=None):
  """A 300-token byte-level BPE trained on TEXTS; tokenizer.json (+ tokenizer_config.json) in directory."""
  from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
  tok = Tokenizer(models.BPE(unk_token="<unk>"))
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  tok.train_from_iterator(TEXTS, trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIALS,
                                                     initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                     show_progress=False))
  os.makedirs(directory, exist_ok=True)
  tok.save(os.path.join(directory, "tokenizer.json"))
  if config is not None:
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
      json.dump(config, f)
  return str(directory)
