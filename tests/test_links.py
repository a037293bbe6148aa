"""No write under runs_dir leaves it through a symbolic link (issue 30): real links in a rung's directory pointing at
files and directories elsewhere; `ladder train` refuses them in one line and what they point at is unchanged."""

import os

import pytest

from test_train import RUNG, overrides, summary


def outside_files(tmp_path):
    """A file and a directory outside runs_dir, with their contents."""
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "file.txt").write_text("the user's file\n")
    (outside / "dir" / "notes.txt").write_text("the user's notes\n")
    (outside / "summary.json").write_text('{"status": "interrupted", "budgets": {}}\n')  # read before the lock
    return outside


def snapshot(directory):
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_lock_and_metrics_linked_elsewhere_are_refused_and_untouched(cache, tmp_path, run_cli):
    outside = outside_files(tmp_path)
    (outside / "other.txt").write_text("another file of the user's\n")
    before = snapshot(outside)
    rung = tmp_path / "runs" / "tiny" / RUNG
    rung.mkdir(parents=True)
    (rung / ".lock").symlink_to(outside / "file.txt")
    (rung / "metrics.jsonl").symlink_to(outside / "other.txt")
    code, out, err = run_cli("train", *overrides(tmp_path / "runs"))
    assert code == 2 and err.count("\n") == 1, err
    assert "is a symbolic link (to " in err and "ladder never writes through links: remove it" in err
    assert snapshot(outside) == before
    assert sorted(os.listdir(rung)) == [".lock", "metrics.jsonl"]  # nothing written beside them either


@pytest.mark.parametrize("entry", ["summary.json", "config.yaml", "checkpoints", "budgets", "the rung itself"])
def test_any_link_in_a_run_directory_is_refused_by_name(cache, tmp_path, run_cli, entry):
    outside = outside_files(tmp_path)
    before = snapshot(outside)
    rung = tmp_path / "runs" / "tiny" / RUNG
    if entry == "the rung itself":
        rung.parent.mkdir(parents=True)
        link, target = rung, outside / "dir"
    else:
        rung.mkdir(parents=True)
        link = rung / entry
        target = outside / {"summary.json": "summary.json", "config.yaml": "file.txt"}.get(entry, "dir")
    link.symlink_to(target)
    code, _, err = run_cli("train", *overrides(tmp_path / "runs"))
    assert code == 2 and err.count("\n") == 1, err
    assert f"{link}: is a symbolic link (to {target}); ladder never writes through links: remove it" in err
    assert snapshot(outside) == before


def test_runs_dir_itself_may_be_a_link(cache, tmp_path, run_cli):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "runs").symlink_to(tmp_path / "elsewhere")
    code, _, err = run_cli("train", *overrides(tmp_path / "runs"))
    assert code == 0, err
    assert summary(tmp_path / "elsewhere")["status"] == "done"


def test_writes_never_follow_a_link_at_the_destination(tmp_path):
    from ladder.errors import LadderError
    from ladder.io import atomic_write_text, open_no_follow

    (tmp_path / "target.txt").write_text("keep\n")
    (tmp_path / "link").symlink_to(tmp_path / "target.txt")
    (tmp_path / "dangling").symlink_to(tmp_path / "nothing-here")
    for path in (tmp_path / "link", tmp_path / "dangling"):
        with pytest.raises(LadderError, match="is a symbolic link"):
            atomic_write_text(path, "overwritten\n")
        with pytest.raises(LadderError, match="ladder never writes through links"):
            open_no_follow(path, "a")
    assert (tmp_path / "target.txt").read_text() == "keep\n" and not (tmp_path / "nothing-here").exists()
    assert (tmp_path / "link").is_symlink() and (tmp_path / "dangling").is_symlink()
