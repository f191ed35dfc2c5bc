"""The main job end to end at test size (QUICK=1): two training stages, the summary table, the export; a rerun
keeps every result."""

import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(workdir):
  env = {**os.environ, "QUICK": "1", "SKIP_INSTALL": "1", "WORKDIR": str(workdir)}
  return subprocess.run(["bash", "scripts/quickstart.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=900)


@pytest.mark.timeout(1200)
def test_quickstart_runs_both_stages_then_the_summary_and_the_export(tmp_path):
  done = _run(tmp_path)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert [row["target_tokens"] for row in summary["passkey"]] == [512, 1024]
  for row in summary["passkey"]:
    assert row["tokens"] > 400 and all(0.0 <= row[k] <= 1.0 for k in ("memory_on", "memory_off", "baseline"))
  assert set(summary["loss_beyond_local"]) == {"memory_on", "memory_off", "baseline"}
  assert all(v > 0 for v in summary["loss_beyond_local"].values())
  assert set(summary["loss_beyond_local_by_corpus"]) == {"landmark:4500-9000", "stdlib"}
  assert set(summary["r_d"]) == {"2", "4"} and all(0.0 < v < 1.0 for v in summary["r_d"].values())
  assert summary["r_d_by_variant"]["memory_off"] is None  # r_d is a property of the memory layer, not of memory
  assert "passkey accuracy" in done.stdout and "memory_on" in done.stdout  # the table is printed
  assert (tmp_path / "summary.png").stat().st_size > 0
  config = json.loads((tmp_path / "hf" / "config.json").read_text())
  assert config["mem_layers"] == [2] and config["mem_positionals"] is False
  stamp = (tmp_path / "summary.json").stat().st_mtime_ns
  again = _run(tmp_path)  # resumes (nothing left to train) and keeps results and export
  assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
  assert "exists, kept" in again.stdout and (tmp_path / "summary.json").stat().st_mtime_ns == stamp
