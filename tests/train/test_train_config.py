"""The typed training config: every bad value fails before compilation with an error that names the field."""

import importlib

import pytest

from fot_jax.configs import base
from fot_jax.configs.experiments import dict_lookup_fot, longllama_3b_fot, longllama_7b_fot, pg19_184m_fot, tiny_fot
from fot_jax.train.config import CrossbatchConfig, TrainConfig
from fot_jax.train.errors import ConfigError
from tests.train.common import tiny_config, typed


def validate(c, num_devices=None):
  """The ModelConfig of a config that passes every check for num_devices devices."""
  return typed(c, num_devices).model


def d_values(fot):
  return CrossbatchConfig.parse(fot).d_values()


@pytest.mark.parametrize("mutate, field", [
    (lambda c: setattr(c.model, "mem_layers", (5,)), "config.model.mem_layers"),
    (lambda c: setattr(c.data, "batch_size", 7), "config.data.batch_size"),  # not a multiple of M*k = 2
    (lambda c: setattr(c.data, "batch_size", 12), "config.data.batch_size"),  # not a multiple of 8 devices
    (lambda c: (setattr(c.data, "micro_batches", 2), setattr(c.fot, "d", 4)), "config.fot.d"),  # d >= B/M
    (lambda c: setattr(c.mesh, "shape", (2, 3, 1)), "config.mesh.shape"),
    (lambda c: setattr(c.mesh, "shape", (1, 1)), "config.mesh.shape"),
    (lambda c: setattr(c.mesh, "remat", "most"), "config.mesh.remat"),
    (lambda c: setattr(c.optim, "optimizer", "sgd"), "config.optim.optimizer"),
    (lambda c: setattr(c.optim, "schedule", "linear"), "config.optim.schedule"),
    (lambda c: setattr(c.optim, "learning_rate", -1.0), "config.optim.learning_rate"),
    (lambda c: setattr(c.fot, "d_schedule", "ramp"), "config.fot.d_schedule"),
    (lambda c: (setattr(c.fot, "d_schedule", "sample"), setattr(c.fot, "d_choices", ())), "config.fot.d_choices"),
    (lambda c: (setattr(c.fot, "plan", "mix"), setattr(c.fot, "mix", "0:0,2:1")), "config.fot.mix"),
    (lambda c: (setattr(c.fot, "plan", "mix"), setattr(c.fot, "mix", "0:0,1:0"), setattr(c.fot, "mix_after", "0:0")),
     "config.fot.mix_after"),
    (lambda c: (setattr(c.fot, "plan", "mix"), setattr(c.fot, "mix", "0:0,1:7")), "config.fot.mix"),  # > B/M - k
    (lambda c: setattr(c.data, "max_docs", 3), "config.data.max_docs"),  # removed: unknown keys are refused
    (lambda c: setattr(c.checkpoint, "keep", 0), "config.checkpoint.keep"),
    (lambda c: setattr(c.log, "every_steps", -1), "config.log.every_steps"),
    (lambda c: setattr(c.distributed, "initialization_timeout", 0), "config.distributed.initialization_timeout"),
    (lambda c: (setattr(c.eval, "every_steps", 5), setattr(c.eval, "d", 16)), "config.eval.d"),
    (lambda c: setattr(c.data, "seq_len", 1000), "config.data.seq_len"),
    (lambda c: setattr(c.model, "hidden_size", 30), "config.model.hidden_size"),
    (lambda c: setattr(c, "num_steps", 0), "config.num_steps"),
    (lambda c: (setattr(c.eval, "every_steps", 5), setattr(c.eval, "batch_size", 6), setattr(c.eval, "k", 4)),
     "config.eval.batch_size"),
])
def test_errors_name_the_field(mutate, field):
  c = tiny_config()
  mutate(c)
  with pytest.raises(ConfigError) as e:
    validate(c, num_devices=8)
  assert str(e.value).startswith(field), str(e.value)


def test_tiny_configs_validate():
  validate(tiny_config(), num_devices=8)
  validate(tiny_fot.get_config(), num_devices=1)
  validate(tiny_fot.get_config("quick"), num_devices=8)


def test_longllama_configs_validate_for_a_pod():
  c3 = longllama_3b_fot.get_config()
  model = validate(c3, num_devices=64)
  assert model.mem_layers == (6, 12, 18) and c3.fot.k == 4 and c3.data.seq_len == 2048
  assert c3.data.batch_size * c3.data.seq_len == 256 * 1024  # 256K tokens per step
  c7 = longllama_7b_fot.get_config()
  model7 = validate(c7, num_devices=64)
  assert model7.mem_layers == (8, 16, 24) and d_values(c7.fot) == [7]  # max(positives + negatives) of the mix


def test_paper_small_model_configs_validate():
  c = pg19_184m_fot.get_config()
  model = validate(c, num_devices=64)
  assert model.mem_layers == (8,) and model.num_layers == 12 and model.mem_positionals == "none"
  assert d_values(c.fot) == [8, 64] and c.data.seq_len == 512
  assert 1.8e8 < model.num_params() - model.vocab_size * model.hidden_size < 1.9e8  # 184M-class with tied head
  validate(dict_lookup_fot.get_config(), num_devices=1)


def test_d_values_of_schedules():
  c = base.get_config()
  c.fot.d_schedule, c.fot.d, c.fot.d_after = "switch", 2, 8
  assert d_values(c.fot) == [2, 8]
  c.fot.d_schedule, c.fot.d_choices = "sample", (128, 2, 2)
  assert d_values(c.fot) == [2, 128]
  c.fot.plan, c.fot.k, c.fot.mix, c.fot.mix_after = "mix", 4, "0:0,1:0,1:0,1:0", "0:0,1:7,1:7,1:7"
  assert d_values(c.fot) == [1, 8]


@pytest.mark.parametrize("name,variants", [
    ("distraction_fot", ("baseline", "d1", "negatives", "negatives_from_start", "pretrain_local", "pretrain_mixed",
                         "ft_baseline", "ft_d1", "ft_negatives", "ft_negatives_wide", "ft_negatives_unaligned")),
    ("distraction_stdlib_fot", ("baseline", "d1", "negatives", "pretrain_local", "ft_baseline", "ft_d1",
                                "ft_negatives")),
    ("dict_lookup_fot", ("", "quick", "pretrain_local", "mem123")),
    ("passkey_fot", ("pretrain_local", "ft", "ft_negatives")),
    ("tiny_fot", ("", "quick", "local", "local_quick")),
    ("code_fot", ("local", "d1", "negatives", "quick"))])
def test_reproduction_configs_validate(name, variants):
  module = importlib.import_module(f"fot_jax.configs.experiments.{name}")
  for variant in variants:
    validate(module.get_config(variant), num_devices=1)
  with pytest.raises(ValueError, match="unknown variant"):
    module.get_config("nope")


@pytest.mark.parametrize("name,local,fine_tuned", [
    ("passkey_fot", "pretrain_local", ("ft", "ft_negatives")), ("tiny_fot", "local", ("", "quick"))])
def test_two_stage_configs_fine_tune_the_model_of_their_first_stage(name, local, fine_tuned):
  module = importlib.import_module(f"fot_jax.configs.experiments.{name}")
  stage1 = module.get_config(local)
  assert stage1.fot.mix in ("0:0", "0:0,0:0,0:0,0:0")  # no additional contexts in stage 1
  for variant in fine_tuned:
    c = module.get_config(variant)
    assert c.model.to_dict() == stage1.model.to_dict()  # init_from needs the same parameter shapes
    assert c.fot.k > 1 and c.data.align_documents and c.data.seq_len == stage1.data.seq_len


def test_distraction_fine_tuning_variants_share_the_model_of_the_local_pretraining():
  """ft_* start from pretrain_local (config.init_from), so their parameter shapes must be the same; their data
  puts repeats out of local reach, and the negatives variants switch to negatives after a d1 warm-up."""
  from fot_jax.configs.experiments import distraction_fot
  pre = distraction_fot.get_config("pretrain_local")
  for v in ("ft_baseline", "ft_d1", "ft_negatives", "ft_negatives_wide", "ft_negatives_unaligned"):
    ft = distraction_fot.get_config(v)
    assert ft.model.to_dict() == pre.model.to_dict()
    assert ft.data.task != pre.data.task
  neg = distraction_fot.get_config("ft_negatives")
  assert d_values(neg.fot) == [1, 8] and 0 < neg.fot.switch_step < neg.num_steps
  assert d_values(distraction_fot.get_config("ft_negatives_wide").fot) == [1, 29]
  with pytest.raises(ValueError, match="unknown variant"):
    distraction_fot.get_config("ft_negatives_from_start")


def test_a_micro_batch_the_exchange_cannot_split_is_refused_with_alternatives():
  """32 entries in 4 micro-batches of 8 over 16 batch shards: no equal run of each micro-batch per device."""
  c = tiny_config()
  c.data.batch_size, c.data.micro_batches, c.mesh.shape = 32, 4, (1, 16, 1)
  with pytest.raises(ConfigError) as e:
    validate(c, num_devices=16)
  message = str(e.value)
  assert message.startswith("config.data.batch_size/data.micro_batches"), message
  assert "data*fsdp = 16" in message and "data.micro_batches=2" in message and "data.batch_size=64" in message
  c.data.micro_batches = 2  # the suggested alternative validates
  validate(c, num_devices=16)
  c.data.micro_batches, c.fot.d_schedule, c.fot.d = 4, "fixed", 0  # no window: nothing to exchange
  validate(c, num_devices=16)


def test_a_mix_after_with_the_same_d_as_the_mix_is_its_own_plan():
  """Plans are keyed by what they are, not by d: positives first, then the same d as negatives."""
  c = tiny_config()
  c.fot.plan, c.fot.mix, c.fot.mix_after, c.fot.switch_step = "mix", "0:0,1:0", "0:1,0:1", 3
  fot = typed(c, num_devices=8).fot
  assert fot.d_values() == [1] and len(set(fot.choices())) == 2
  first, later = fot.choice_at(2), fot.choice_at(3)
  assert first != later and first.d == later.d == 1
  assert first.build(8, 2, True).positives_negatives(2)[:2] == [(0, 0), (1, 0)]
  assert later.build(8, 2, True).positives_negatives(2)[:2] == [(0, 1), (0, 1)]


def test_unknown_keys_and_sections_are_refused_with_the_known_fields():
  c = tiny_config()
  c.optim.lr = 0.1
  with pytest.raises(ConfigError, match=r"config\.optim\.lr: expected a field of config\.optim \(.*learning_rate"):
    typed(c)
  c = tiny_config()
  c.trainer = {"x": 1}
  with pytest.raises(ConfigError, match=r"config\.trainer: expected a config field"):
    typed(c)


def test_sections_are_frozen_and_record_the_config_as_json():
  import dataclasses
  import json
  t = typed(tiny_config())
  with pytest.raises(dataclasses.FrozenInstanceError):
    t.optim.learning_rate = 1.0
  recorded = json.loads(json.dumps(t.to_json()))
  assert recorded["fot"]["k"] == 2 and recorded["model"]["mem_layers"] == [1] and recorded["mesh"]["shape"] == [1, -1, 1]
  assert "max_docs" not in recorded["data"] and set(recorded) >= {"model", "fot", "data", "optim", "mesh", "eval"}


def test_subset_paths_are_typed_pairs_and_unknown_subsets_are_refused():
  c = base.get_config()
  c.data.subset_paths.book = "/corpus/book/*.jsonl.zst"
  data = TrainConfig.from_config_dict(c).data
  assert data.subset_path_map["book"] == "/corpus/book/*.jsonl.zst" and len(data.subset_paths) == 8
  c.data.subset_paths = {"bogus": "x"}
  with pytest.raises(ConfigError, match=r"config.data.subset_paths: expected subset names among .*'bogus'"):
    TrainConfig.from_config_dict(c)
