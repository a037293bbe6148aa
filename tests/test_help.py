"""`ladder COMMAND --help` for every command: what it does, its own keys with defaults, an example; printed before
any config is composed; docs/commands.md is the same text."""

from pathlib import Path

import pytest

from ladder.help import COMMANDS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_has_help_without_composing_a_config(command, flag, run_cli, monkeypatch):
    import ladder.cli

    def refuse(overrides):
        raise AssertionError("--help composed the config tree")
    monkeypatch.setattr(ladder.cli, "compose_config", refuse)
    code, out, err = run_cli(command, "ladder=not-a-ladder", flag)  # whatever else is wrong, help answers
    assert code == 0 and err == ""
    assert out.startswith(f"ladder {command}: {COMMANDS[command][1]}\n\n")
    description = out.split("\n\n")[1]
    assert len(description) > 80 and "usage" not in description
    assert "keys (default: meaning):" in out or "groups (default; choices):" in out
    example = out.split("example:\n")[1].splitlines()[0]
    assert example.startswith(f"  ladder {command}")


def test_help_lists_a_commands_keys_with_their_defaults(run_cli):
    code, out, _ = run_cli("train", "--help")
    assert code == 0
    assert "  train.log_every " in out and " 10: steps between metrics records" in out
    assert "  train.eval_points " in out and "auto: evaluations spread over the main run" in out
    assert "  logger.wandb " in out and "\n  ladder " in out and "olmo, pythia, tiny" in out
    assert "design." not in out and "tune." not in out  # its own keys, not the whole tree
    code, out, _ = run_cli("reproduce", "--help")  # was: "dataset=--help: use one of ..."
    assert code == 0 and "  dataset " in out and "chinchilla" in out


def test_ladder_help_lists_every_command(run_cli):
    for args in ([], ["--help"], ["-h"], ["help"]):
        code, out, _ = run_cli(*args)
        assert code == 0 and all(f"\n  {name} " in out for name in COMMANDS)
    code, out, _ = run_cli("help", "sweep")
    assert code == 0 and out.startswith("ladder sweep: ")
    code, _, err = run_cli("help", "swep")
    assert code == 2 and "help swep: no such command" in err


def test_docs_are_the_help_text():
    from ladder.help import markdown

    assert (ROOT / "docs" / "commands.md").read_text() == markdown(), \
        "docs/commands.md is stale: python -m ladder.help --markdown > docs/commands.md"


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    import re
    return {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in markdown.splitlines() if line.startswith("#")}


def test_every_link_of_the_readme_and_docs_resolves():
    import re

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert len(pages) > 8
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists() or (anchor and anchor not in anchors(file.read_text())):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300  # a newcomer reads it to the end
