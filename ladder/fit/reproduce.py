"""Published data to refit: Chinchilla's 245 points as Epoch AI extracted them (Besiroglu et al. 2024)."""

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


def chinchilla_csv(path: str | None = None) -> Path:
    """The CSV: `path` if given, else the cached download, else download it (needs the network)."""
    if path:
        require(Path(path).exists(), f"path={path}: no such file")
        return Path(path)
    cached = cache_dir() / "refdata" / "chinchilla_svg_extracted_data.csv"
    if not cached.exists():
        try:
            with urllib.request.urlopen(CHINCHILLA_URL, timeout=15) as response:
                data = response.read()
        except OSError as error:
            raise LadderError(f"could not download {CHINCHILLA_URL} ({error}); connect to the network or pass "
                              f"path=svg_extracted_data.csv") from None
        digest = hashlib.sha256(data).hexdigest()
        require(digest.startswith(CHINCHILLA_SHA256_PREFIX),
                f"downloaded {CHINCHILLA_URL} has sha256 {digest[:12]}..., not {CHINCHILLA_SHA256_PREFIX}...; "
                f"the file changed upstream: pass path=... to a known copy")
        atomic_write_bytes(cached, data)
    return cached


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
