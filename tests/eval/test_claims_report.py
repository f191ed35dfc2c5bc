"""claims_report reads the code experiment's result files per seed into one table and figure."""

import json

import pytest

from fot_jax.eval import claims_report


def _write(folder, name, result):
  (folder / f"{name}.json").write_text(json.dumps(result))


def _seed_files(folder, seed, r64=(0.03, 0.05, 0.1), multi=((3.0, 3.3), (3.0, 3.1))):
  contexts = [2, 8, 64]
  for v, r in zip(claims_report.VARIANTS, r64):
    _write(folder, f"code_s{seed}_{v}.distraction", {"task": "distraction", "contexts": contexts,
                                                        "context_length": 64, "layers": {"2": {"r": [0.6, 0.3, r]}}})
  for v, (first, last) in zip(("d1", "negatives"), multi):
    _write(folder, f"code_s{seed}_{v}.ppl_multi", {"task": "perplexity", "mode": "multi", "loss": [first, last],
                                                     "memory_tokens": [0.0, 8192.0]})
    single = {"task": "perplexity", "mode": "single", "context_lengths": [32, 64, 128, 256], "tokens": [1, 1, 2, 6]}
    _write(folder, f"code_s{seed}_{v}.ppl_single", {**single, "loss": [9.0, 9.0, 2.0, 3.0]})
    _write(folder, f"code_s{seed}_{v}.ppl_single_off", {**single, "loss": [9.0, 9.0, 4.0, 4.0]})


def test_beyond_local_weights_buckets_past_the_local_context_by_tokens():
  single = {"context_lengths": [32, 64, 128, 256], "loss": [9.0, 9.0, 2.0, 3.0], "tokens": [1, 1, 2, 6]}
  assert claims_report.beyond_local(single, 64) == pytest.approx((2 * 2 + 3 * 6) / 8)


def test_rows_and_table(tmp_path):
  _seed_files(tmp_path, 0)
  _seed_files(tmp_path, 1, r64=(0.02, 0.04, 0.2))
  rows = [claims_report.seed_row(str(tmp_path), s) for s in (0, 1)]
  assert rows[1]["r_negatives"] == 0.2 and rows[0]["r_local"] == 0.03
  assert rows[0]["single_negatives_on"] == pytest.approx(2.75) and rows[0]["single_negatives_off"] == 4.0
  text = claims_report.table(rows)
  assert "| 1 | 0.020 / 0.040 / 0.200 |" in text
  assert "3.000 -> 3.300 (+10.0%)" in text and "(+3.3%)" in text


def test_main_writes_figure(tmp_path, capsys):
  _seed_files(tmp_path, 0)
  figure = tmp_path / "claims.png"
  assert claims_report.main([f"--results={tmp_path}", "--seeds=0", f"--figure={figure}"]) == 0
  assert figure.stat().st_size > 0 and "| 0 |" in capsys.readouterr().out


def test_missing_seed_is_one_line_error(tmp_path, capsys):
  _seed_files(tmp_path, 0)
  assert claims_report.main([f"--results={tmp_path}", "--seeds=0,3"]) == 2
  err = capsys.readouterr().err
  assert "code_s3_local.distraction.json: missing" in err and err.count("\n") == 1
