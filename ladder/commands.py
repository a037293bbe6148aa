"""The body of each CLI command: read the composed config, call the stage, print a table or JSON."""

from __future__ import annotations

from ladder.cli import print_json
from ladder.errors import require


def _format(cfg) -> str:
    fmt = cfg.get("format", "table")
    require(fmt in ("table", "json"), f"format={fmt!r}: use table or json")
    return fmt


def plan(cfg) -> int:
    from ladder.plan import format_plan, make_plan, plan_to_dict

    fmt = _format(cfg)
    resolved = make_plan(cfg)
    if fmt == "json":
        print_json(plan_to_dict(resolved))
    else:
        print(format_plan(resolved))
    return 0
