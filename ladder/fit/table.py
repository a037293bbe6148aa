"""The tidy table every law reads: named numpy columns, read from a CSV or collected from run directories."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ladder.errors import LadderError, require
from ladder.io import atomic_write_text


class Table:
    """Columns of equal length; numeric columns are float arrays, the rest string arrays."""

    def __init__(self, columns: dict[str, np.ndarray | list]):
        self.columns = {name: _as_array(values) for name, values in columns.items()}
        lengths = {len(v) for v in self.columns.values()}
        require(len(lengths) <= 1, f"table columns differ in length: {sorted(lengths)}")

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __contains__(self, name: str) -> bool:
        return name in self.columns

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def get(self, name: str, default=None):
        return self.columns.get(name, default)

    def take(self, index) -> "Table":
        return Table({name: values[index] for name, values in self.columns.items()})

    @classmethod
    def concat(cls, tables: list["Table"]) -> "Table":
        """The rows of `tables` (the same columns) one after another."""
        return cls({k: np.concatenate([np.asarray(t[k]) for t in tables]) for k in tables[0].columns})

    @classmethod
    def from_frame(cls, frame) -> "Table":
        """A pandas DataFrame's columns (integer columns become floats, as every law computes in them)."""
        return cls({str(name): frame[name].to_numpy() for name in frame.columns})

    def to_frame(self):
        """A pandas DataFrame; whole-number columns (seeds, parameter counts, tokens) as integers."""
        import pandas as pd

        def column(values):
            finite = values[np.isfinite(values)] if values.dtype.kind == "f" else None
            if finite is not None and len(finite) and np.all(finite == np.round(finite)) and \
                    np.all(np.abs(finite) < 2 ** 53):
                return pd.array([None if np.isnan(v) else int(v) for v in values], dtype="Int64")
            return values
        return pd.DataFrame({name: column(values) for name, values in self.columns.items()})

    @classmethod
    def read_csv(cls, path: str | Path) -> "Table":
        """Through pandas: a BOM (Excel's UTF-8 CSV) is not part of a name; `;` separators (with decimal commas)
        and tabs are recognised; integer columns read as numbers; a blank cell is missing."""
        import pandas as pd

        path = Path(path)
        require(path.exists(), f"runs={path}: no such file or directory")
        try:
            with open(path, encoding="utf-8-sig") as f:
                header = f.readline()
            sep = max(",;\t", key=header.count)
            exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}  # 3: default
            frame = pd.read_csv(path, sep=sep, decimal="," if sep == ";" else ".", encoding="utf-8-sig",
                                keep_default_na=False, na_values=[""], skipinitialspace=True, **exact)
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
            raise LadderError(f"{path}: not a readable CSV ({str(error).strip().splitlines()[0]})") from None
        require(len(frame) > 0, f"{path}: no data rows")
        names = [str(name) for name in frame.columns]
        require(all(names) and not any(n.startswith("Unnamed: ") for n in names), f"{path}: malformed header "
                f"{[n if not n.startswith('Unnamed: ') else '' for n in names]}")
        for name in frame.columns:  # text columns keep "" for a blank, as the laws' checks expect
            if not pd.api.types.is_numeric_dtype(frame[name]):
                frame[name] = frame[name].fillna("").astype(str)
        return cls.from_frame(frame)

    def to_csv(self) -> str:
        return self.to_frame().to_csv(index=False, lineterminator="\n")

    def write_csv(self, path: str | Path) -> None:
        atomic_write_text(path, self.to_csv())


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return text == ""  # a blank is NaN, reported as missing


def _as_array(values) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind in "fiub":
        return array.astype(float)
    try:
        return np.array([float(v) if v not in ("", None) else np.nan for v in array], dtype=float)
    except (TypeError, ValueError):
        return array.astype(str)


def standard_table(table: Table, columns: dict, source: str, required=("params", "tokens", "loss")) -> Table:
    """Rename the user's columns to the canonical names, derive flops, and refuse data no law can use honestly."""
    renamed = {}
    for canonical, name in columns.items():
        if name in table:
            renamed[canonical] = table[name]
    for canonical in required:
        if canonical not in columns and canonical in table:  # a column no option renames (the curve law's)
            renamed[canonical] = table[canonical]
        require(canonical in renamed, f"{source}: no column {columns.get(canonical, canonical)!r} for {canonical}; "
                                      f"available: {', '.join(table.columns)} (rename with columns.{canonical}=NAME)")
    extra = {name: values for name, values in table.columns.items() if name not in columns.values()}
    checked = ("params", "tokens", "loss", "flops",  # an LR may be 0 (a cooldown's end): the curve law checks it
               *[c for c in required if c not in ("run", "budget", "lr_frac")])
    for canonical in dict.fromkeys(checked):  # each given column checked before flops is derived from two of them
        if canonical in renamed:
            _check_column(renamed[canonical], columns.get(canonical, canonical), canonical, source)
    if "flops" not in renamed and "params" in renamed and "tokens" in renamed:
        with np.errstate(over="ignore"):
            renamed["flops"] = 6 * renamed["params"] * renamed["tokens"]  # chinchilla_6nd when none is given
        bad = np.flatnonzero(~np.isfinite(renamed["flops"]))
        if bad.size:
            raise LadderError(f"{source}: 6 x params x tokens overflows a float in row {_rows(bad)} (params "
                              f"{renamed['params'][bad[0]]:.3g}, tokens {renamed['tokens'][bad[0]]:.3g}); fix "
                              f"those rows or give a flops column")
        renamed["flops_convention"] = np.full(len(table), "chinchilla_6nd")
    out = Table({**extra, **renamed})
    keys = [c for c in ("run", "params", "tokens", "loss") if c in out]
    seen: dict[tuple, int] = {}
    for i in range(len(out)):
        key = tuple(out[c][i] for c in keys)
        require(key not in seen, f"{source}: rows {seen.get(key)} and {i} are duplicates ({', '.join(keys)}); "
                                 f"drop one")
        seen[key] = i
    return out


def _check_column(values: np.ndarray, name: str, canonical: str, source: str) -> None:
    """A column a law computes with: numbers, each finite, and positive but for accuracy (a fraction: 0 counts)."""
    if values.dtype.kind != "f":
        cells = [str(v) for v in values]
        row = next(i for i, v in enumerate(cells) if not _is_number(v))
        raise LadderError(f"{source}: column {name!r} is not numeric: row {row} holds {cells[row]!r}; fix or drop "
                          f"that row")
    for test, what in ((np.isnan, "NaN or missing"), (np.isinf, "infinite")):
        bad = np.flatnonzero(test(values))
        require(bad.size == 0, f"{source}: {canonical} is {what} in row {_rows(bad)}; drop or fix those rows")
    bad = np.flatnonzero(values <= 0)
    require(canonical == "accuracy" or bad.size == 0, f"{source}: {canonical} is zero or negative in row "
                                                      f"{_rows(bad)}; {canonical} must be positive")


def flops_per_nd(table: Table) -> float:
    """FLOPs per parameter-token of a table's convention (6 for chinchilla_6nd), read off its rows."""
    return float(np.median(table["flops"] / (table["params"] * table["tokens"])))


def _rows(index: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in index[:5])
    return shown + (f" (and {index.size - 5} more)" if index.size > 5 else "")
