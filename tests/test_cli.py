"""User errors are one line with exit status 2 in every command, --debug shows the traceback, and a failed start
leaves no workdir behind (fot_jax.cli, fot_jax.train.config_file, fot_jax.train.config_paths)."""

import os
import subprocess
import sys

import pytest

from fot_jax.configs.experiments import tiny_fot
from fot_jax import cli, evaluate, export
from fot_jax.convert import __main__ as convert_cli
from fot_jax.convert.checks import ConversionError
from fot_jax.eval.common import EvalError
from fot_jax.train import trainer
from fot_jax.train.errors import ConfigError
from fot_jax.launch import local
from fot_jax.launch.tpu_target import LaunchError
from tests.train.common import typed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "configs/experiments/tiny_fot.py:quick"


def _command(*argv, env=None, timeout=300):
  env = {**os.environ, "PYTHONPATH": ROOT, **(env or {})}
  return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=timeout)


def _one_error_line(proc, prog: str) -> str:
  """The single stderr line of a user error (exit 2, no traceback)."""
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert proc.returncode == 2, proc.stderr
  assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
  assert lines[0].startswith(f"{prog}: error: "), lines[0]
  return lines[0]


# ---- the policy --------------------------------------------------------------------------------------------------
class _Subclassed(ConfigError):
  """A subclass added elsewhere is a user error without being listed."""


@pytest.mark.parametrize("error", [ConfigError("config.x: bad"), _Subclassed("sub"), EvalError("--flag: bad"),
                                   LaunchError("--tpu: bad"), trainer.TrainingError("stop"),
                                   ConversionError("model.safetensors: truncated")])
def test_project_errors_are_one_line_with_exit_2(error, capsys):
  def body():
    raise error
  assert cli.run(body, prog="prog") == 2
  assert capsys.readouterr().err == f"prog: error: {error}\n"


def test_other_errors_and_debug_keep_the_traceback():
  def bug():
    raise ZeroDivisionError("a bug")
  with pytest.raises(ZeroDivisionError):
    cli.run(bug, prog="prog")

  def user():
    raise ConfigError("config.x: bad")
  with pytest.raises(ConfigError):
    cli.run(user, prog="prog", debug=True)


def test_messages_spanning_lines_print_as_one(capsys):
  def body():
    raise FileNotFoundError("first\n  second\n")
  assert cli.run(body, prog="p", also=(FileNotFoundError,)) == 2
  assert capsys.readouterr().err == "p: error: first second\n"


# ---- train: config file, variant and keys --------------------------------------------------------------------------
@pytest.mark.parametrize("argv, expected", [
    ([f"--config={CONFIG}", "--config.fot.dd=3"], "config override key 'fot.dd' does not exist in the config; "
                                                   "did you mean 'fot.d'?"),
    (["--config=configs/nope.py"], "--config: no config file at 'configs/nope.py'"),
    (["--config=configs/experiments/tiny_fot.py:bogus"], "known: ['', 'quick', 'local', 'local_quick']"),
    ([f"--config={CONFIG}", "--config.data.batch_size=many"], "'data.batch_size': 'many'"),
])
def test_train_config_errors_are_one_line(tmp_path, argv, expected):
  workdir = tmp_path / "run"
  line = _one_error_line(_command("fot_jax.train", *argv, f"--workdir={workdir}"), "fot_jax.train")
  assert expected in line
  assert not workdir.exists()


def test_train_debug_shows_the_traceback(tmp_path):
  proc = _command("fot_jax.train", f"--config={CONFIG}", "--config.fot.dd=3", f"--workdir={tmp_path / 'r'}",
                  "--debug")
  assert proc.returncode != 0 and "Traceback" in proc.stderr and "did you mean 'fot.d'?" in proc.stderr


def test_config_overrides_are_collected_and_other_unknown_flags_are_usage_errors(capsys):
  import argparse
  parser = argparse.ArgumentParser(prog="p")
  cli.add_config_flag(parser)
  parser.add_argument("--workdir")
  args = cli.parse_config_args(parser, ["--config.a.b=1", "--config=c.py:v", "--workdir", "w", "--config.c", "x=y"])
  assert (args.config, args.workdir, args.config_overrides) == ("c.py:v", "w", {"a.b": "1", "c": "x=y"})
  for argv, expected in ((["--config=c.py", "--bogus=1"], "unrecognized arguments: --bogus=1"),
                         (["--config=c.py", "--config.a"], "--config.a: expected a value")):
    with pytest.raises(SystemExit) as info:
      cli.parse_config_args(parser, argv)
    assert info.value.code == 2 and expected in capsys.readouterr().err


def test_train_help_names_the_override_syntax_and_exits_0(capsys):
  from fot_jax.train import __main__ as train_cli
  with pytest.raises(SystemExit) as info:
    train_cli.main(["--help"])
  assert info.value.code == 0 and "--config.KEY=VALUE" in capsys.readouterr().out


def test_compile_check_config_errors_are_one_line():
  proc = _command("fot_jax.compile_check", f"--config={CONFIG}", "--config.fot.dd=3", "--topology=v5e:2x2")
  assert "did you mean 'fot.d'?" in _one_error_line(proc, "fot_jax.compile_check")


# ---- train: files the config names, checked before the workdir exists ----------------------------------------------
@pytest.mark.parametrize("field, value, expected", [
    ("data.vocab", "{tmp}/missing.model", "config.data.vocab: expected 'byte'"),
    ("init_from", "{tmp}/nowhere", "config.init_from: expected a training or conversion workdir"),
    ("init_from", "{tmp}", "no checkpoints/ directory in it"),
    ("data.task", "jsonl:{tmp}/none/*.jsonl", "config.data.task: no file matches"),
])
def test_missing_files_are_named_and_leave_no_workdir(tmp_path, field, value, expected):
  c = tiny_fot.get_config("quick")
  value = value.format(tmp=tmp_path)
  node = c
  for part in field.split(".")[:-1]:
    node = node[part]
  node[field.split(".")[-1]] = value
  workdir = tmp_path / "run"
  with pytest.raises(ConfigError, match=expected) as info:
    trainer.train(typed(c), str(workdir))
  assert str(tmp_path) in str(info.value)  # the path is named
  assert not workdir.exists()


def test_a_failed_start_removes_only_an_empty_workdir_it_created(tmp_path):
  empty = tmp_path / "empty" / "checkpoints"
  empty.mkdir(parents=True)
  trainer.remove_if_empty(str(tmp_path / "empty"))
  assert not (tmp_path / "empty").exists()
  kept = tmp_path / "kept"
  (kept / "checkpoints").mkdir(parents=True)
  (kept / "metrics.jsonl").write_text("{}\n")
  trainer.remove_if_empty(str(kept))
  assert (kept / "metrics.jsonl").exists()


# ---- evaluate, export, convert, launchers --------------------------------------------------------------------------
def _main_error_line(main, argv, capsys) -> str:
  """The single stderr line of a user error from an in-process main(argv) (status 2)."""
  assert main(argv) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "Traceback" not in err, err
  return err


def test_export_error_is_one_line_and_debug_raises(tmp_path, capsys):
  argv = [f"--workdir={tmp_path / 'nowhere'}", f"--out={tmp_path / 'hf'}"]
  assert _main_error_line(export.main, argv, capsys).startswith("fot_jax.export: error: --workdir")
  with pytest.raises(FileNotFoundError):
    export.main([*argv, "--debug"])


def test_evaluate_error_is_one_line(tmp_path, capsys):
  argv = ["perplexity", f"--checkpoint={tmp_path / 'nowhere'}", f"--out={tmp_path / 'r.json'}"]
  line = _main_error_line(evaluate.main, argv, capsys)
  assert line.startswith("fot_jax.evaluate perplexity: error: ") and "nowhere" in line


def test_convert_error_is_one_line(tmp_path, capsys):
  argv = ["--from=hf", str(tmp_path / "nowhere"), f"--out={tmp_path / 'ckpt'}"]
  line = _main_error_line(convert_cli.main, argv, capsys)
  assert line.startswith("fot_jax.convert: error: ") and "nowhere" in line


def test_data_and_report_commands_follow_the_policy(tmp_path, capsys):
  from fot_jax.data import cache_build
  from fot_jax.eval import claims_report, focus_gate
  line = _main_error_line(cache_build.main, ["--task=stdlib", "--vocab=byte", "--num_shards=0"], capsys)
  assert line.startswith("fot_jax.data.cache_build: error: --num_shards: expected >= 1")
  line = _main_error_line(focus_gate.main, [str(tmp_path / "none.json"), "--layer=1", "--d=8,x"], capsys)
  assert line.startswith("fot_jax.eval.focus_gate: error: --d: expected comma-separated integers")
  line = _main_error_line(claims_report.main, [f"--results={tmp_path}", "--seeds=0,x"], capsys)
  assert line.startswith("fot_jax.eval.claims_report: error: ")


def test_local_launcher_unknown_variant_is_one_line(tmp_path, capsys, monkeypatch):
  monkeypatch.chdir(ROOT)
  rc = local.main(["--config=configs/experiments/tiny_fot.py:bogus", f"--workdir={tmp_path}", "--dry-run"])
  err = capsys.readouterr().err
  assert rc == 2 and err.count("\n") == 1 and "unknown variant 'bogus'" in err and "'local_quick'" in err


def test_missing_hf_tokenizer_is_named_before_the_workdir(tmp_path):
  from fot_jax.configs.experiments import tiny_fot
  from fot_jax.train.config_paths import check_exist
  from fot_jax.train.errors import ConfigError
  config = tiny_fot.get_config("quick")
  config.data.vocab = f"hf:{tmp_path / 'nope'}"
  with pytest.raises(ConfigError, match="hf:<tokenizer folder"):
    check_exist(config)
  (tmp_path / "tok").mkdir()
  config.data.vocab = f"hf:{tmp_path / 'tok'}"
  check_exist(config)  # a folder that exists passes this check (the tokenizer itself is read later)
