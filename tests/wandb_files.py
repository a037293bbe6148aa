"""Reading what W&B wrote offline: a run's .wandb file is a LevelDB-style log (32 KiB blocks; each record a 7-byte
header of CRC, length and type, then the bytes of a protobuf Record), after a 7-byte ':W&B' header."""

import json
from pathlib import Path

BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path}: not a W&B run file"
    pos, pending, found = 7, b"", []
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == FULL:
            found.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            found.append(pending + chunk)
    out = []
    for raw in found:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        out.append(record)
    return out


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def history(path: Path) -> list[dict]:
    """Every logged row, as {key: value}."""
    return [{_key(item): json.loads(item.value_json) for item in r.history.item}
            for r in records(path) if r.WhichOneof("record_type") == "history"]


def summary(path: Path) -> dict:
    """The run's summary as its last summary records leave it."""
    out = {}
    for r in records(path):
        if r.WhichOneof("record_type") == "summary":
            out.update({_key(item): json.loads(item.value_json) for item in r.summary.update})
    return out


def metric_axes(path: Path) -> dict[str, str]:
    """define_metric's glob (or name) -> its x axis."""
    axes = {}
    for r in records(path):
        if r.WhichOneof("record_type") == "metric":
            axes[r.metric.glob_name or r.metric.name] = r.metric.step_metric
    return axes


def config(path: Path) -> dict:
    """The run's config: what wandb.init was given (the run record) and any later updates."""
    out = {}
    for r in records(path):
        kind = r.WhichOneof("record_type")
        if kind in ("run", "config"):
            updates = r.run.config.update if kind == "run" else r.config.update
            out.update({_key(item): json.loads(item.value_json) for item in updates})
    out.pop("_wandb", None)
    return out
