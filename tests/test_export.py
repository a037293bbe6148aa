"""`ladder export` (issues 27 and 30): it replaces only its own earlier export, refuses anything else before any
work and deletes nothing of yours; a rung on raw bytes exports a byte-level tokenizer that gives ladder's ids and a
model whose logits are ladder's."""

import json
import os

import numpy as np
import pytest

from test_train import RUNG, overrides

MARKER = ".ladder-export.json"


def snapshot(directory):
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def hf_shaped(directory, *extra):
    """A model directory of the user's, as the hub writes them, with their own notes."""
    directory.mkdir(parents=True)
    (directory / "config.json").write_text('{"model_type": "llama"}\n')
    (directory / "model-00001-of-00002.safetensors").write_bytes(os.urandom(4096))
    (directory / "NOTES.md").write_text("my notes on this model\n")
    for name in extra:
        (directory / name).write_text(f"{name} of the user's\n")
    return directory


@pytest.fixture
def no_work(monkeypatch):
    """A refusal must come before any work: building the model fails the test."""
    import ladder.train.export as export

    def never(*args, **kwargs):
        raise AssertionError("the model was built before the refusal")
    monkeypatch.setattr(export, "build_model", never)


def test_a_directory_ladder_did_not_write_survives_and_is_refused_in_one_line(reference, tmp_path, run_cli, no_work):
    victim = hf_shaped(tmp_path / "victim_model")
    before = snapshot(victim)
    code, out, err = run_cli("export", *overrides(reference), f"out={victim}")
    assert code == 2 and err.count("\n") == 1, err
    assert f"out={victim}: exists and is not an export of ladder's (no {MARKER})" in err
    assert snapshot(victim) == before and os.listdir(tmp_path) == ["victim_model"]  # no partial left beside


def test_the_current_directory_and_those_above_are_refused(reference, tmp_path, run_cli, monkeypatch, no_work):
    here = hf_shaped(tmp_path / "work" / "thesis", "thesis.tex")
    (here / MARKER).write_text(json.dumps({"files": sorted(os.listdir(here))}))  # even one that says it is ours
    before = snapshot(tmp_path)
    monkeypatch.chdir(here)
    for out in (".", "..", str(tmp_path), "./"):
        code, _, err = run_cli("export", *overrides(reference), f"out={out}")
        assert code == 2 and err.count("\n") == 1, (out, err)
        assert "out=" in err and ": the current directory, or one above it; name a new directory" in err
    assert snapshot(tmp_path) == before


def test_an_export_is_replaced_by_the_next_but_never_what_was_added_to_it(reference, tmp_path, run_cli):
    out = tmp_path / "exported"
    for _ in range(2):  # a new directory, then ladder's own export replaced
        code, _, err = run_cli("export", *overrides(reference), f"out={out}")
        assert code == 0, err
    marker = json.loads((out / MARKER).read_text())
    assert (marker["ladder"], marker["rung"], marker["budget"]) == ("tiny", RUNG, "20k")
    assert marker["rung_identity"] and marker["data_fingerprint"] and "config.json" in marker["files"]
    assert sorted(os.listdir(tmp_path)) == ["exported"]  # no partial or set-aside directory left
    (out / "NOTES.md").write_text("added by hand\n")
    before = snapshot(out)
    code, _, err = run_cli("export", *overrides(reference), f"out={out}")
    assert code == 2 and "holds NOTES.md" in err and err.count("\n") == 1, err
    assert snapshot(out) == before


def test_a_bytes_rung_exports_ladders_ids_and_logits(reference, tmp_path, run_cli):
    import torch
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ladder.config import compose_config
    from ladder.data.tokenizers import ByteTokenizer
    from ladder.model.build import build_model
    from ladder.plan import make_plan
    from ladder.rundir import RunDir
    from ladder.train.evaluate import budget_weights
    from ladder.train.export import byte_chars

    out = tmp_path / "hf"
    code, _, err = run_cli("export", *overrides(reference), "budget=10k", f"out={out}")
    assert code == 0, err

    tokenizer = AutoTokenizer.from_pretrained(out)
    points = [*range(1, 0x800), *(p for p in range(0x800, 0x110000, 0x800) if not 0xD800 <= p < 0xE000)]
    text = "".join(map(chr, points)) + " <|endoftext|> Ā 数据 🚀 \0 def f(x):\n\treturn x\r\n"
    ids = ByteTokenizer().encode_batch([text])[0].tolist()
    assert set(ids) == set(range(0xF5)) - {0xC0, 0xC1}  # every byte UTF-8 text can hold
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == ids
    assert tokenizer(text)["input_ids"] == [ByteTokenizer.eos_id] + ids  # the EOS as BOS, as ladder's requests
    assert tokenizer.bos_token_id == tokenizer.eos_token_id == ByteTokenizer.eos_id and len(tokenizer) == 256
    assert tokenizer.decode(ids) == text
    assert sorted(byte_chars()) == sorted(ByteLevel.alphabet())  # the table every byte-level tokenizer uses

    cfg = compose_config(overrides(reference))
    rung = make_plan(cfg).rung(RUNG)
    run = RunDir.of(reference, "tiny", RUNG)
    ours = build_model(rung.spec, seed=rung.seed).eval()
    ours.load_state_dict(budget_weights(run, "10k", run.summary()["budgets"]["10k"]))
    theirs = AutoModelForCausalLM.from_pretrained(out).eval()
    batch = torch.tensor([[ByteTokenizer.eos_id] + ids[:rung.spec.seq_len - 1]])
    with torch.no_grad():
        np.testing.assert_array_equal(theirs(batch).logits.numpy(), ours(batch).logits.numpy())


def test_an_empty_directory_is_taken_and_a_failed_export_leaves_nothing(reference, tmp_path, run_cli, monkeypatch):
    import ladder.train.export as export

    out = tmp_path / "empty"
    out.mkdir()
    real = export.build_model

    def fails(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(export, "build_model", fails)
    code, _, err = run_cli("export", *overrides(reference), f"out={out}")
    assert code == 2 and "disk full" in err
    assert os.listdir(tmp_path) == ["empty"] and not os.listdir(out)  # its partial directory removed
    monkeypatch.setattr(export, "build_model", real)
    code, _, err = run_cli("export", *overrides(reference), f"out={out}")
    assert code == 0 and (out / MARKER).is_file() and os.listdir(tmp_path) == ["empty"], err
