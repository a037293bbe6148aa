"""What people read: the terminal's tables (rich; here and in tables.py) and the HTML page (page.py, ladder_page.py)."""

from __future__ import annotations


def human(value: float) -> str:
    """1234567 -> '1.23M'."""
    value = float(value)
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.3g}"


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table (rich): the first column left-aligned, numbers right-aligned, never wrapped or coloured,
    so logs and pipes read it as a terminal does."""
    import io

    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="", highlight=False)
    for i, name in enumerate(header):
        table.add_column(Text(str(name)), justify="right" if i else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))  # Text: a cell's "[lo, hi]" is not markup
    screen = Console(file=io.StringIO(), width=100_000, color_system=None, highlight=False, emoji=False)
    screen.print(table)
    return "\n".join(line.rstrip() for line in screen.file.getvalue().rstrip("\n").splitlines())


def print_json(data) -> None:
    """`format=json`: NaN and infinities as null, so the output is valid JSON."""
    import json

    from ladder.io import _json_safe
    print(json.dumps(_json_safe(data), indent=2, default=float))
