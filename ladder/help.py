"""`ladder COMMAND --help`: what the command does, its own keys with their defaults and meanings, and an example.

One source for each part, never a composed config: the description and example are the command's docstring
(ladder/commands.py), each key's default and meaning are conf/config.yaml's value and comment, a group's choices are
the files in conf/<group>/. docs/commands.md is rendered from the same text (`python -m ladder.help --markdown`),
and a test keeps the two equal.
"""

from __future__ import annotations

import inspect
import re
import sys
import textwrap
from dataclasses import dataclass

from ladder.config import CONF_DIR, FILE_GROUPS, PLUGIN_OPTIONS

WIDTH = 118

# command -> (module:function, one-line help). Modules load lazily so `ladder plan` never imports torch.
COMMANDS = {
    "demo": ("ladder.commands:demo", "the main job: a tiny ladder, a fit and a checked forecast, offline on CPU"),
    "plan": ("ladder.commands:plan", "resolve a ladder into rungs and print what it will cost"),
    "prepare": ("ladder.commands:prepare", "tokenize a corpus into cached shards with a manifest"),
    "train": ("ladder.commands:train", "train one rung (resumes from its latest checkpoint)"),
    "sweep": ("ladder.commands:sweep", "launch every unfinished rung as a Hydra multirun (local or Slurm)"),
    "status": ("ladder.commands:status", "a table of the ladder's rungs: state, tokens, loss, jobs"),
    "watch": ("ladder.commands:watch", "a run against its forecast curve: in the band?, its final loss from so far"),
    "report": ("ladder.commands:report", "one self-contained HTML page of a ladder: plan, curves, fit, forecast, backtest"),
    "fit": ("ladder.commands:fit", "fit a scaling law to a CSV or a runs directory and forecast targets"),
    "eval": ("ladder.commands:evaluate", "score a finished rung's budgets on eval tasks and corpora (eval=[...])"),
    "export": ("ladder.commands:export", "a finished rung's budget as a transformers model and tokenizer (out=DIR)"),
    "collect": ("ladder.commands:collect", "gather run directories (or a CSV, or W&B) into one tidy CSV"),
    "reproduce": ("ladder.commands:reproduce", "refit published data (chinchilla, olmo, gadre) beside the published fits"),
    "tune": ("ladder.commands:tune", "sweep the learning rate at small sizes and fit a rule: a tuned recipe YAML"),
    "design": ("ladder.commands:design", "the cheapest ladder that forecasts the target within design.error"),
}

GROUPS = ("ladder", "recipe", "data", "eval", "law", "hydra/launcher")
LAUNCHER = ("basic", "basic runs rungs one after another in this process, local as parallel processes, slurm as "
                     "Slurm jobs (conf/hydra/launcher/)")
# the keys each command reads: a section stands for every key in it, a group for its choices
KEYS = {
    "demo": ["demo", "runs_dir", "fit.task", "ladder", "recipe", "data", "law"],
    "plan": ["format", "flops_convention", "hardware", "target", "train.eval_points", "train.eval_tokens", "ladder",
             "recipe", "data", "eval"],
    "prepare": ["format", "sweep.prepare_cpus", "sweep.prepare_timeout_min", "data", "ladder", "hydra/launcher"],
    "train": ["rung", "runs_dir", "train", "logger", "ladder", "recipe", "data", "eval"],
    "sweep": ["rungs", "submit_only", "runs_dir", "sweep", "train.overwrite", "ladder", "recipe", "data", "eval",
              "hydra/launcher"],
    "status": ["runs_dir", "format", "report", "ladder", "data"],
    "watch": ["watch", "format"],
    "report": ["runs_dir", "out", "fit", "bootstrap", "ci_level", "interval", "collect", "ladder", "law"],
    "fit": ["runs", "runs_dir", "out", "format", "target", "targets", "columns", "curves", "collect", "bootstrap",
            "ci_level", "backtest", "interval", "plots", "fit", "ladder", "law"],
    "eval": ["rung", "budget", "runs_dir", "train.device", "train.dtype", "train.eval_tokens", "train.eval_max_items",
             "ladder", "eval"],
    "export": ["rung", "budget", "out", "runs_dir", "ladder"],
    "collect": ["runs", "out", "runs_dir", "from_wandb", "curves", "collect", "columns", "ladder"],
    "reproduce": ["dataset", "path", "out", "format", "bootstrap", "ci_level", "plots", "law"],
    "tune": ["tune", "out", "fit.tune", "ladder", "recipe", "hydra/launcher"],
    "design": ["design", "target", "out", "format", "ci_level", "interval", "hardware", "ladder", "recipe"],
}


@dataclass
class Key:
    name: str
    default: str
    meaning: str


def config_keys() -> dict[str, Key]:
    """Every key of conf/config.yaml: its default as written, and its comment: the one after it (with the comment
    lines indented under it that continue it), else the comment lines just above it."""
    import yaml

    values = yaml.safe_load((CONF_DIR / "config.yaml").read_text())
    keys: dict[str, Key] = {}
    path: list[tuple[int, str]] = []  # (indent, key) of the sections the line is in
    last, above = None, []
    for line in (CONF_DIR / "config.yaml").read_text().splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if stripped.startswith("#") and last is not None and indent > last[1]:
            keys[last[0]].meaning += " " + stripped.lstrip("# ").strip()
            continue
        last = None
        if stripped.startswith("#"):
            above = [] if stripped.startswith("# ---") else [*above, stripped.lstrip("# ").strip()]
            continue
        match = re.match(r"(\s*)([A-Za-z_][\w]*):(.*)$", line)
        comment_above, above = " ".join(above), []
        if not match or not stripped:
            continue
        while path and path[-1][0] >= indent:
            path.pop()
        name = ".".join([p for _, p in path] + [match.group(2)])
        value, _, comment = match.group(3).partition("#")
        comment = comment.strip() or comment_above
        node = values
        for part in name.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) or (not value.strip() and node is None and name != "defaults"):
            path.append((indent, match.group(2)))  # a section; its comment describes its keys
            keys[name] = Key(name, "", comment.strip())
        elif name.split(".")[0] != "defaults":
            keys[name] = Key(name, value.strip() or "null", comment.strip())
            last = (name, indent + len(match.group(2)))
    return keys


def group_choices(group: str) -> list[str]:
    return sorted({p.stem for p in (CONF_DIR / group).glob("*.yaml")} | PLUGIN_OPTIONS.get(group, set()))


def group_defaults() -> dict[str, tuple[str, str]]:
    """group -> (its default in config.yaml's defaults list, the comment there)."""
    out = {}
    for line in (CONF_DIR / "config.yaml").read_text().splitlines():
        match = re.match(r"\s*-\s*([\w/]+):\s*([^#]+?)\s*(?:#\s*(.*))?$", line)
        if match:
            out[match.group(1)] = (match.group(2), match.group(3) or "")
    return out


def command_doc(name: str) -> tuple[str, str]:
    """(description, example) from the command's docstring: paragraphs, then a line `Example: ladder ...`."""
    module, function = COMMANDS[name][0].split(":")
    doc = inspect.getdoc(getattr(__import__(module, fromlist=[function]), function)) or ""
    description, _, example = doc.partition("Example:")
    return description.strip(), example.strip()


def rows(name: str) -> tuple[list[Key], list[tuple[str, str, str]]]:
    """(the command's keys with defaults and meanings, its groups as (group, default, choices))."""
    known, defaults = config_keys(), group_defaults()
    keys, groups = [], []
    for wanted in KEYS[name]:
        if wanted in GROUPS:
            default, note = defaults.get(wanted, LAUNCHER if wanted == "hydra/launcher" else ("(none)", ""))
            choices = ", ".join(group_choices(wanted))
            groups.append((wanted, default, f"{choices}; {note}" if note else choices))
            continue
        matched = [k for n, k in known.items() if n.startswith(wanted + ".") and k.default] or \
            [known[n] for n in [wanted] if n in known]
        if not matched:
            raise KeyError(f"help: {name} names {wanted!r}, which conf/config.yaml does not have")
        keys += matched
    return keys, groups


def command_help(name: str) -> str:
    """The command's --help."""
    description, example = command_doc(name)
    keys, groups = rows(name)
    width = max([len(k.name) for k in keys] + [len(g) for g, _, _ in groups] + [10])

    def entry(name_: str, text_: str) -> list[str]:
        return textwrap.wrap(text_, WIDTH, initial_indent=f"  {name_:<{width}}  ",
                             subsequent_indent=" " * (width + 4), break_on_hyphens=False)
    out = [f"ladder {name}: {COMMANDS[name][1]}", "", *_paragraphs(description), "",
           f"usage: ladder {name} [key=value ...]", ""]
    if keys:
        out.append("keys (default: meaning):")
        for k in keys:
            out += entry(k.name, k.default + (f": {k.meaning}" if k.meaning else ""))
        out.append("")
    if groups:
        out.append("groups (default; choices):")
        for g, default, choices in groups:
            out += entry(g, f"{default}; {choices}{'; or a file, DIR/' + g + '/NAME.yaml' if g in FILE_GROUPS else ''}")
        out.append("")
    out += ["example:", f"  {example}", "", f"every key: ladder {name} --cfg; the guide: docs/commands.md#{name}"]
    return "\n".join(out)


def _paragraphs(text_: str) -> list[str]:
    """A docstring's paragraphs, each wrapped to WIDTH; lines indented in the docstring (commands) kept as they are."""
    out = []
    for paragraph in text_.split("\n\n"):
        lines = paragraph.splitlines()
        out += lines if any(line.startswith("  ") for line in lines) else \
            textwrap.wrap(" ".join(lines), WIDTH, break_on_hyphens=False)
        out.append("")
    return out[:-1]


def usage() -> str:
    """`ladder --help`: the commands, one line each."""
    return ("usage: ladder <command> [key=value ...] [--cfg] [--help]\n\ncommands:\n"
            + "\n".join(f"  {name:<10} {summary}" for name, (_, summary) in COMMANDS.items())
            + "\n\nOverrides are Hydra's: ladder=olmo target.params=13e9 hardware.gpu=a100 format=json. "
              "`ladder COMMAND --help` lists a command's keys; --cfg prints the composed config.")


def markdown() -> str:
    """docs/commands.md: every command's --help as a section."""
    parts = ["# Commands", "", "Generated from each command's `--help` (`python -m ladder.help --markdown > "
             "docs/commands.md`); `tests/test_help.py` keeps the two equal.", ""]
    parts += [f"- [`ladder {name}`](#{name}): {summary}" for name, (_, summary) in COMMANDS.items()]
    for name in COMMANDS:
        parts += ["", f"## {name}", "", "```text", command_help(name), "```"]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    print(markdown() if "--markdown" in sys.argv else usage(), end="" if "--markdown" in sys.argv else "\n")
