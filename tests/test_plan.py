import json
import os

import pytest

from ladder.config import compose_config
from ladder.model import count_params
from ladder.plan import make_plan


def plan_json(run_cli, *overrides):
    code, out, err = run_cli("plan", "format=json", *overrides)
    assert code == 0, err
    return json.loads(out)


def test_default_plan_is_the_tiny_cpu_ladder(run_cli):
    data = plan_json(run_cli)
    rungs = data["rungs"]
    assert data["ladder"] == "tiny" and len(rungs) >= 4
    sizes = [r["non_embedding_params"] for r in rungs]
    assert max(sizes) / min(sizes) >= 10 and 10_000 <= min(sizes) and max(sizes) <= 300_000
    for rung in rungs:
        assert len(rung["budgets"]) >= 2  # WSD-S: one run yields every budget
        assert rung["tokens"] == max(rung["budgets"].values())
        assert rung["flops"] == pytest.approx(6 * rung["params"] * rung["trained_tokens"])  # chinchilla_6nd default
        # WSD-S: the main run stops at the last budget's fork; each budget adds a cooldown branch of 20% of it
        cooldowns = sum(0.2 * tokens for tokens in rung["budgets"].values())
        assert rung["trained_tokens"] == pytest.approx(0.8 * rung["tokens"] + cooldowns, rel=0.02)
        assert rung["tokens"] % rung["batch_tokens"] == 0
    assert data["flops_convention"] == "chinchilla_6nd"
    assert data["ladder_flops"] == pytest.approx(sum(r["flops"] for r in rungs))
    assert data["cost_fraction"] == pytest.approx(data["ladder_flops"] / data["target"]["flops"])


def test_olmo_ladder_budgets_and_recipe(run_cli):
    data = plan_json(run_cli, "ladder=olmo")
    assert len(data["rungs"]) == 16  # 4 sizes x 4 budgets, one cosine run each
    first = data["rungs"][0]
    assert first["name"] == "olmo-190m-1xC"
    n = first["olmo_params"]
    # 1xC = 20 tokens per parameter, rounded up to whole batches
    assert 0 <= first["tokens"] - 20 * n < first["batch_tokens"]
    # Porian et al. 2024: lr = 0.0047 (N / 108M)^(-1/3), batch = 160 (N / 108M)^(2/3) sequences of 2048
    assert first["lr"] == pytest.approx(0.0047 * (n / 108e6) ** (-1 / 3))
    assert first["batch_tokens"] == pytest.approx(160 * (n / 108e6) ** (2 / 3) * 2048, rel=0.05)
    assert first["recipe"]["warmup_tokens"] == n
    assert data["target"]["tokens"] == 4_000_000_000_000
    assert 0.01 < data["cost_fraction"] < 0.06


def test_target_and_hardware_overrides(run_cli):
    base = plan_json(run_cli, "ladder=olmo")
    data = plan_json(run_cli, "ladder=olmo", "target.params=13e9", "target.tokens=5e12", "hardware.gpu=a100",
                     "hardware.mfu=0.5")
    target = data["target"]  # 13e9 on the OLMo ladder is OLMo's 13B preset, in OLMo's count, named by it
    assert target["name"] == "olmo-13b" and target["shape_from"].startswith("preset olmo-13b")
    assert target["shape"]["d_model"] == 5120 and target["shape"]["n_layers"] == 40 and target["tokens"] == 5e12
    assert abs(target["olmo_params"] / 13.2e9 - 1) < 0.01
    assert data["hardware"] == {"gpu": "a100", "mfu": 0.5, "gpu_hours_from": "porian"}
    h100, a100 = base["rungs"][0]["gpu_hours"], data["rungs"][0]["gpu_hours"]
    assert a100 / h100 == pytest.approx((989.4 * 0.4) / (312 * 0.5))


def test_flops_convention_override_changes_every_flops(run_cli):
    data = plan_json(run_cli, "flops_convention=kaplan_6nd")
    assert data["flops_convention"] == "kaplan_6nd"
    rung = data["rungs"][0]
    assert rung["flops"] == 6 * rung["non_embedding_params"] * rung["trained_tokens"]


def test_table_output_has_totals_and_cost(run_cli):
    code, out, _ = run_cli("plan", "ladder=pythia")
    assert code == 0
    assert "total" in out and "pythia-1b-2xC" in out and "% of the target's FLOPs" in out
    assert "chinchilla_6nd" in out


def test_explicit_and_param_sizes():
    cfg = compose_config(["+ladder.sizes.mine={d_model:40,n_layers:2,n_heads:5}",
                          "+ladder.sizes.ruled={params:2e5}"])
    plan = make_plan(cfg)
    assert plan.rung("mine").spec.head_dim == 8
    ruled = plan.rung("ruled")
    assert abs(count_params(ruled.spec).total / 2e5 - 1) < 0.3 and ruled.spec.head_dim == 16


@pytest.mark.parametrize("override, field", [
    ("+ladder.sizes.tiny-14k.n_heads=5", "ladder.sizes.tiny-14k.n_heads=5 does not divide d_model=24"),
    ("ladder.budgets=[0xC]", "ladder.budgets[0]"),
    ("ladder.budgets=[1xC,-2e6]", "ladder.budgets[1]"),
    ("ladder.budgets=[]", "ladder.budgets"),
    ("target.tokens=0", "target.tokens"),
    ("target.tokens=-4e12", "target.tokens"),
    ("ladder.sizes.tiny-14k.preset=tiny-15k", "unknown preset"),
    ("ladder=olmpo", "ladder=olmpo: no such ladder"),
    ("recipe=fast", "recipe=fast: no such recipe"),
    ("hardware.gpu=tpu-v5", "hardware.gpu"),
    ("hardware.mfu=1.5", "hardware.mfu"),
    ("hardware.nope=1", "hardware.nope"),
    ("recipe.micro_batch_sequences=0", "recipe.micro_batch_sequences"),
    ("recipe.beta2=1.5", "recipe.beta2"),
    ("recipe.schedule.name=step", "recipe.schedule.name"),
    ("flops_convention=6n", "flops_convention"),
    ("ladder.seeds=[-1]", "ladder.seeds[0]"),
])
def test_validation_errors_are_one_line_with_exit_2(run_cli, override, field):
    code, out, err = run_cli("plan", override)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert field in err
    assert "Traceback" not in err


def test_console_script_exit_code(tmp_path):
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "ladder.cli", "plan", "ladder=nope"], capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error: ladder=nope")
    assert not any(tmp_path.iterdir())  # composing a config writes nothing (no outputs/ dir)


def test_plan_reads_the_corpus_without_importing_torch(tmp_path):
    """`ladder plan` runs on a login node and reads the corpus through `datasets`, which, torch being installed,
    would import it (1.2 s of a 3 s command) for DataLoader workers that planning never starts."""
    import subprocess
    import sys
    script = ("import sys; from ladder.cli import main; code = main(['plan', 'data.max_documents=50']); "
              "print(code, 'torch' in sys.modules, 'datasets' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "LADDER_CACHE": str(tmp_path)})
    assert result.stdout.splitlines()[-1] == "0 False True", result.stderr[-2000:]


def test_a_target_without_a_preset_of_its_size_is_named_by_it(run_cli):
    data = plan_json(run_cli, "ladder=olmo", "target.params=3e9", "target.tokens=5e12")
    assert data["target"]["name"] == "3B" and data["target"]["shape_from"] == "shape rule for 3e+09 params"
    data = plan_json(run_cli, "ladder=olmo", "target.params=13e9", "target.tokens=5e12", "target.name=big")
    assert data["target"]["name"] == "big"  # a name given wins
    code, _, err = run_cli("plan", "target.name=../x")
    assert code == 2 and "target.name='../x': use a plain name" in err


def test_plan_json_carries_the_warnings_the_table_prints(run_cli):
    code, table, _ = run_cli("plan", "ladder=olmo")
    warnings = plan_json(run_cli, "ladder=olmo")["warnings"]
    assert warnings and all(f"warning: {w}" in table for w in warnings)
    assert any("reads data=stdlib's training split" in w for w in warnings)
