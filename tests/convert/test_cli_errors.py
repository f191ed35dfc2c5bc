"""Bad requests fail early with a message naming the field, a non-zero exit, and nothing overwritten."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.convert import tiny

from fot_jax import export as export_cli
from fot_jax.convert import __main__ as convert_cli
from fot_jax.train.checkpoint import save_params_checkpoint


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("ckpt"))
  config = tiny.tiny_config(mem_layers=())
  save_params_checkpoint(path, tiny.tiny_params(config), config)
  return path


def test_export_refuses_non_empty_out(workdir, tmp_path, capsys):
  out = tmp_path / "out"
  out.mkdir()
  (out / "keep.txt").write_text("mine")
  assert export_cli.main([f"--workdir={workdir}", f"--out={out}"]) == 2
  assert "--overwrite" in capsys.readouterr().err
  assert sorted(os.listdir(out)) == ["keep.txt"]
  assert export_cli.main([f"--workdir={workdir}", f"--out={out}", "--overwrite"]) == 0
  assert (out / "keep.txt").read_text() == "mine" and (out / "model.safetensors").exists()


@pytest.mark.parametrize("argv,message", [
    (["--dtype=float8"], "dtype"),
    (["--max_shard_size=lots"], "lots"),
    (["--step=7"], "step 7"),
])
def test_export_bad_flags(workdir, tmp_path, capsys, argv, message):
  assert export_cli.main([f"--workdir={workdir}", f"--out={tmp_path / 'out'}"] + argv) == 2
  assert message in capsys.readouterr().err
  assert not (tmp_path / "out").exists()


def test_export_refuses_ablations(tmp_path, capsys):
  config = tiny.tiny_config(qk_norm=True)
  save_params_checkpoint(str(tmp_path / "ckpt"), tiny.tiny_params(config), config)
  assert export_cli.main([f"--workdir={tmp_path / 'ckpt'}", f"--out={tmp_path / 'out'}"]) == 2
  assert "qk_norm" in capsys.readouterr().err


def test_convert_bad_requests(workdir, tmp_path, capsys):
  assert convert_cli.main(["--from=hf", str(tmp_path / "missing"), f"--out={tmp_path / 'a'}"]) == 2
  assert "missing" in capsys.readouterr().err
  assert convert_cli.main(["--from=hf", str(tmp_path), f"--out={workdir}"]) == 2  # existing checkpoint
  assert "not empty" in capsys.readouterr().err
  (tmp_path / "hf").mkdir()
  assert convert_cli.main(["--from=hf", str(tmp_path / "hf"), f"--out={tmp_path / 'b'}"]) == 2
  assert "config.json" in capsys.readouterr().err
  assert convert_cli.main(["--from=hf", str(tmp_path / "hf"), f"--out={tmp_path / 'b'}", "--dtype=int4"]) == 2
  assert "dtype" in capsys.readouterr().err


def test_entry_points_exit_non_zero(tmp_path):
  env = dict(os.environ, HF_HUB_OFFLINE="1", JAX_PLATFORMS="cpu")
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  for module in ("fot_jax.export", "fot_jax.convert"):
    args = ([f"--workdir={tmp_path / 'none'}", f"--out={tmp_path / 'o'}"] if module == "fot_jax.export"
            else ["--from=hf", str(tmp_path / "none"), f"--out={tmp_path / 'o'}"])
    proc = subprocess.run([sys.executable, "-m", module] + args, capture_output=True, text=True, cwd=root,
                          env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "none" in proc.stderr
