"""Evals in the training loop, end to end: a hand-made task that a model trained for a few steps separates, named
validation corpora, `ladder eval` on saved budget weights, `ladder collect` columns and `ladder fit law=two_step`."""

import json
import random

import pytest

pytestmark = pytest.mark.slow

WORDS = "the a cat dog sat ran on in to mat park house tree big small red old new and with".split()


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12))) + "."


def garbage(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("QZXJVKW#@%&*0123456789") for _ in range(n))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A lowercase corpus, a task whose right ending is lowercase prose and whose wrong ones are noise, and two
    validation corpora: prose like the corpus, and noise."""
    root = tmp_path_factory.mktemp("evals")
    rng = random.Random(0)
    corpus = root / "corpus"
    corpus.mkdir()
    for i in range(300):
        (corpus / f"doc{i:03d}.txt").write_text("\n".join(sentence(rng) for _ in range(8)))
    records = []
    for i in range(24):
        right = " ".join(rng.choice(WORDS) for _ in range(4))
        endings = [garbage(rng, len(right)) for _ in range(3)]
        endings.insert(i % 4, right)
        records.append({"activity_label": "Story", "ctx_a": sentence(rng)[:-1], "ctx_b": "", "endings": endings,
                        "label": str(i % 4)})
    task = root / "task.jsonl"
    task.write_text("".join(json.dumps(r) + "\n" for r in records))
    (root / "prose.txt").write_text("\n".join(sentence(rng) for _ in range(200)))
    (root / "noise.txt").write_text("\n".join(garbage(rng, 60) for _ in range(200)))
    return root


def overrides(files, runs, *extra):
    return ["ladder=tiny", f"runs_dir={runs}", "ladder.seq_len=64", "ladder.budgets=[1e4,2e4,4e4]",
            "train.eval_points=3", "train.eval_tokens=2048", "train.threads=1", "logger.wandb=disabled",
            "data=local", f"data.path={files / 'corpus'}", "data.tokenizer.kind=bytes", "data.val_fraction=0.1",
            "recipe.micro_batch_sequences=8", "recipe.batch.ref_seq_len=64",
            "eval=[hellaswag]", "eval.hellaswag.source=local", f"eval.hellaswag.path={files / 'task.jsonl'}",
            f"+eval.prose={{kind:perplexity,source:local,path:'{files / 'prose.txt'}'}}",
            f"+eval.noise={{kind:perplexity,source:local,path:'{files / 'noise.txt'}'}}", *extra]


@pytest.fixture(scope="module")
def trained(files, tmp_path_factory):
    from ladder.cli import main

    runs = tmp_path_factory.mktemp("runs")
    for rung in ("tiny-14k", "tiny-40k"):
        assert main(["train", f"rung={rung}", *overrides(files, runs)]) == 0
    return runs


def summary(runs, rung):
    return json.loads((runs / "tiny" / rung / "summary.json").read_text())


def test_every_budget_has_task_accuracy_and_bpb_and_each_corpus_loss(trained):
    for rung in ("tiny-14k", "tiny-40k"):
        budgets = summary(trained, rung)["budgets"]
        assert len(budgets) == 3
        for result in budgets.values():
            evals = result["eval"]
            for key in ("hellaswag/acc", "hellaswag/acc_norm", "hellaswag/acc_per_token", "hellaswag/bpb",
                        "hellaswag/loss_per_token", "prose/loss", "prose/bpb", "noise/loss", "noise/bpb"):
                assert key in evals, (rung, key)
            assert evals["hellaswag/items"] == 24
            assert evals["prose/loss"] < evals["noise/loss"]  # reported separately, and they differ as they must


def test_a_few_steps_of_training_separate_the_hand_made_task(trained, files):
    from contextlib import nullcontext

    import torch
    from omegaconf import OmegaConf

    from ladder.config import compose_config
    from ladder.data import TokenData, prepare
    from ladder.io import read_metrics
    from ladder.model.build import build_model
    from ladder.plan import make_plan
    from ladder.distributed import Dist
    from ladder.evals.suite import make_suite

    cfg = compose_config(overrides(files, trained))
    rung = make_plan(cfg).rung("tiny-40k")
    suite = make_suite(cfg, TokenData(prepare(OmegaConf.to_container(cfg.data, resolve=True))), rung.spec.seq_len)
    untrained = suite.run(build_model(rung.spec, seed=rung.seed).eval(), 8, torch.device("cpu"), nullcontext(), Dist())
    final = list(summary(trained, "tiny-40k")["budgets"].values())[-1]["eval"]
    assert untrained["hellaswag/acc"] < 0.75  # chance is 0.25: a random model cannot tell prose from noise
    assert final["hellaswag/acc"] == 1.0 and final["hellaswag/acc_norm"] == 1.0
    assert final["hellaswag/bpb"] < 0.6 * untrained["hellaswag/bpb"]
    records = [r for r in read_metrics(trained / "tiny" / "tiny-40k" / "metrics.jsonl") if "eval/hellaswag/bpb" in r]
    assert len(records) >= 5 and all("eval_s" in r for r in records)  # the main run's points and every budget


def test_ladder_eval_on_saved_budget_weights_reproduces_the_in_loop_scores(trained, files, run_cli):
    path = trained / "tiny" / "tiny-14k" / "summary.json"
    in_loop = json.loads(path.read_text())
    stripped = json.loads(path.read_text())
    for result in stripped["budgets"].values():
        result.pop("eval")
    path.write_text(json.dumps(stripped))
    code, out, err = run_cli("eval", "rung=tiny-14k", *overrides(files, trained))
    assert code == 0, err
    again = json.loads(path.read_text())
    for label, result in in_loop["budgets"].items():
        assert again["budgets"][label]["eval"] == pytest.approx(result["eval"], rel=1e-9), label
    assert "hellaswag/acc" in out


def test_ladder_eval_refuses_a_corrupt_budget_model_and_other_data(trained, files, run_cli, tmp_path):
    label = next(iter(summary(trained, "tiny-14k")["budgets"]))
    weights = trained / "tiny" / "tiny-14k" / "budgets" / f"{label}.pt"
    original = weights.read_bytes()
    try:
        weights.write_bytes(original[:-100])
        code, _, err = run_cli("eval", "rung=tiny-14k", f"budget={label}", *overrides(files, trained))
        assert code == 2 and f"{label}.pt: unusable (truncated" in err and err.count("\n") == 1
    finally:
        weights.write_bytes(original)
    code, _, err = run_cli("eval", "rung=tiny-14k", *overrides(files, trained, "data.val_fraction=0.2"))
    assert code == 2 and "data: differs from the data tiny-14k was trained on" in err


def test_collect_and_two_step_fit_read_the_eval_columns(files, trained, run_cli, tmp_path):
    from ladder.fit.table import Table

    out = tmp_path / "table.csv"
    code, _, err = run_cli("collect", *overrides(files, trained), f"out={out}", "curves=true")
    assert code == 0, err
    table = Table.read_csv(out)
    assert {"eval/hellaswag/acc", "eval/hellaswag/bpb", "eval/prose/loss", "final"} <= set(table.columns)
    assert (table["final"] == 1).sum() == 6 and (table["final"] == 0).sum() >= 4

    fit_dir = tmp_path / "fit"
    code, out_text, err = run_cli("fit", *overrides(files, trained), "law=two_step", "law.task=hellaswag",
                                  f"out={fit_dir}", "bootstrap.n=20", "plots=false", "format=json")
    assert code == 0, err
    result = json.loads(out_text)
    assert result["law"] == "two_step"
    metrics = {p["metric"] for p in result["predictions"]}
    assert {"task_loss", "accuracy"} <= metrics
    accuracy = [p for p in result["predictions"] if p["metric"] == "accuracy"][0]
    assert 0 <= accuracy["value"] <= 1
