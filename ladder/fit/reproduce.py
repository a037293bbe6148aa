"""Published data to refit, and the published numbers to check against: Chinchilla's 245 points as Epoch AI
extracted them (Besiroglu et al. 2024), the OLMo ladder's 16 runs (Bhagia et al. 2024) and Gadre et al. 2024's runs.
Downloads are pinned by sha256 and cached under $LADDER_CACHE; `path=` reads a local copy instead."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

import numpy as np

from ladder.errors import LadderError, require
from ladder.fit.table import Table
from ladder.io import atomic_write_bytes

CHINCHILLA_URL = ("https://raw.githubusercontent.com/epoch-research/analyzing-chinchilla/main/data/"
                  "svg_extracted_data.csv")
CHINCHILLA_SHA256_PREFIX = "193478df"

# name -> (E, A, B, alpha, beta), from Besiroglu et al. 2024 and Hoffmann et al. 2022.
PUBLISHED = {
    "Epoch 2024": {"E": 1.817, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658},
    "Epoch grid L-BFGS-B": {"E": 1.8172, "A": 477.84, "B": 2143.86, "alpha": 0.34731, "beta": 0.36718},
    "Hoffmann 2022": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
}
EPOCH_CI = {"E": (1.769, 1.871), "A": (285.2, 743.6), "B": (1042, 5810), "alpha": (0.317, 0.373),
            "beta": (0.331, 0.415)}
EPOCH_GRID_OBJECTIVE = 0.00101827


def cache_dir() -> Path:
    return Path(os.environ.get("LADDER_CACHE", Path.home() / ".cache" / "ladder"))


def cached_download(url: str, sha256_prefix: str, name: str, local_hint: str) -> Path:
    """The cached copy of `url` under $LADDER_CACHE/refdata/NAME, downloaded (needs the network) and checked
    against its pinned sha256 the first time."""
    cached = cache_dir() / "refdata" / name
    if not cached.exists():
        try:
            with urllib.request.urlopen(url, timeout=15) as response:
                data = response.read()
        except OSError as error:
            raise LadderError(f"could not download {url} ({error}); connect to the network or pass "
                              f"path={local_hint}") from None
        digest = hashlib.sha256(data).hexdigest()
        require(digest.startswith(sha256_prefix), f"downloaded {url} has sha256 {digest[:12]}..., not "
                                                  f"{sha256_prefix}...; the file changed upstream: pass path=... to "
                                                  f"a known copy")
        atomic_write_bytes(cached, data)
    return cached


def chinchilla_csv(path: str | None = None) -> Path:
    """The CSV: `path` if given, else the cached download, else download it (needs the network)."""
    if path:
        require(Path(path).exists(), f"path={path}: no such file")
        return Path(path)
    return cached_download(CHINCHILLA_URL, CHINCHILLA_SHA256_PREFIX, "chinchilla_svg_extracted_data.csv",
                           "svg_extracted_data.csv")


def load_chinchilla(path: str | Path, drop_highest: int = 5) -> Table:
    """(params, tokens, flops, loss) with tokens = C / (6 N), after dropping the `drop_highest` highest losses."""
    raw = Table.read_csv(path)
    for column in ("Model Size", "Training FLOP", "loss"):
        require(column in raw, f"{path}: no column {column!r}; is this Epoch's svg_extracted_data.csv?")
    params, flops, loss = raw["Model Size"], raw["Training FLOP"], raw["loss"]
    keep = np.argsort(loss, kind="stable")[:len(loss) - drop_highest]
    keep.sort()
    return Table({"params": params[keep], "tokens": flops[keep] / (6 * params[keep]), "flops": flops[keep],
                  "loss": loss[keep]})


GADRE_DATASETS = ("c4_original", "rpj", "rw_original")
OLMO_SIZES = {"190M": 190354176, "370M": 371262464, "760M": 758220288, "1B": 1279395840}  # final_config.json's n


def load_gadre(path: str | Path, dataset: str, loss_column: str = "loss_c4_val") -> Table:
    """One row per run of Gadre et al. 2024 (runs_flat.csv) trained on `dataset`: params, tokens, flops, loss."""
    raw = Table.read_csv(path)
    require(dataset in set(raw["train_dataset"].tolist()),
            f"{path}: no runs on {dataset!r}; use one of {', '.join(GADRE_DATASETS)}")
    rows = np.flatnonzero(raw["train_dataset"] == dataset)
    params, tokens = raw["N_params"][rows], raw["D_tokens"][rows]
    return Table({"run": raw["name"][rows], "params": params, "tokens": tokens, "flops": 6 * params * tokens,
                  "loss": raw[loss_column][rows]})


# The OLMo ladder's task forecasts (allenai/OLMo-ladder, src/scaling/utils.py, the paper's v2 tasks): the bits per
# byte and accuracy columns of each task, MMLU's four groups averaged with their weights, and the task's chance
# accuracy (the start of the sigmoid's fit).
_MMLU_WEIGHTS = {"stem": 0.215, "humanities": 0.335, "social_sciences": 0.219, "other": 0.231}
OLMO_TASKS = {
    "mmlu_avg_test_5shot": ({f"mmlu_{g}_test": w for g, w in _MMLU_WEIGHTS.items()}, 0.25),
    **{f"{name}_5shot": ({name: 1.0}, chance) for name, chance in (
        ("hellaswag_val", 0.25), ("arc_challenge_test", 0.25), ("arc_easy_test", 0.25), ("piqa_val", 0.5),
        ("csqa_val", 0.2), ("socialiqa_val", 1 / 3), ("openbookqa_test", 0.25))},
}
OLMO_TARGETS = {"13B-5T": (13202396160, 5000088518656), "7B-4T": (6887575552, 3945065873408)}
# The paper's two-step forecasts of the 13B-5T run (src/scripts/paper/figures/chained_main.csv, `Pred`)
OLMO_PUBLISHED_13B = {
    "mmlu_avg_test_5shot": 0.5126799915287485, "hellaswag_val_5shot": 0.8530359563499285,
    "arc_challenge_test_5shot": 0.5267099358093748, "arc_easy_test_5shot": 0.7724156000459201,
    "piqa_val_5shot": 0.820804177694882, "csqa_val_5shot": 0.7760887505172276,
    "socialiqa_val_5shot": 0.5994822062474122, "openbookqa_test_5shot": 0.4486477676972386}
OLMO_COMMIT = "67a3f440f787d020da35e3ca8eeae475fae754f5"
OLMO_URL = f"https://raw.githubusercontent.com/allenai/OLMo-ladder/{OLMO_COMMIT}/src/scripts/paper/data/ladder-runs/"
OLMO_SHA256_PREFIXES = {
    "190M-1xC": "8ac0066547d5edec", "190M-2xC": "db90c75f8d031d07", "190M-5xC": "aefe54fa03bd158d",
    "190M-10xC": "192b115c3f02b650", "370M-1xC": "3597a61872596aff", "370M-2xC": "73c686e580ad0600",
    "370M-5xC": "199905d322b0332b", "370M-10xC": "3f25b4ec4035caeb", "760M-1xC": "a830185275c91cc0",
    "760M-2xC": "8c1ad2bf7da390b9", "760M-5xC": "9c08b58d2625f427", "760M-10xC": "e256c9df6d3b7af6",
    "1B-1xC": "7fe91f0552829238", "1B-2xC": "34ba12a08a52e10e", "1B-5xC": "d195153f05b846f6",
    "1B-10xC": "ec7e7487c67a774d"}


def olmo_runs_dir(path: str | None = None) -> Path:
    """The directory of the 16 ladder-run CSVs: `path` (the directory, or one holding ladder-runs/), else the cached
    downloads from allenai/OLMo-ladder at a pinned commit."""
    if path:
        directory = Path(path)
        directory = directory / "ladder-runs" if (directory / "ladder-runs").is_dir() else directory
        missing = [run for run in OLMO_SHA256_PREFIXES if not (directory / f"{run}.csv").exists()]
        require(not missing, f"path={path}: no {missing[0] if missing else ''}.csv; give the OLMo ladder's "
                             f"ladder-runs directory (its 16 SIZE-MxC.csv files)")
        return directory
    for run, digest in OLMO_SHA256_PREFIXES.items():
        cached_download(OLMO_URL + f"{run}.csv", digest, f"olmo-ladder/{run}.csv", "DIR/ladder-runs")
    return cache_dir() / "refdata" / "olmo-ladder"


GADRE_RUNS = [("d=96_l=8_h=4", 20), ("d=512_l=8_h=4", 20), ("d=576_l=24_h=8", 20), ("d=1024_l=24_h=8", 20),
              ("d=96_l=8_h=4", 320)]  # their default five runs (RedPajama)
GADRE_ERROR_RUNS = GADRE_RUNS + [("open_lm_1b", 20)]
GADRE_TARGETS = [("open_lm_1b", 640), ("open_lm_7b", 20)]
# relative errors at the targets: the loss (over-training law), the 17-task average top-1 error (error law)
GADRE_PUBLISHED = {"loss": (0.007103, 0.007320), "err_avg17": (0.036365, 0.000464)}


# Their raw files (mlfoundations/scaling, exp_data/ at a pinned commit): each run's model JSON (N, D, eval losses)
# and its heavy-eval JSON (46 downstream accuracies), sha256 prefixes of (model, evals).
GADRE_COMMIT = "a003c4913793ac2ae7ef87b28ecb562955d026d5"
GADRE_URL = f"https://raw.githubusercontent.com/mlfoundations/scaling/{GADRE_COMMIT}/exp_data/"
GADRE_SHA256_PREFIXES = {
    "d=96_l=8_h=4-1.0": ("26a57687eeca30c6", "913f558fa989bc7b"),
    "d=512_l=8_h=4-1.0": ("ce2d8bb874a2bea9", "4626735ceef8744c"),
    "d=576_l=24_h=8-1.0": ("ae44bcbd76ff41b9", "ff1f6b29041669ec"),
    "d=1024_l=24_h=8-1.0": ("36fd4755d70b7bc8", "d457e978adc3b9c2"),
    "d=96_l=8_h=4-16.0": ("8b10ab3caf7bafef", "a900f9f040a1844c"),
    "open_lm_1b-1.0": ("c3703ae56c0f00ef", "1e93269d6e4b4886"),
    "open_lm_1b-32.0": ("fe055b9c29dd3ad5", "f195ffc908505011"),
    "open_lm_7b-1.0": ("62f938a0be520657", "98fcd35964314b46")}
# their 17-task split (scaling/constants.py SUBSET): err_avg17 is the mean top-1 error over these
GADRE_SUBSET = ("bigbench_operators", "pubmed_qa_labeled", "hellaswag_zeroshot", "boolq", "arc_easy", "coqa",
                "bigbench_dyck_languages", "lambada_openai", "bigbench_novel_concepts", "winograd",
                "bigbench_cs_algorithms", "commonsense_qa", "bigbench_qa_wikidata", "hellaswag", "copa", "squad",
                "piqa")


def gadre_table(path: str | Path | None = None, dataset: str = "rpj") -> Table:
    """One row per run (train_dataset, model_name, N_params, D_tokens, tokens_per_param_M, loss_c4_val, err_avg17):
    from `path` (a runs_flat.csv, a directory holding one, or their exp_data/ with models/ and evals/), else from
    their raw files for the runs the reproduction needs, downloaded (pinned) and parsed as their code parses them."""
    if path is not None:
        path = Path(path)
        flat = path / "runs_flat.csv" if path.is_dir() else path
        if flat.is_file():
            return Table.read_csv(flat)
        raw = path / "raw" if (path / "raw" / "models").is_dir() else path
        require((raw / "models").is_dir(), f"path={path}: neither a runs_flat.csv nor their exp_data/ (models/, "
                                           f"evals/)")
        files = {run: (raw / "models" / f"{dataset}-{run}.json", raw / "evals" / f"evaluation_{dataset}-{run}_heavy.json")
                 for run in GADRE_SHA256_PREFIXES}
    else:
        files = {run: tuple(cached_download(GADRE_URL + sub, digest, f"gadre/{sub}", "runs_flat.csv")
                            for sub, digest in ((f"models/{dataset}-{run}.json", pins[0]),
                                                (f"evals/evaluation_{dataset}-{run}_heavy.json", pins[1])))
                 for run, pins in GADRE_SHA256_PREFIXES.items()}
    rows = [_gadre_row(*pair) for pair in files.values()]
    return Table({key: [row[key] for row in rows] for key in rows[0]})


def _gadre_row(model_json: Path, eval_json: Path) -> dict:
    """A run's row, as their scaling/shared.py parse_model_json makes it."""
    from ladder.io import read_json

    model, evals = read_json(model_json), read_json(eval_json)
    hyper = model["hyperparameters"]
    losses = {result["val_data"][0].split("/")[-2]: result["loss"] for result in model["results"]}
    require("c4_val" in losses, f"{model_json}: no C4 eval loss")
    accuracy = evals["eval_metrics"]["icl"]
    return {"name": model["name"], "train_dataset": model["dataset_name"],
            "model_name": hyper["model"].split("/")[-1].split(".")[0], "N_params": float(hyper["params"]),
            "D_tokens": float(hyper["tokens"]), "tokens_per_param_M": 20.0 * hyper["chinchilla_multiplier"],
            "loss_c4_val": float(losses["c4_val"]),
            "err_avg17": float(np.mean([1.0 - accuracy[k] for k in GADRE_SUBSET]))}


def gadre_rows(raw: Table, runs, dataset: str = "rpj") -> np.ndarray:
    """Row indices of (model_name, tokens per parameter M) runs trained on `dataset`."""
    out = []
    for name, multiple in runs:
        rows = np.flatnonzero((raw["train_dataset"] == dataset) & (raw["model_name"] == name)
                              & np.isclose(raw["tokens_per_param_M"], multiple))
        require(len(rows) == 1, f"no run {name} at M={multiple} on {dataset} in the Gadre table")
        out.append(int(rows[0]))
    return np.array(out)


def load_olmo_task(directory: str | Path, task: str) -> Table:
    """Every evaluation of the OLMo ladder's 16 runs for one task: run, params, tokens, task_loss (bits per byte),
    accuracy (length-normalised), as two_step reads them."""
    require(task in OLMO_TASKS, f"task={task!r}: use one of {', '.join(OLMO_TASKS)}")
    weights, _ = OLMO_TASKS[task]
    w = np.array(list(weights.values()))
    run, params, tokens, task_loss, accuracy = [], [], [], [], []
    for size, n in OLMO_SIZES.items():
        for multiple in (1, 2, 5, 10):
            name = f"{size}-{multiple}xC"
            rows = Table.read_csv(Path(directory) / f"{name}.csv")
            bpb = np.stack([rows[f"eval/downstream_bpb/{k}_rc_5shot_bpb"] for k in weights], axis=1)
            acc = np.stack([rows[f"eval/downstream/{k}_rc_5shot_len_norm"] for k in weights], axis=1)
            run += [name] * len(rows)
            params += [n] * len(rows)
            tokens += list(rows["throughput/total_tokens"])
            task_loss += list(bpb @ w / w.sum())
            accuracy += list(acc @ w / w.sum())
    return Table({"run": run, "params": params, "tokens": tokens, "task_loss": task_loss, "accuracy": accuracy})


def load_olmo_ladder(directory: str | Path, loss_column: str = "eval/c4_en-validation/CrossEntropyLoss") -> Table:
    """The OLMo ladder's 16 runs (Bhagia et al. 2024), one row each: its last evaluation, at its final tokens."""
    runs = []
    for size, params in OLMO_SIZES.items():
        for multiple in (1, 2, 5, 10):
            last = Table.read_csv(Path(directory) / f"{size}-{multiple}xC.csv").take([-1])
            runs.append((f"{size}-{multiple}xC", params, float(last["throughput/total_tokens"][0]),
                         float(last[loss_column][0])))
    name, params, tokens, loss = zip(*runs)
    return Table({"run": list(name), "params": params, "tokens": tokens,
                  "flops": 6 * np.array(params) * np.array(tokens), "loss": loss})
