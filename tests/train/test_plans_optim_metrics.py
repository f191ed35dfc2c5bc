"""d schedules and plans, optimiser pieces and metric helpers (pure host logic, fast)."""

import numpy as np
import optax
import pytest

from fot_jax.configs import base
from fot_jax.model.config import preset
from fot_jax.model.params import init_params
from fot_jax.train import metrics, optim, plans


def test_d_schedules():
  fot = base.get_config().fot
  fot.d = 3
  assert [plans.d_at(fot, s) for s in range(3)] == [3, 3, 3]
  fot.d_schedule, fot.d, fot.d_after, fot.switch_step = "switch", 2, 64, 10
  assert plans.d_at(fot, 9) == 2 and plans.d_at(fot, 10) == 64
  fot.d_schedule, fot.d_choices = "sample", (2, 128)
  drawn = [plans.d_at(fot, s, seed=1) for s in range(50)]
  assert set(drawn) == {2, 128}
  assert drawn == [plans.d_at(fot, s, seed=1) for s in range(50)]  # a resumed run draws the same d


def test_plans_released_and_mix():
  fot = base.get_config().fot
  fot.k, fot.d = 4, 3
  plan = plans.make_plan(fot, 8, 3)
  assert plan.visible_entries() == [[0], [1, 0], [2, 1, 0], [3, 2, 1, 0], [4], [5, 4, 3], [6, 5, 4, 3], [7, 6, 5, 4]]
  assert plans.make_plan(fot, 8, 0).d == 0
  fot.plan, fot.mix = "mix", "0:0,1:2,2:5,3:4"
  mix = plans.make_plan(fot, 16, plans.d_at(fot, 0))
  assert mix.positives_negatives(4)[:4] == [(0, 0), (1, 2), (2, 5), (3, 4)]


def test_mix_switches_at_switch_step():
  fot = base.get_config().fot
  fot.plan, fot.k, fot.mix, fot.mix_after, fot.switch_step = "mix", 2, "0:0,1:0", "0:0,1:3", 5
  assert [plans.d_at(fot, s) for s in (0, 4, 5, 9)] == [1, 1, 4, 4]
  cache = plans.PlanCache(fot, 8)
  assert cache(plans.d_at(fot, 0)).positives_negatives(2)[:2] == [(0, 0), (1, 0)]
  assert cache(plans.d_at(fot, 5)).positives_negatives(2)[:2] == [(0, 0), (1, 3)]
  with pytest.raises(ValueError, match="no mix of this run has d=2"):
    plans.make_plan(fot, 8, 2)


@pytest.mark.parametrize("name", ["cosine", "rsqrt", "constant"])
def test_schedules_warm_up_then_stay_positive(name):
  o = base.get_config().optim
  o.schedule, o.warmup_steps, o.learning_rate = name, 10, 1.0
  s = optim.make_schedule(o, 100)
  assert float(s(0)) == pytest.approx(0.0)
  assert float(s(10)) == pytest.approx(1.0, rel=1e-5)
  assert 0 < float(s(99)) <= 1.0


def test_decay_mask_and_optimizers():
  params = init_params(preset("tiny", vocab_size=32, hidden_size=16, num_heads=2, num_kv_heads=1, num_layers=2,
                              intermediate_size=16, mem_layers=(1,)), __import__("jax").random.key(0))
  mask = optim.decay_mask(params)
  assert mask["layers"]["q_proj"] and not mask["layers"]["input_layernorm"] and not mask["norm"]
  assert not mask["embed_tokens"] and optim.decay_mask(params, True)["embed_tokens"]
  for name in ("adamw", "adafactor"):
    o = base.get_config().optim
    o.optimizer, o.weight_decay = name, 0.1
    tx, _ = optim.make_optimizer(o, 10)
    grads = __import__("jax").tree.map(np.ones_like, params)
    updates, _ = __import__("jax").jit(lambda p, g: tx.update(g, tx.init(p), p))(params, grads)
    assert np.isfinite(float(optax.global_norm(updates)))


def test_mfu_and_progress_line():
  assert metrics.mfu(1000.0, 1e9, 2, 1e12) == pytest.approx(0.5)
  assert metrics.PEAK_FLOPS["tpu v5p"] > metrics.PEAK_FLOPS["tpu v4"]
  assert metrics.measure_cpu_peak(256, 2) > 1e8
  line = metrics.progress_line(50, 100, {"loss": 2.5, "tokens_per_s": 2000.0, "mfu": 0.1}, 10.0, 50)
  assert "step 50/100" in line and "ETA 00:10" in line and "MFU 10.0%" in line
