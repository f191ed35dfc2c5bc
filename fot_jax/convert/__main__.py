"""`python -m fot_jax.convert --from=hf|easylm SRC --out=DIR`: import LLaMA-family weights as an orbax checkpoint.

The output is the checkpoint.py layout (<DIR>/checkpoints/0/{state, config, data_state}) that `fot_jax.train`
fine-tunes from via `init_from=DIR`. FoT fields missing from the source (plain LLaMA has no memory layers) come
from flags; everything else from the source's config.json, or, for EasyLM, from the tensor shapes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Any

from fot_jax.model.config import PRESETS, parse_mem_layers

SHAPE_FIELDS = ("vocab_size", "hidden_size", "num_heads", "num_kv_heads", "num_layers", "intermediate_size")


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m fot_jax.convert", description=__doc__.splitlines()[0])
  p.add_argument("src", help="HF model folder (--from=hf) or EasyLM msgpack file (--from=easylm)")
  p.add_argument("--from", dest="source", required=True, choices=("hf", "easylm"))
  p.add_argument("--out", required=True, help="new checkpoint workdir (absent or empty unless --overwrite)")
  p.add_argument("--overwrite", action="store_true",
                 help="replace the checkpoints of an existing --out (removed only once the import has succeeded)")
  p.add_argument("--dtype", default="float32", help="stored parameter dtype: float32|bfloat16|float16")
  p.add_argument("--mem_layers", default=None, help="comma-separated 0-based memory layers, e.g. 6,12,18")
  p.add_argument("--mem_positionals", default=None, choices=("first", "none"))
  p.add_argument("--mem_dtype", default=None, help="memory dtype for inference (float32|bfloat16|float16)")
  p.add_argument("--last_context_length", type=int, default=None)
  p.add_argument("--window", type=int, default=None, help="W (max_position_embeddings)")
  # EasyLM checkpoints carry no config: a preset or the head count (the rest is inferred from shapes).
  p.add_argument("--preset", default=None, help=f"easylm: model preset, one of {sorted(PRESETS)}")
  p.add_argument("--num_heads", type=int, default=None, help="easylm: number of attention heads")
  p.add_argument("--rope_theta", type=float, default=None)
  p.add_argument("--norm_eps", type=float, default=None)
  return p


def _overrides(args) -> dict[str, Any]:
  out: dict[str, Any] = {}
  if args.mem_layers is not None:
    try:
      out["mem_layers"] = parse_mem_layers(args.mem_layers)
    except ValueError as e:
      raise ValueError(f"--mem_layers: expected comma-separated integers, found {args.mem_layers!r}") from e
  for flag, field in (("mem_positionals", "mem_positionals"), ("mem_dtype", "mem_dtype"),
                      ("last_context_length", "last_context_length"), ("window", "max_position_embeddings"),
                      ("rope_theta", "rope_theta"), ("norm_eps", "norm_eps")):
    if getattr(args, flag) is not None:
      out[field] = getattr(args, flag)
  return out


def run(args) -> str:
  """Validates cheap things first, then converts and saves; returns the checkpoint directory."""
  from fot_jax.convert.safetensors_io import numpy_dtype
  numpy_dtype(args.dtype)
  if os.path.exists(args.out) and not os.path.isdir(args.out):
    raise FileExistsError(f"--out {args.out} exists and is not a directory")
  if os.path.isdir(args.out) and os.listdir(args.out) and not args.overwrite:
    raise FileExistsError(f"--out {args.out} exists and is not empty; pass --overwrite to replace its checkpoints")
  overrides = _overrides(args)
  extra: dict[str, Any] = {"source": {"format": args.source, "path": os.path.abspath(args.src)}}
  if args.source == "hf":
    from fot_jax.convert import hf
    if not os.path.isdir(args.src):
      raise FileNotFoundError(f"SRC {args.src}: no such HF model folder")
    hf.read_hf_config(args.src)
    params, config = hf.load_hf_folder(args.src, args.dtype, **overrides)
    sp_model = os.path.join(args.src, "tokenizer.model")
    if os.path.isfile(sp_model):
      extra["data"] = {"sentencepiece_model": os.path.abspath(sp_model)}
  else:
    from fot_jax.convert import easylm
    if not os.path.isfile(args.src):
      raise FileNotFoundError(f"SRC {args.src}: no such EasyLM checkpoint file")
    fields: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    if args.preset is not None:
      if args.preset not in PRESETS:
        raise ValueError(f"--preset: expected one of {sorted(PRESETS)}, found {args.preset!r}")
      preset = PRESETS[args.preset]
      # Dimensions the file must have (num_kv_heads None = no GQA); the rest of the preset fills the config.
      expected = {k: preset.get(k) for k in SHAPE_FIELDS if k != "num_heads"}
      fields = {k: v for k, v in preset.items() if k not in SHAPE_FIELDS}
    num_heads = args.num_heads or (PRESETS[args.preset]["num_heads"] if args.preset else None)
    if not num_heads:
      raise ValueError("--num_heads (or --preset) is required for --from=easylm: the head count is not in the file")
    fields.update(overrides)
    params, config = easylm.load_easylm(args.src, num_heads, args.dtype, expected, **fields)
  if config.last_context_length > config.max_position_embeddings:
    raise ValueError(f"last_context_length={config.last_context_length} exceeds the window "
                     f"W={config.max_position_embeddings}")
  from fot_jax.train.checkpoint import checkpoint_dir, save_params_checkpoint
  if args.overwrite and os.path.isdir(checkpoint_dir(args.out)):
    shutil.rmtree(checkpoint_dir(args.out))
  from fot_jax.model.modules import FoTLlama
  model = FoTLlama.from_params(config, to_device(params))  # names and shapes checked against the config
  return save_params_checkpoint(args.out, model.params(), model.config, step=0, extra_config=extra)


def to_device(tree: dict[str, Any]) -> dict[str, Any]:
  """numpy tree -> jax arrays, releasing each numpy leaf as it goes (peak ~1x the model, not 2x).

  Orbax records a sharding only for jax.Arrays; checkpoint.load_params restores without one, so numpy leaves
  would save but not restore.
  """
  import jax
  out = {}
  for key in list(tree):
    value = tree.pop(key)
    out[key] = to_device(value) if isinstance(value, dict) else jax.device_put(value)
    del value
  return out


def main(argv=None) -> int:
  from fot_jax import cli, platforms
  platforms.use_cpu_without_accelerators()
  parser = build_parser()
  cli.add_debug_flag(parser)
  args = parser.parse_args(argv)

  def body() -> None:
    print(f"wrote {run(args)}")
  return cli.run(body, prog="fot_jax.convert", debug=args.debug, also=cli.INPUT_ERRORS)


if __name__ == "__main__":
  sys.exit(main())
