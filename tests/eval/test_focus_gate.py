"""The focus gate reads a distraction result and passes or fails on r_d * d."""

import json

import pytest

from fot_jax.eval import focus_gate


def _result(r_layer1, contexts=(2, 8, 64)):
  return {"task": "distraction", "contexts": list(contexts),
          "layers": {"1": {"r": list(r_layer1)}, "2": {"r": [1 / d for d in contexts]}}}


def _run(tmp_path, result, *flags):
  path = tmp_path / "r.json"
  path.write_text(json.dumps(result))
  return focus_gate.main([str(path), *flags])


def test_focus_is_r_times_d():
  assert focus_gate.focus(_result([0.6, 0.2, 0.03]), 1, 64) == pytest.approx(1.92)


def test_passes_when_every_d_clears(tmp_path, capsys):
  assert _run(tmp_path, _result([0.6, 0.195, 0.026]), "--layer=1", "--d=8,64", "--min_focus=1.3") == 0
  assert "pass" in capsys.readouterr().out


def test_fails_when_one_d_falls_short(tmp_path, capsys):
  # focused at d=64 (1.4/d) but not at d=8 (1.0/d): the gate needs both
  assert _run(tmp_path, _result([0.5, 0.126, 0.022]), "--layer=1", "--d=8,64", "--min_focus=1.3") == 1
  out = capsys.readouterr().out
  assert "FAIL" in out and "d=8" in out and "d=64" not in out.split("FAIL")[1].split(";")[0]


def test_chance_layer_fails(tmp_path):
  assert _run(tmp_path, _result([0.5, 0.125, 1 / 64]), "--layer=2", "--d=64") == 1


@pytest.mark.parametrize("flags, message", [(["--layer=3"], "layer 3 not measured"),
                                            (["--layer=1", "--d=16"], "d=16 not measured"),
                                            (["--layer=1", "--d=x"], "--d")])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, flags, message):
  assert _run(tmp_path, _result([0.6, 0.2, 0.03]), *flags) == 2
  assert message in capsys.readouterr().err


def test_wrong_task_refused(tmp_path, capsys):
  assert _run(tmp_path, {"task": "passkey"}, "--layer=1") == 2
  assert "distraction" in capsys.readouterr().err
