"""README.md model card of a Hugging Face export, generated from the run config recorded with the checkpoint:
base model, FoT settings, memory layers, training tokens, vocabulary, and how to load it with and without memory."""

from __future__ import annotations

import os
from typing import Any

CARD_FILE = "README.md"


def _section(run_config: dict, name: str) -> dict:
  value = run_config.get(name)
  return value if isinstance(value, dict) else {}


def tokens_seen(run_config: dict, step: int) -> int | None:
  """Training tokens up to `step`: step * data.batch_size * data.seq_len; None when the run recorded no data."""
  data = _section(run_config, "data")
  if not data.get("batch_size") or not data.get("seq_len"):
    return None
  return int(step) * int(data["batch_size"]) * int(data["seq_len"])


def _crossbatch(fot: dict) -> str:
  if not fot:
    return "not recorded (a converted checkpoint)"
  if fot.get("plan") == "mix":
    after = f", then `{fot['mix_after']}` from step {fot.get('switch_step')}" if fot.get("mix_after") else ""
    return f"k={fot.get('k')}, per-position mix `{fot.get('mix')}`{after}"
  schedule = fot.get("d_schedule", "fixed")
  d = {"fixed": f"d={fot.get('d')}",
       "switch": f"d={fot.get('d')}, then d={fot.get('d_after')} from step {fot.get('switch_step')}",
       "sample": f"d sampled from {list(fot.get('d_choices') or ())}"}.get(schedule, f"d_schedule={schedule}")
  return f"k={fot.get('k')}, released plan ({d}, stepping={fot.get('stepping')})"


def model_card(run_config: dict[str, Any], step: int) -> str:
  """The card's Markdown text for the checkpoint of `step` trained (or converted) with `run_config`."""
  model, data = _section(run_config, "model"), _section(run_config, "data")
  fot = _section(run_config, "fot")
  mem_layers = list(model.get("mem_layers") or ())
  tokens = tokens_seen(run_config, step)
  rows = [
      ("Base model (init_from)", run_config.get("init_from") or "none (trained from scratch or converted)"),
      ("Checkpoint step", step),
      ("Training tokens seen", f"{tokens:,}" if tokens is not None else "not recorded"),
      ("Layers / hidden size / heads (kv heads)",
       f"{model.get('num_layers')} / {model.get('hidden_size')} / {model.get('num_heads')} "
       f"({model.get('num_kv_heads') or model.get('num_heads')})"),
      ("Memory layers", mem_layers or "none (plain LLaMA)"),
      ("Memory keys positional (mem_positionals)", model.get("mem_positionals")),
      ("Local context W / last context length",
       f"{model.get('max_position_embeddings')} / {model.get('last_context_length')}"),
      ("RoPE", f"theta {model.get('rope_theta')}, scaling {model.get('rope_scaling') or 'none'}"),
      ("FoT crossbatch", _crossbatch(fot)),
      ("Data task / vocabulary", f"{data.get('task', 'not recorded')} / {data.get('vocab', 'not recorded')}"),
      ("Batch per step (entries x tokens)", f"{data.get('batch_size')} x {data.get('seq_len')}" if data else "n/a"),
  ]
  table = "\n".join(f"| {k} | {v} |" for k, v in rows)
  return f"""---
library_name: transformers
tags: [llama, focused-transformer, longllama, fot_jax]
---
# FoT (LongLLaMA) model exported by fot_jax

A LLaMA model trained with the Focused Transformer (FoT): memory layers {mem_layers or '(none)'} attend to a
memory of earlier context (keys and values of evicted windows) in the same softmax as their local context.

| | |
|---|---|
{table}

## Loading

With memory (the bundled `modeling_longllama_fot.py`, needs `trust_remote_code=True`; works offline):
```python
from transformers import AutoModelForCausalLM, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained("PATH")
model = AutoModelForCausalLM.from_pretrained("PATH", trust_remote_code=True)
ids = tokenizer("...", return_tensors="pt").input_ids
out = model.generate(ids, max_new_tokens=64, do_sample=True, temperature=0.8, top_p=0.9)
```
Long inputs are split into windows of {model.get('max_position_embeddings')} tokens; earlier windows enter the
memory. Set `mem_top_k` in config.json (or pass `mem_top_k=K` to `from_pretrained`) to read only the top K
memory keys per query. Beam search is not supported.

Without memory (plain LLaMA, short contexts up to {model.get('max_position_embeddings')} tokens):
```python
from transformers import LlamaForCausalLM
model = LlamaForCausalLM.from_pretrained("PATH")
```
"""


def write_model_card(out_dir: str, run_config: dict[str, Any], step: int) -> str:
  with open(os.path.join(out_dir, CARD_FILE), "w") as f:
    f.write(model_card(run_config, step))
  return CARD_FILE
