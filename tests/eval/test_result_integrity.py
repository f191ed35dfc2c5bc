"""Evaluation results are never silently wrong or lost: a vocabulary that disagrees with the checkpoint's is
refused, the vocabulary used is recorded in every result JSON, and an existing --out is kept unless --overwrite."""

import json
import os

import pytest

from fot_jax import evaluate
from fot_jax.eval import common


@pytest.fixture(scope="module")
def sp_checkpoint(tmp_path_factory):
  """A tiny model whose checkpoint records a 300-piece SentencePiece vocabulary (as training does)."""
  from fot_jax.data.vocab import train_sentencepiece
  from fot_jax.model.config import preset
  from fot_jax.model.params import init_params
  from fot_jax.train.checkpoint import save_params_checkpoint
  root = tmp_path_factory.mktemp("sp_ckpt")
  words = ["alpha", "beta", "gamma", "delta", "epsilon", "return", "value", "import", "def", "class"]
  texts = [" ".join(words[(i * j) % len(words)] + str(j % 13) for j in range(60)) for i in range(200)]
  sp_model = train_sentencepiece(texts, str(root / "vocab" / "tiny_sp300.model"), vocab_size=300)
  config = preset("tiny", max_position_embeddings=32, last_context_length=16)
  path = str(root / "ckpt")
  save_params_checkpoint(path, init_params(config, 0), config,
                         extra_config={"data": {"vocab": "tiny_sp300", "sentencepiece_model": sp_model}})
  return path, sp_model


def _perplexity(checkpoint, corpus, tmp_path, out, *flags):
  return evaluate.main(["perplexity", f"--checkpoint={checkpoint}", f"--corpus=jsonl:{corpus}",
                        f"--data_dir={tmp_path / 'data'}", f"--out={out}", "--max_length=64", "--num_docs=1",
                        "--quiet", *flags])


def test_vocabulary_that_disagrees_with_the_checkpoint_is_refused(sp_checkpoint, jsonl_corpus, tmp_path, capsys):
  checkpoint, sp_model = sp_checkpoint
  out = tmp_path / "p.json"
  assert _perplexity(checkpoint, jsonl_corpus, tmp_path, out, "--vocab=byte") == 2
  err = capsys.readouterr().err
  assert "--vocab 'byte' disagrees with the vocabulary the checkpoint was trained with" in err
  assert "size 259 vs 300" in err and len(err.strip().splitlines()) == 1
  assert not out.exists()
  assert _perplexity(checkpoint, jsonl_corpus, tmp_path, out, f"--vocab={sp_model}") == 0, capsys.readouterr().err
  record = json.loads(out.read_text())["vocab"]
  assert record["name"] == sp_model and record["from"] == "--vocab" and record["size"] == 300
  assert record["bos_id"] == 1 and record["eos_id"] == 2 and len(record["sentencepiece_sha256"]) == 16


def test_every_result_records_its_vocabulary(tiny_checkpoint, jsonl_corpus, tmp_path, capsys):
  out = tmp_path / "p.json"
  assert _perplexity(tiny_checkpoint, jsonl_corpus, tmp_path, out) == 0, capsys.readouterr().err
  assert json.loads(out.read_text())["vocab"] == {"name": "byte", "from": "checkpoint", "size": 259,
                                                  "bos_id": None, "eos_id": 1}
  ids = tmp_path / "c.json"
  assert evaluate.main(["copy_distance", f"--checkpoint={tiny_checkpoint}", f"--out={ids}", "--distances=0",
                        "--num_docs=1", "--batch_size=1", "--symbols=8", "--quiet"]) == 0, capsys.readouterr().err
  assert json.loads(ids.read_text())["vocab"]["from"] == "synthetic token ids"
  with pytest.raises(ValueError, match="records no vocabulary"):
    common.write_json(str(tmp_path / "bare.json"), {"task": "x"})


def test_existing_result_is_kept_unless_overwrite(tiny_checkpoint, jsonl_corpus, tmp_path, capsys):
  out = tmp_path / "p.json"
  out.write_text("earlier result")
  assert _perplexity(tiny_checkpoint, jsonl_corpus, tmp_path, out) == 2
  assert f"--out {out} exists; pass --overwrite" in capsys.readouterr().err
  assert out.read_text() == "earlier result"
  os.remove(out)
  (tmp_path / "p.png").write_text("earlier figure")
  assert _perplexity(tiny_checkpoint, jsonl_corpus, tmp_path, out) == 2
  assert "the figure of --out" in capsys.readouterr().err and not out.exists()
  assert _perplexity(tiny_checkpoint, jsonl_corpus, tmp_path, out, "--overwrite") == 0, capsys.readouterr().err
  assert json.loads(out.read_text())["task"] == "perplexity"


def test_compile_check_refuses_existing_reports_before_compiling(tmp_path):
  from fot_jax import compile_check
  report = tmp_path / "report.json"
  report.write_text("earlier report")
  with pytest.raises(ValueError, match=f"--json {report} exists; pass --overwrite"):
    compile_check._check_writable(str(report), "--json")
  compile_check._check_writable(str(report), "--json", overwrite=True)
  assert report.read_text() == "earlier report"
