"""Bad input that once gave a traceback, hung or named the wrong cause (issue 30): a prior with nonsense in it, CSV
cells that are not numbers, config files that are not text, bounded or set, token files with broken headers, a
tokenizer with code of its own, and filesystems that refuse a write. Each is one line naming the field and the fix,
said before the work where it can be."""

import errno
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ladder.errors import LadderError

ROOT = Path(__file__).resolve().parents[1]


def one_line(code, err, *parts):
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    for part in parts:
        assert part in err, err


def law_csv(path: Path, change=None) -> Path:
    """A small chinchilla-shaped CSV; `change(rows)` breaks it."""
    rows = [[n, 20 * n * m, 2 + 50 / n ** 0.3 + 80 / (20 * n * m) ** 0.3] for n in (1e6, 3e6, 1e7, 3e7)
            for m in (1, 2, 4)]
    if change:
        change(rows)
    path.write_text("params,tokens,loss\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


# -- priors -----------------------------------------------------------------------------------------------------

def a_fit_json(path: Path, change=None) -> Path:
    from ladder.design.prior import THETA_NAMES, epoch_prior

    prior = epoch_prior()
    fit = {"law": "chinchilla", "theta": {"names": list(THETA_NAMES), "value": prior.theta.tolist(),
                                          "cov": prior.cov.tolist()},
           "interval": {"error_model": {"noise_sd": 0.005, "kappa_per_efold": 0.01}}}
    if change:
        change(fit)
    path.write_text(json.dumps(fit))
    return path


PRIOR_FAULTS = [
    ("noise_sd -1", lambda f: f["interval"]["error_model"].update(noise_sd=-1),
     "interval.error_model.noise_sd is -1, not a number in [0, 1)"),
    ("kappa x", lambda f: f["interval"]["error_model"].update(kappa_per_efold="x"), "kappa_per_efold is \"x\""),
    ("theta of 3", lambda f: f["theta"].update(value=[1, 2, 3]), "theta.value is [1, 2, 3], not a list of 5 numbers"),
    ("theta NaN", lambda f: f["theta"]["value"].__setitem__(0, float("nan")), "theta.value is [NaN"),
    ("theta strings", lambda f: f["theta"].update(value=["a"] * 5), 'theta.value is ["a", "a"'),
    ("theta 1e308", lambda f: f["theta"]["value"].__setitem__(0, 1e308), "theta.value is [1e+308"),
    ("cov 3x3", lambda f: f["theta"].update(cov=np.eye(3).tolist()), "theta.cov is [[1.0, 0.0, 0.0]"),
    ("cov 1e308", lambda f: f["theta"]["cov"][0].__setitem__(0, 1e308), "theta.cov is [[1e+308"),
    ("cov not PSD", lambda f: f["theta"].update(cov=(-np.eye(5)).tolist()), "not symmetric positive semi-definite"),
    ("theta a list", lambda f: f.update(theta=[1, 2, 3]), "theta is [1, 2, 3], not a mapping"),
    ("no law", lambda f: f.pop("law"), "needs a fit of law=chinchilla"),
    ("negative exponent", lambda f: f["theta"]["value"].__setitem__(2, -0.3), "theta's alpha -0.3 (in (0, 5])"),
]


@pytest.mark.parametrize("what, change, message", PRIOR_FAULTS, ids=[f[0] for f in PRIOR_FAULTS])
def test_a_prior_with_nonsense_is_refused_in_one_line(tmp_path, what, change, message):
    from ladder.design.prior import prior_from_fit

    with pytest.raises(LadderError, match="design.prior=") as refused:
        prior_from_fit(a_fit_json(tmp_path / "fit.json", change))
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_sound_prior_loads_and_a_json_list_is_refused(tmp_path):
    from ladder.design.prior import prior_from_fit

    assert prior_from_fit(a_fit_json(tmp_path / "fit.json")).noise_sd == 0.005
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(LadderError, match="a JSON list, not a fit.json of ladder fit"):
        prior_from_fit(tmp_path / "list.json")


# -- CSV cells ---------------------------------------------------------------------------------------------------

CSV_FAULTS = [
    ("params abc", lambda r: r[1].__setitem__(0, "abc"), "column 'params' is not numeric: row 1 holds 'abc'"),
    ("tokens x", lambda r: r[2].__setitem__(1, "x"), "column 'tokens' is not numeric: row 2 holds 'x'"),
    ("tokens inf", lambda r: r[2].__setitem__(1, "inf"), "tokens is infinite in row 2"),
    ("loss -inf", lambda r: r[3].__setitem__(2, "-inf"), "loss is infinite in row 3"),
    ("params 1e300", lambda r: r[1].__setitem__(0, 1e300), "6 x params x tokens overflows a float in row 1"),
]


@pytest.mark.parametrize("what, change, message", CSV_FAULTS, ids=[f[0] for f in CSV_FAULTS])
def test_a_bad_cell_is_one_line_in_fit_and_collect(tmp_path, run_cli, what, change, message):
    import warnings

    csv = law_csv(tmp_path / "runs.csv", change)
    for command in ("fit", "collect"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # an overflow is said in the line, not as a warning
            code, _, err = run_cli(command, f"runs={csv}", f"out={tmp_path / command}")
        one_line(code, err, message)


def test_a_loss_far_off_the_law_is_said_as_a_factor(tmp_path, run_cli):
    csv = law_csv(tmp_path / "runs.csv", lambda rows: rows[5].__setitem__(2, 1e300))
    code, out, err = run_cli("fit", f"runs={csv}", "bootstrap.n=10", "plots=false", f"out={tmp_path / 'fit'}")
    assert code == 0, err
    said = [line for line in (out + err).splitlines() if "off the law" in line]
    assert said and all(" times off the law" in line and len(line) < 400 for line in said), said


# -- config files --------------------------------------------------------------------------------------------------

@pytest.fixture
def ladder_dir(tmp_path):
    (tmp_path / "ladder").mkdir()
    return tmp_path / "ladder"


def test_a_ladder_file_that_is_not_text_or_not_set_is_one_line(ladder_dir, run_cli):
    (ladder_dir / "noise.yaml").write_bytes(bytes(range(128, 256)) * 3)
    one_line(*run_cli("plan", f"ladder={ladder_dir / 'noise.yaml'}")[::2], "noise.yaml: not UTF-8 text")
    tiny = (ROOT / "conf" / "ladder" / "tiny.yaml").read_text()
    (ladder_dir / "unset.yaml").write_text(tiny.replace("  name: tiny", "  name: ${oc.env:NOPE_NOT_SET}", 1))
    one_line(*run_cli("plan", f"ladder={ladder_dir / 'unset.yaml'}")[::2],
             "ladder.name: its ${...} cannot be resolved", "NOPE_NOT_SET")
    (ladder_dir / "zero.yaml").symlink_to("/dev/zero")
    one_line(*run_cli("plan", f"ladder={ladder_dir / 'zero.yaml'}")[::2], "not a regular file (/dev/zero)")


def test_a_billion_laughs_ladder_is_refused_at_once(ladder_dir):
    lines = ["# @package _global_", "ladder:", "  name: laughs", "  a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]  # 10^9 values
    (ladder_dir / "laughs.yaml").write_text("\n".join(lines) + "\n")
    try:
        result = subprocess.run([sys.executable, "-m", "ladder.cli", "plan", f"ladder={ladder_dir / 'laughs.yaml'}"],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("ladder plan still expanding the aliases after 60 s")
    one_line(result.returncode, result.stderr, "laughs.yaml: expands to more than 100,000 values")


def test_a_demo_ladder_too_small_to_fit_is_refused_before_anything_trains(tmp_path, run_cli):
    # one budget per size: 4 final points for chinchilla's 5 coefficients, found once every rung had trained (measured:
    # 27 minutes of training, then the error)
    runs = tmp_path / "runs"
    one_line(*run_cli("demo", "ladder.budgets=[2xC]", f"runs_dir={runs}", "logger.wandb=disabled")[::2],
             "ladder.budgets: 4 rungs x their budgets give 4 final points", "law=chinchilla has 5 coefficients")
    assert not runs.exists()
    one_line(*run_cli("demo", "ladder.budgets=[2xC]", "law=curve", f"runs_dir={runs}")[::2], "law=curve has 7")

# -- token files and tokenizers ----------------------------------------------------------------------------------

def test_token_npy_files_with_bad_headers_are_one_line(tmp_path):
    from ladder.data.pretokenized import file_layout

    np.save(tmp_path / "objects.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    np.save(tmp_path / "good.npy", np.arange(100, dtype=np.uint16))
    raw = (tmp_path / "good.npy").read_bytes()
    end = raw.index(b"\n") + 1
    broken = {"unterminated": raw[:10] + raw[10:end].replace(b"}", b" ", 1), "truncated": raw[:30],
              "expression": raw.replace(b"(100,)", b"(10**9,)"), "descr": raw.replace(b"'<u2'", b"'<zz'")}
    for name, data in broken.items():
        (tmp_path / f"{name}.npy").write_bytes(data)
    assert file_layout(str(tmp_path / "good.npy"), "npy", "auto") == ("uint16", 128)
    for name in ("objects", *broken):
        with pytest.raises(LadderError, match=f"{name}.npy is not a readable token .npy") as refused:
            file_layout(str(tmp_path / f"{name}.npy"), "npy", "auto")
        assert "\n" not in str(refused.value)


def test_a_tokenizer_with_code_of_its_own_is_refused_without_a_prompt(tmp_path, capsys):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from ladder.data.tokenizers import load_hf

    backend = Tokenizer(models.WordLevel({"<|endoftext|>": 0, "[UNK]": 1, "a": 2}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>",
                            unk_token="[UNK]").save_pretrained(tmp_path / "tok")
    config = json.loads((tmp_path / "tok" / "tokenizer_config.json").read_text())
    config.update(tokenizer_class="Custom", auto_map={"AutoTokenizer": [None, "custom.Custom"]})
    (tmp_path / "tok" / "tokenizer_config.json").write_text(json.dumps(config))
    (tmp_path / "tok" / "custom.py").write_text(f"open({str(tmp_path / 'RAN')!r}, 'w')\n"
                                                "from transformers import PreTrainedTokenizerFast as Custom\n")
    with pytest.raises(LadderError, match="set data.tokenizer.trust_remote_code=true"):
        load_hf(str(tmp_path / "tok"))
    assert "[y/N]" not in capsys.readouterr().out and not (tmp_path / "RAN").exists()


# -- filesystems ---------------------------------------------------------------------------------------------------

def test_a_read_only_out_is_refused_before_the_fit(tmp_path, run_cli, monkeypatch):
    import tempfile

    import ladder.fit.forecast

    def read_only(*args, dir=None, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
    fitted = []
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    monkeypatch.setattr(ladder.fit.forecast, "run_fit", lambda *a, **k: fitted.append(1))
    code, _, err = run_cli("fit", f"runs={law_csv(tmp_path / 'runs.csv')}", f"out={tmp_path / 'ro' / 'fit'}")
    one_line(code, err, f"out={tmp_path / 'ro' / 'fit'}: cannot be written there (read-only filesystem)")
    assert not fitted and not (tmp_path / "ro").exists()


def test_a_name_too_long_and_a_file_size_limit_are_one_line(tmp_path, run_cli):
    csv = law_csv(tmp_path / "runs.csv")
    code, _, err = run_cli("fit", f"runs={csv}", f"out={tmp_path / ('x' * 300)}")
    one_line(code, err, "cannot be written there (name too long); give a shorter path")

    def limit():  # ulimit -f: a file past 2 kB fails with EFBIG (Python ignores SIGXFSZ)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))
    result = subprocess.run([sys.executable, "-m", "ladder.cli", "fit", f"runs={csv}", "bootstrap.n=10",
                             f"out={tmp_path / 'fit'}"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            preexec_fn=limit)
    one_line(result.returncode, result.stderr, "error: file too large", "raise the file size limit (ulimit -f)")


def test_a_full_disk_outside_training_names_no_checkpoint(tmp_path, run_cli, monkeypatch):
    import ladder.fit.forecast

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "fits/chinchilla/fit.json")
    monkeypatch.setattr(ladder.fit.forecast, "run_fit", full)
    code, _, err = run_cli("fit", f"runs={law_csv(tmp_path / 'runs.csv')}", f"out={tmp_path / 'fit'}")
    one_line(code, err, "disk full (fits/chinchilla/fit.json); free space, and run the same command again")
    assert "checkpoint" not in err
