"""What people read: the terminal's tables (here and in tables.py) and the HTML page (page.py, ladder_page.py)."""

from __future__ import annotations


def human(value: float) -> str:
    """1234567 -> '1.23M'."""
    value = float(value)
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    def line(row):
        return "  ".join(str(cell).rjust(width) if i else str(cell).ljust(width) for i, (cell, width) in
                         enumerate(zip(row, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths]), *[line(row) for row in rows]])


def print_json(data) -> None:
    """`format=json`: NaN and infinities as null, so the output is valid JSON."""
    import json

    from ladder.io import _json_safe
    print(json.dumps(_json_safe(data), indent=2, default=float))
