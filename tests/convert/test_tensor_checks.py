"""Weights that disagree with their config are refused, naming the tensors: an extra layer, a missing layer or a
misshaped tensor in an HF folder (import and evaluation), an EasyLM file or an orbax step; damaged files are
named; --overwrite guards convert's --out."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from tests.convert import tiny

from fot_jax.convert import __main__ as convert_cli
from fot_jax.convert import easylm, hf
from fot_jax.convert.checks import ConversionError, tensor_problems
from fot_jax.eval.loading import load_model
from fot_jax.train import checkpoint as ckpt
from fot_jax.train.errors import UnreadableCheckpointError


@pytest.fixture(scope="module")
def model():
  config = tiny.tiny_config(num_layers=3, mem_layers=(1,))
  return config, tiny.tiny_params(config)


@pytest.fixture(scope="module")
def hf_folder(model, tmp_path_factory):
  folder = str(tmp_path_factory.mktemp("hf") / "model")
  hf.write_hf_folder(folder, model[1], model[0])
  return folder


def _edited_copy(folder, tmp_path, **config_changes):
  copy = str(tmp_path / "copy")
  shutil.copytree(folder, copy)
  path = os.path.join(copy, "config.json")
  with open(path) as f:
    config = json.load(f)
  config.update(config_changes)
  with open(path, "w") as f:
    json.dump(config, f)
  return copy


def test_problems_list_the_first_few_names_and_count():
  expected = {f"t{i}": (2,) for i in range(6)}
  found = {**{f"t{i}": (2,) for i in range(1, 5)}, "t5": (3,), "x0": (1,), "x1": (1,), "x2": (1,), "x3": (1,)}
  assert tensor_problems(found, expected) == ["1 missing: t0", "4 unexpected: x0, x1, x2 (+1 more)",
                                              "1 misshaped: t5 (3,) (expected (2,))"]
  assert tensor_problems(expected, expected) == []


@pytest.mark.parametrize("changes,named", [
    ({"num_hidden_layers": 2}, "9 unexpected: model.layers.2."),  # the weights hold a layer config.json lacks
    ({"num_hidden_layers": 4}, "9 missing: model.layers.3."),
    ({"intermediate_size": 128}, "misshaped: model.layers.0.mlp.gate_proj.weight (96, 64) (expected (128, 64))"),
])
def test_hf_weights_must_match_config_json(hf_folder, tmp_path, capsys, changes, named):
  copy = _edited_copy(hf_folder, tmp_path, **changes)
  with pytest.raises(ConversionError, match="the tensors do not match config.json") as info:
    load_model(copy)  # evaluation's loader
  assert named in str(info.value) and copy in str(info.value)
  out = tmp_path / "out"
  assert convert_cli.main(["--from=hf", copy, f"--out={out}"]) == 2  # import
  err = capsys.readouterr().err
  assert named in err and len(err.strip().splitlines()) == 1
  assert not os.path.exists(ckpt.checkpoint_dir(str(out)))


def test_unchanged_hf_folder_still_loads(hf_folder, model):
  loaded = load_model(hf_folder)
  np.testing.assert_allclose(np.asarray(loaded.params["layers"]["q_proj"]),
                             np.asarray(model[1]["layers"]["q_proj"]), rtol=1e-6)


def test_damaged_files_are_named(hf_folder, tmp_path, capsys):
  copy = _edited_copy(hf_folder, tmp_path)
  weights = os.path.join(copy, "model.safetensors")
  with open(weights, "r+b") as f:
    f.truncate(os.path.getsize(weights) // 2)
  assert convert_cli.main(["--from=hf", copy, f"--out={tmp_path / 'a'}"]) == 2
  assert f"{weights}: truncated safetensors file" in capsys.readouterr().err
  with open(os.path.join(copy, "config.json"), "w") as f:
    f.write("{vocab_size: 3")
  assert convert_cli.main(["--from=hf", copy, f"--out={tmp_path / 'b'}"]) == 2
  assert f"{os.path.join(copy, 'config.json')}: not valid JSON" in capsys.readouterr().err


def test_easylm_file_with_a_misshaped_tensor(model, tmp_path):
  config, params = model
  path = str(tmp_path / "streaming_params")
  bad = {**params, "norm": np.ones(config.hidden_size + 1, np.float32)}
  easylm.save_easylm_streaming(path, bad, config)
  with pytest.raises(ConversionError, match=r"1 misshaped: transformer/ln_f/kernel \(65,\) \(expected \(64,\)\)"):
    easylm.load_easylm(path, config.num_heads)


def test_orbax_step_whose_tensors_disagree_with_its_config(model, tmp_path):
  """A step holding 3 layers whose stored config says 2 (as evaluation and export load it): refused, naming them."""
  config, params = model
  workdir = str(tmp_path / "ckpt")
  ckpt.save_params_checkpoint(workdir, params, config, extra_config={"model": config.replace(num_layers=2).to_dict()})
  with pytest.raises(UnreadableCheckpointError, match=r"wrong structure: .*misshaped: params/layers/\w+ \(3, "):
    ckpt.load_params(workdir)


def test_convert_refuses_existing_out_unless_overwrite(hf_folder, tmp_path, capsys):
  out = str(tmp_path / "out")
  assert convert_cli.main(["--from=hf", hf_folder, f"--out={out}"]) == 0
  before = ckpt.all_steps(out)
  assert convert_cli.main(["--from=hf", hf_folder, f"--out={out}"]) == 2
  assert "--overwrite" in capsys.readouterr().err
  assert convert_cli.main(["--from=hf", hf_folder, f"--out={out}", "--overwrite"]) == 0
  assert ckpt.all_steps(out) == before == [0]
