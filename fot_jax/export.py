"""`python -m fot_jax.export --workdir=DIR [--step=N] --out=HF_DIR [--dtype=...]`: orbax -> Hugging Face folder.

The folder loads as `LlamaForCausalLM` (short context) and, through config.json's auto_map and the bundled
modeling file, as LongLLaMA with memory (`AutoModelForCausalLM.from_pretrained(..., trust_remote_code=True)`).
Tensors are streamed to safetensors shards one at a time. A README.md model card describes the run.
"""

from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m fot_jax.export", description=__doc__.splitlines()[0])
  p.add_argument("--workdir", required=True, help="training or conversion workdir (holds checkpoints/)")
  p.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
  p.add_argument("--out", required=True, help="output folder (absent or empty unless --overwrite)")
  p.add_argument("--dtype", default="float32", help="float32|bfloat16|float16")
  p.add_argument("--max_shard_size", default="5GB", help="shard above this size, e.g. 5GB, 500MB")
  p.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out")
  return p


def recorded_file(run_config: dict, key: str) -> str | None:
  """A tokenizer file recorded in a checkpoint's run config (config['data'][key]: 'sentencepiece_model' or
  'hf_tokenizer'); None if not recorded, an error if recorded but gone."""
  data = run_config.get("data") or {}
  path = data.get(key) if isinstance(data, dict) else None
  if path and not os.path.isfile(path):
    raise FileNotFoundError(f"config data.{key}: {path} does not exist")
  return path or None


def write_export(out: str, params, config, run_config: dict, step: int, dtype: str = "float32",
                 max_shard_size: str | int = "5GB") -> list[str]:
  """Writes the Hugging Face folder of one checkpoint: weights, config, modeling file, the tokenizer files the run
  config records, and a README.md model card. Shared by this CLI and the trainer's periodic export."""
  from fot_jax.convert import hf
  from fot_jax.convert.model_card import write_model_card
  sp_model = recorded_file(run_config, "sentencepiece_model")
  hf_tokenizer = recorded_file(run_config, "hf_tokenizer")
  written = hf.write_hf_folder(out, params, config, dtype, max_shard_size, tokenizer_model=sp_model)
  if hf_tokenizer:
    from fot_jax.data.hf_vocab import write_export_files
    written += write_export_files(out, hf_tokenizer, config.max_position_embeddings)
  return written + [write_model_card(out, run_config, step)]


def export(workdir: str, out: str, step: int | None = None, dtype: str = "float32",
           max_shard_size: str | int = "5GB", overwrite: bool = False) -> list[str]:
  """Checks the request, then writes the folder; returns the file names written."""
  from fot_jax.convert import hf, safetensors_io
  from fot_jax.model.config import ModelConfig
  from fot_jax.train import checkpoint
  safetensors_io.numpy_dtype(dtype)
  safetensors_io.parse_size(max_shard_size)
  if os.path.exists(out) and (not os.path.isdir(out) or (os.listdir(out) and not overwrite)):
    raise FileExistsError(f"--out {out} exists and is not empty; pass --overwrite to write into it")
  if not os.path.isdir(checkpoint.checkpoint_dir(workdir)):
    raise FileNotFoundError(f"--workdir {workdir}: no {checkpoint.CHECKPOINT_SUBDIR}/ directory")
  step, run_config = checkpoint.restore_config(workdir, step)
  hf.check_exportable(ModelConfig.from_dict(run_config["model"]))
  recorded_file(run_config, "sentencepiece_model")  # a vanished tokenizer fails before the weights are read
  recorded_file(run_config, "hf_tokenizer")
  from fot_jax.model.modules import FoTLlama
  params, config, _ = checkpoint.load_params(workdir, step)
  model = FoTLlama.from_params(config, params)  # names and shapes checked against the config
  return write_export(out, model.params(), model.config, run_config, step, dtype, max_shard_size)


def main(argv=None) -> int:
  from fot_jax import cli, platforms
  platforms.use_cpu_without_accelerators()
  parser = build_parser()
  cli.add_debug_flag(parser)
  args = parser.parse_args(argv)
  return cli.run(lambda: _export_and_report(args), prog="fot_jax.export", debug=args.debug, also=cli.INPUT_ERRORS)


def _export_and_report(args) -> int:
  written = export(args.workdir, args.out, args.step, args.dtype, args.max_shard_size, args.overwrite)
  stale = sorted(f for f in os.listdir(args.out)
                 if f.endswith((".safetensors", ".safetensors.index.json")) and f not in written)
  if stale:
    print(f"fot_jax.export: warning: {args.out} still holds weight files from before: {stale}; they are not "
          f"part of this export (delete them by hand)", file=sys.stderr)
  print(f"wrote {len(written)} files to {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
