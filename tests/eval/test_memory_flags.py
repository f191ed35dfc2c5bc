"""Evaluator flags for memory at scale: --mem_shards (memory sharded over devices) and sampling in `generate`."""

import json

from fot_jax.eval import generate


def _run(tiny_checkpoint, tmp_path, *flags):
  prompt = tmp_path / "prompt.txt"
  prompt.write_text("def main():\n  return " * 4)
  return generate.main([f"--checkpoint={tiny_checkpoint}", f"--prompt_file={prompt}", f"--out={tmp_path / 'g.json'}",
                        "--max_new_tokens=4", "--quiet", "--overwrite", *flags])  # runs compare two results


def test_generate_with_sharded_memory_equals_one_device(tiny_checkpoint, tmp_path, capsys):
  assert _run(tiny_checkpoint, tmp_path) == 0, capsys.readouterr().err
  one = json.loads((tmp_path / "g.json").read_text())
  assert _run(tiny_checkpoint, tmp_path, "--mem_shards=8") == 0, capsys.readouterr().err
  sharded = json.loads((tmp_path / "g.json").read_text())
  assert sharded["model"]["mem_shards"] == 8 and sharded["memory_size"] > 0
  assert sharded["new_tokens"] == one["new_tokens"]


def test_generate_sampling_flags(tiny_checkpoint, tmp_path, capsys):
  runs = []
  for seed in (0, 0):
    assert _run(tiny_checkpoint, tmp_path, "--temperature=1.0", "--top_p=0.9", f"--seed={seed}") == 0
    runs.append(json.loads((tmp_path / "g.json").read_text()))
  assert runs[0]["new_tokens"] == runs[1]["new_tokens"] and runs[0]["sampling"]["top_p"] == 0.9


def test_bad_memory_and_sampling_flags_name_the_flag(tiny_checkpoint, tmp_path, capsys):
  for flags, name in ((["--mem_shards=3"], "--mem_shards"), (["--mem_shards=0"], "--mem_shards"),
                      (["--top_p=0.5"], "--top_p"), (["--temperature=1", "--top_p=2"], "--top_p"),
                      (["--temperature=1", "--sample_top_k=0"], "--sample_top_k")):
    assert _run(tiny_checkpoint, tmp_path, *flags) == 2
    assert name in capsys.readouterr().err, flags
