"""Evaluator flags for memory at scale: --mem_shards (memory sharded over devices), the IVF index
(--ivf_nlist/--ivf_nprobe) and sampling in `generate`."""

import json

import pytest

from fot_jax.eval import generate, passkey, perplexity


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


def _passkey(tiny_checkpoint, tmp_path, *flags):
  out = tmp_path / ("pk" + "".join(f.replace("-", "_").replace("=", "") for f in flags) + ".json")  # one per run
  rc = passkey.main([f"--checkpoint={tiny_checkpoint}", f"--out={out}", "--lengths=280", "--depths=0,1",
                     "--samples=1", "--quiet", "--topk=4", *flags])
  return rc, (json.loads(out.read_text()) if rc == 0 else None)


def test_passkey_through_an_ivf_index_probing_every_list_equals_exact_top_k(tiny_checkpoint, tmp_path, capsys):
  rc, exact = _passkey(tiny_checkpoint, tmp_path)
  assert rc == 0, capsys.readouterr().err
  rc, indexed = _passkey(tiny_checkpoint, tmp_path, "--ivf_nlist=4", "--ivf_nprobe=4")
  assert rc == 0, capsys.readouterr().err
  assert indexed["model"]["ivf_nlist"] == 4 and exact["model"]["ivf_nlist"] is None
  assert len(indexed["cases"]) == len(exact["cases"]) == 2
  for a, b in zip(indexed["cases"], exact["cases"]):
    assert a["answer_logprob"] == pytest.approx(b["answer_logprob"], abs=1e-4)
    assert {k: v for k, v in a.items() if k != "answer_logprob"} == {k: v for k, v in b.items()
                                                                     if k != "answer_logprob"}


@pytest.mark.parametrize("flags, name", [
    (["--ivf_nlist=4", "--ivf_nprobe=2"], "--topk"),  # an index asked for with dense memory
    (["--topk=4", "--ivf_nlist=4", "--ivf_nprobe=5"], "--ivf_nprobe"),
    (["--topk=4", "--ivf_nlist=4"], "--ivf_nprobe"),
    (["--topk=4", "--ivf_nprobe=2"], "--ivf_nlist"),
    (["--topk=4", "--ivf_nlist=0", "--ivf_nprobe=1"], "--ivf_nlist"),
    (["--topk=4", "--approx_topk", "--ivf_nlist=4", "--ivf_nprobe=1"], "--approx_topk"),
    (["--topk=4", "--ivf_nlist=4", "--ivf_nprobe=1", "--mem_shards=3"], "--mem_shards"),
    (["--topk=4", "--ivf_balance=1.25"], "--ivf_balance"),  # a cap without the index
    (["--topk=4", "--ivf_nlist=4", "--ivf_nprobe=1", "--ivf_balance=0.5"], "--ivf_balance"),
])
def test_bad_index_flags_name_the_flag_in_passkey_and_perplexity(tiny_checkpoint, tmp_path, capsys, flags, name):
  for task in (passkey, perplexity):
    rc = task.main([f"--checkpoint={tiny_checkpoint}", f"--out={tmp_path / 'x.json'}", "--quiet", *flags])
    assert rc == 2, task
    assert name in capsys.readouterr().err, (task, flags)
    assert not (tmp_path / "x.json").exists()
