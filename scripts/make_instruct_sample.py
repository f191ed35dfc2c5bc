"""Writes the toy instruction/chat sample shipped in fot_jax/data/samples/ (deterministic: seed 0).

Three kinds of examples, half as prompt/completion lines and half as chat messages: word reversal, small sums,
and a lookup whose answer sits in a list of key-value pairs earlier in the prompt (long enough to leave a short
local context, so memory layers can help). Run: python scripts/make_instruct_sample.py
"""

import json
import os

import numpy as np

WORDS = ("apple river stone cloud maple tiger lemon piano candle forest orbit velvet amber harbor quartz "
         "meadow falcon copper willow ember").split()
OUT = os.path.join(os.path.dirname(__file__), "..", "fot_jax", "data", "samples")


def example(rng: np.random.Generator) -> tuple[str, str]:
  kind = rng.integers(3)
  if kind == 0:
    words = [WORDS[i] for i in rng.choice(len(WORDS), size=int(rng.integers(3, 6)), replace=False)]
    return f"Reverse the words: {' '.join(words)}", " ".join(reversed(words))
  if kind == 1:
    a, b = (int(x) for x in rng.integers(0, 50, 2))
    return f"What is {a} + {b}?", str(a + b)
  keys = [WORDS[i] for i in rng.choice(len(WORDS), size=12, replace=False)]
  values = [int(x) for x in rng.integers(100, 1000, len(keys))]
  pairs = "\n".join(f"{k} = {v}" for k, v in zip(keys, values))
  q = int(rng.integers(len(keys)))
  return f"Remember these values.\n{pairs}\nWhat is the value of {keys[q]}?", str(values[q])


def line(rng: np.random.Generator, i: int) -> dict:
  prompt, answer = example(rng)
  if i % 2 == 0:
    return {"prompt": f"Question: {prompt}\nAnswer: ", "completion": answer}
  messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
  if i % 4 == 1:
    messages.insert(0, {"role": "system", "content": "Answer briefly."})
  return {"messages": messages}


def main():
  os.makedirs(OUT, exist_ok=True)
  for split, n, seed in (("train", 400, 0), ("validation", 40, 1)):
    rng = np.random.default_rng(seed)
    with open(os.path.join(OUT, f"instruct_{split}.jsonl"), "w") as f:
      for i in range(n):
        f.write(json.dumps(line(rng, i)) + "\n")


if __name__ == "__main__":
  main()
