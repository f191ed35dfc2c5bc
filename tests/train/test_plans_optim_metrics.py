"""d schedules and plans, optimiser pieces and metric helpers (pure host logic, fast)."""

import numpy as np
import optax
import pytest

from fot_jax.configs import base
from fot_jax.model.config import preset
from fot_jax.model.params import init_params
from fot_jax.train import metrics, optim
from fot_jax.train.config import CrossbatchConfig, OptimConfig, PlanChoice
from fot_jax.train.errors import ConfigError


def _fot(**fields) -> CrossbatchConfig:
  return CrossbatchConfig.parse({**base.get_config().fot.to_dict(), **fields})


def _d_at(fot: CrossbatchConfig, step: int, seed: int = 0) -> int:
  return fot.choice_at(step, seed).d


def test_d_schedules():
  fot = _fot(d=3)
  assert [_d_at(fot, s) for s in range(3)] == [3, 3, 3]
  fot = _fot(d_schedule="switch", d=2, d_after=64, switch_step=10)
  assert _d_at(fot, 9) == 2 and _d_at(fot, 10) == 64
  fot = _fot(d_schedule="sample", d_choices=(2, 128))
  drawn = [_d_at(fot, s, seed=1) for s in range(50)]
  assert set(drawn) == {2, 128}
  assert drawn == [_d_at(fot, s, seed=1) for s in range(50)]  # a resumed run draws the same d


def test_plans_released_and_mix():
  fot = _fot(k=4, d=3)
  plan = fot.choice_at(0).build(8, fot.k, fot.stepping)
  assert plan.visible_entries() == [[0], [1, 0], [2, 1, 0], [3, 2, 1, 0], [4], [5, 4, 3], [6, 5, 4, 3], [7, 6, 5, 4]]
  assert PlanChoice(0).build(8, 4, True).d == 0
  mix = _fot(k=4, plan="mix", mix="0:0,1:2,2:5,3:4").choice_at(0).build(16, 4, True)
  assert mix.positives_negatives(4)[:4] == [(0, 0), (1, 2), (2, 5), (3, 4)]


def test_mix_switches_at_switch_step():
  fot = _fot(plan="mix", k=2, mix="0:0,1:0", mix_after="0:0,1:3", switch_step=5)
  assert [_d_at(fot, s) for s in (0, 4, 5, 9)] == [1, 1, 4, 4]
  assert fot.choice_at(0).build(8, 2, True).positives_negatives(2)[:2] == [(0, 0), (1, 0)]
  assert fot.choice_at(5).build(8, 2, True).positives_negatives(2)[:2] == [(0, 0), (1, 3)]
  assert fot.choice_at(5).name == "mix 0:0,1:3" and fot.windows() == [1, 4]


@pytest.mark.parametrize("name", ["cosine", "rsqrt", "constant"])
def test_schedules_warm_up_then_stay_positive(name):
  s = optim.make_schedule(OptimConfig(schedule=name, warmup_steps=10, learning_rate=1.0), 100)
  assert float(s(0)) == pytest.approx(0.0)
  assert float(s(10)) == pytest.approx(1.0, rel=1e-5)
  assert 0 < float(s(99)) <= 1.0


def test_the_config_refuses_a_name_the_builders_lack():
  assert set(optim.SCHEDULES) == {"cosine", "rsqrt", "constant"}
  with pytest.raises(ConfigError, match=r"^config\.optim\.schedule: expected one of \('cosine', 'rsqrt', 'constant'\)"):
    OptimConfig(schedule="linear")
  with pytest.raises(ConfigError, match=r"^config\.optim\.optimizer: expected one of \('adamw', 'adafactor'\)"):
    OptimConfig(optimizer="sgd")


def test_decay_mask_and_optimizers():
  params = init_params(preset("tiny", vocab_size=32, hidden_size=16, num_heads=2, num_kv_heads=1, num_layers=2,
                              intermediate_size=16, mem_layers=(1,)), __import__("jax").random.key(0))
  mask = optim.decay_mask(params)
  assert mask["layers"]["q_proj"] and not mask["layers"]["input_layernorm"] and not mask["norm"]
  assert not mask["embed_tokens"] and optim.decay_mask(params, True)["embed_tokens"]
  assert tuple(optim.OPTIMIZERS) == ("adamw", "adafactor")
  for name in optim.OPTIMIZERS:  # the names the config accepts are the builders' own table
    tx, _ = OptimConfig(optimizer=name, weight_decay=0.1).build(10)
    grads = __import__("jax").tree.map(np.ones_like, params)
    updates, _ = __import__("jax").jit(lambda p, g: tx.update(g, tx.init(p), p))(params, grads)
    assert np.isfinite(float(optax.global_norm(updates)))


def test_mfu_and_progress_line():
  assert metrics.mfu(1000.0, 1e9, 2, 1e12) == pytest.approx(0.5)
  assert metrics.PEAK_FLOPS["tpu v5p"] > metrics.PEAK_FLOPS["tpu v4"]
  assert metrics.measure_cpu_peak(256, 2) > 1e8
  line = metrics.progress_line(50, 100, {"loss": 2.5, "tokens_per_s": 2000.0, "mfu": 0.1}, 10.0, 50)
  assert "step 50/100" in line and "ETA 00:10" in line and "MFU 10.0%" in line
