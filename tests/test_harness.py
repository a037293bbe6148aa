"""ladder's evals against lm-evaluation-harness, item by item: a trained rung exported as a transformers model and
tokenizer, local files in each hub dataset's schema, the harness's own task configs pointed at them, and every
conf/eval/ task scored by both. Same requests, so the same log-probabilities, `acc` and `acc_norm` on every item."""

import json
import random
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is a dev dependency: pip install -e '.[dev]'")

WORDS = ("the a cat dog sat ran on in to mat park house tree big small red old new and with what which who is was "
         "of for by at why how people water sun moon light heavy bright cold warm").split()
HARNESS_TASKS = Path(lm_eval.__file__).parent / "tasks"
# ladder task -> the harness's config to include; the local file stands in for every split (the harness reads the
# evaluated one, and builds its few-shot sampler from train even at 0 shots)
TASKS = {"hellaswag": "hellaswag/hellaswag.yaml", "arc_easy": "arc/arc_easy.yaml",
         "arc_challenge": "arc/arc_challenge.yaml", "piqa": "piqa/piqa.yaml", "social_iqa": "siqa/siqa.yaml",
         "commonsense_qa": "commonsense_qa/default.yaml", "openbookqa": "openbookqa/openbookqa.yaml",
         "winogrande": "winogrande/default.yaml"}
MMLU_SUBJECTS = ("anatomy", "astronomy")  # two of mmlu_stem's subjects, each the harness's task of its own


def words(rng, n, capital=False) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(n))
    return text.capitalize() if capital else text


def records(task: str, rng: random.Random, n: int = 8) -> list[dict]:
    out = []
    for i in range(n):
        four = [words(rng, rng.randint(1, 6)) for _ in range(4)]
        if task == "hellaswag":
            out.append({"ind": i, "activity_label": words(rng, 2, True), "ctx_a": words(rng, 6, True) + ".",
                        "ctx_b": words(rng, 3, True), "ctx": "", "endings": [e + " [title] x." for e in four],
                        "label": str(i % 4), "split": "val", "split_type": "indomain", "source_id": f"s{i}"})
        elif task.startswith("arc"):
            labels = ["A", "B", "C", "D"] if i % 3 else ["1", "2", "3", "4"]  # a few items count from 1, as in ARC
            out.append({"id": f"q{i}", "question": words(rng, 8, True) + "?",
                        "choices": {"text": four, "label": labels}, "answerKey": labels[i % 4]})
        elif task == "piqa":
            out.append({"goal": words(rng, 7, True), "sol1": four[0], "sol2": four[1], "label": i % 2})
        elif task == "social_iqa":
            out.append({"context": words(rng, 8, True) + ".", "question": words(rng, 5, True) + "?",
                        "answerA": four[0], "answerB": four[1], "answerC": four[2], "label": str(i % 3 + 1)})
        elif task == "commonsense_qa":
            five = four + [words(rng, 2)]
            out.append({"id": f"c{i}", "question": words(rng, 8, True) + "?", "question_concept": "x",
                        "choices": {"label": list("ABCDE"), "text": five}, "answerKey": "ABCDE"[i % 5]})
        elif task == "openbookqa":
            out.append({"id": f"o{i}", "question_stem": words(rng, 8, True),
                        "choices": {"text": four, "label": list("ABCD")}, "answerKey": "ABCD"[i % 4]})
        elif task == "winogrande":
            out.append({"sentence": f"{words(rng, 4, True)} _ {words(rng, 5)}.", "option1": words(rng, 1),
                        "option2": words(rng, 2), "answer": str(i % 2 + 1)})
    return out


def mmlu_records(subject: str, rng: random.Random, n: int) -> list[dict]:
    return [{"question": words(rng, 8, True) + "? ", "subject": subject,
             "choices": [words(rng, rng.randint(1, 4)) for _ in range(4)], "answer": i % 4} for i in range(n)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A trained tiny-14k rung on a 512-token BPE, exported; the task files; the harness's task configs on them."""
    from ladder.cli import main

    root = tmp_path_factory.mktemp("harness")
    rng = random.Random(0)
    corpus = root / "corpus"
    corpus.mkdir()
    for i in range(300):
        (corpus / f"doc{i:03d}.txt").write_text("\n".join(words(rng, rng.randint(5, 12), True) + "."
                                                         for _ in range(8)))
    runs = root / "runs"
    train = ["ladder=tiny", f"runs_dir={runs}", "ladder.seq_len=256", "ladder.vocab_size=512", "ladder.budgets=[3e4]",
             "train.eval_points=1", "train.threads=1", "logger.wandb=disabled", "eval=[]", "data=local",
             f"data.path={corpus}", "data.tokenizer.kind=bpe", "data.tokenizer.vocab_size=512",
             "data.val_fraction=0.1", "recipe.micro_batch_sequences=8", "recipe.batch.ref_seq_len=256"]
    assert main(["train", "rung=tiny-14k", *train]) == 0
    exported = root / "hf"
    assert main(["export", "rung=tiny-14k", f"out={exported}", *train]) == 0

    files, include = {}, root / "tasks"
    include.mkdir()
    for task, harness_yaml in TASKS.items():
        files[task] = write_jsonl(root / f"{task}.jsonl", records(task, rng))
        data_files = "".join(f"    {split}: {files[task]}\n" for split in ("train", "validation", "test"))
        (include / f"{task}.yaml").write_text(
            f"include: {HARNESS_TASKS / harness_yaml}\ntask: local_{task}\ndataset_path: json\ndataset_name: null\n"
            f"dataset_kwargs:\n  data_files:\n{data_files}")
    test, dev = [], []
    for subject in MMLU_SUBJECTS:
        test += mmlu_records(subject, rng, 6)
        dev += mmlu_records(subject, rng, 5)
        subject_test = write_jsonl(root / f"mmlu_{subject}_test.jsonl", [r for r in test if r["subject"] == subject])
        subject_dev = write_jsonl(root / f"mmlu_{subject}_dev.jsonl", [r for r in dev if r["subject"] == subject])
        (include / f"mmlu_{subject}.yaml").write_text(
            f"include: {HARNESS_TASKS / 'mmlu' / 'default' / f'mmlu_{subject}.yaml'}\ntask: local_mmlu_{subject}\n"
            f"tag: []\ndataset_path: json\ndataset_name: null\n"
            f"dataset_kwargs:\n  data_files:\n    test: {subject_test}\n    dev: {subject_dev}\n")
    files["mmlu_stem"] = write_jsonl(root / "mmlu_test.jsonl", test)
    files["mmlu_stem_dev"] = write_jsonl(root / "mmlu_dev.jsonl", dev)
    return {"train": train, "exported": exported, "files": files, "include": include}


def ladder_items(setup, task: str):
    """ladder's per-item results, log-probabilities and right answers on the task's local file."""
    import torch
    from contextlib import nullcontext

    from omegaconf import OmegaConf

    from ladder.config import compose_config
    from ladder.data import TokenData, prepare
    from ladder.data.tokenizers import load_saved
    from ladder.evals.scoring import continuation_logprobs, encode_items, item_results
    from ladder.evals.tasks import Task
    from ladder.distributed import Dist
    from transformers import LlamaForCausalLM

    cfg = compose_config([*setup["train"], f"eval=[{task}]"])
    entry = OmegaConf.to_container(cfg.eval[task], resolve=True)
    entry.update(source="local", path=str(setup["files"][task]), limit=None)
    if task == "mmlu_stem":
        entry.update(fewshot_path=str(setup["files"]["mmlu_stem_dev"]))
    data = TokenData(prepare(OmegaConf.to_container(cfg.data, resolve=True)))
    tokenizer = load_saved(data.manifest["tokenizer"], data.directory)
    requests = encode_items(Task(task, entry).items(None), tokenizer, int(cfg.ladder.seq_len))
    model = LlamaForCausalLM.from_pretrained(setup["exported"]).eval()
    logprobs = continuation_logprobs(model, requests, 4, torch.device("cpu"), nullcontext(), Dist())
    return (item_results(requests, logprobs), [logprobs[requests.item_of == i] for i in range(len(requests.gold))],
            requests.gold)


def harness_acc_norm(sample, gold: int, multiple_input: bool) -> float:
    """The harness's acc_norm from its own log-likelihoods: per character of its choice strings (the continuation
    less its target delimiter; for Winogrande, whose choices are the filled-in contexts, the context)."""
    lengths = [len(context) if multiple_input else len(continuation) - 1 for context, continuation in
               sample["arguments"]]
    lls = np.array([float(r[0]) for r in sample["filtered_resps"]])
    return float(np.argmax(lls / np.array(lengths)) == gold)


def harness_samples(setup, tasks: list[str], num_fewshot: int | None = None) -> dict:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    # Our task files `include:` the harness's own by path, so its index of every task it ships (~14k YAML files, 25 s
    # per TaskManager) is not needed to find them
    manager = TaskManager(include_path=str(setup["include"]), include_defaults=False)
    out = simple_evaluate(model="hf", model_args=f"pretrained={setup['exported']},add_bos_token=True,dtype=float32",
                          tasks=tasks, task_manager=manager,
                          num_fewshot=num_fewshot, batch_size=4, device="cpu", log_samples=True)
    return {name: sorted(samples, key=lambda s: s["doc_id"]) for name, samples in out["samples"].items()}


@pytest.fixture(scope="module")
def harness(setup):
    # MMLU as it is usually run and reported: the harness's mmlu_* tasks with --num_fewshot 5 (their config says 0)
    return {**harness_samples(setup, [f"local_{t}" for t in TASKS]),
            **harness_samples(setup, [f"local_mmlu_{s}" for s in MMLU_SUBJECTS], num_fewshot=5)}


@pytest.mark.parametrize("task", list(TASKS))
def test_every_item_scores_as_the_harness_scores_it(setup, harness, task):
    ours, logprobs, gold = ladder_items(setup, task)
    theirs = harness[f"local_{task}"]
    assert len(ours) == len(theirs) == 8
    for item, mine, lp, sample in zip(range(8), ours, logprobs, theirs):
        harness_lp = np.array([float(r[0]) for r in sample["filtered_resps"]])
        np.testing.assert_allclose(lp, harness_lp, atol=2e-4, err_msg=f"{task} item {item}")
        assert mine["acc"] == sample["acc"], (task, item)
        # acc_norm where the harness reports it, and by its rule where its config does not ask for it
        expected = sample["acc_norm"] if "acc_norm" in sample else harness_acc_norm(sample, int(gold[item]),
                                                                                    task == "winogrande")
        assert mine["acc_norm"] == expected, (task, item)


def test_mmlu_with_the_harness_shots_and_description(setup, harness):
    ours, logprobs, _ = ladder_items(setup, "mmlu_stem")
    theirs = [s for subject in MMLU_SUBJECTS for s in harness[f"local_mmlu_{subject}"]]
    assert len(ours) == len(theirs) == 12
    for mine, lp, sample in zip(ours, logprobs, theirs):
        np.testing.assert_allclose(lp, [float(r[0]) for r in sample["filtered_resps"]], atol=2e-4)
        assert mine["acc"] == sample["acc"]



def test_export_never_replaces_a_directory_it_did_not_write(setup, tmp_path):
    from ladder.cli import main

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert main(["export", "rung=tiny-14k", f"out={tmp_path / 'mine'}", *setup["train"]]) == 2
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert main(["export", "rung=tiny-14k", f"out={setup['exported']}", *setup["train"]]) == 0  # an export: replaced
