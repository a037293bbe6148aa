"""data=pretokenized: a rung trains from each kind of token file made in the test (NumPy .npy with and without its
header, nanoGPT's .bin, datatrove's .ds written by datatrove's own DocumentTokenizer) and from a `datasets` dataset
with an input_ids column; ids are checked against the EOS id and ladder.vocab_size, files fingerprinted."""

import json

import numpy as np
import pytest

from ladder.data import TokenData, load_manifest, prepare
from ladder.errors import LadderError

VOCAB = 300
EOS = 0
TRAIN = ["ladder=tiny", "rung=tiny-14k", "eval=[]", "ladder.seq_len=64", "ladder.budgets=[4e3]", "ladder.vocab_size=320",
         "train.eval_points=1", "train.eval_tokens=512", "train.threads=1", "logger.wandb=disabled",
         "recipe.batch.ref_seq_len=64", "recipe.batch.base_sequences=8", "recipe.batch.exponent=0"]


def token_stream(n=60_000, seed=0) -> np.ndarray:
    """Documents of 50-150 ids in [1, VOCAB), each ending with EOS."""
    rng, out = np.random.default_rng(seed), []
    while sum(map(len, out)) < n:
        out.append(np.append(rng.integers(1, VOCAB, size=rng.integers(50, 150)), EOS))
    return np.concatenate(out)


def documents(seed=0) -> list[list[int]]:
    stream = token_stream(seed=seed)
    ends = np.flatnonzero(stream == EOS)
    return [stream[s + 1 if i else 0:e].tolist() for i, (s, e) in enumerate(zip(np.r_[-1, ends[:-1]], ends))]


def write_npy(tmp_path):
    for i in range(2):
        np.save(tmp_path / f"part-{i}.npy", token_stream(seed=i).astype(np.uint32))
    return tmp_path / "*.npy", []


def write_raw_npy(tmp_path):  # OLMo/Dolma's .npy files are raw memory maps, no header
    for i in range(2):
        token_stream(seed=i).astype(np.uint16).tofile(tmp_path / f"part-{i}.npy")
    return tmp_path, ["data.dtype=uint16"]


def write_bin(tmp_path):  # nanoGPT's train.bin: uint16, GPT-2's EOT between documents
    token_stream().astype(np.uint16).tofile(tmp_path / "train.bin")
    return tmp_path / "train.bin", ["data.dtype=uint16"]


def write_datatrove(tmp_path):
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import HuggingFaceDatasetReader
    from datatrove.pipeline.tokens import DocumentTokenizer

    from ladder.data.tokenizers import EOS_TEXT, train_bpe

    texts = [f"document {i}: " + " ".join(f"word{j % 37}" for j in range(i, i + 300)) for i in range(150)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    bpe = train_bpe(texts, VOCAB)
    bpe.save(tmp_path)
    LocalPipelineExecutor([HuggingFaceDatasetReader("json", {"data_files": str(tmp_path / "in.jsonl"),
                                                             "split": "train"}),
                           DocumentTokenizer(output_folder=str(tmp_path / "ds"),
                                             tokenizer_name_or_path=str(tmp_path / "tokenizer.json"),
                                             eos_token=EOS_TEXT, shuffle_documents=False)],
                          tasks=1, logging_dir=str(tmp_path / "logs")).run()
    return tmp_path / "ds", [f"data.eos_id={bpe.eos_id}"]


def write_disk(tmp_path):
    import datasets
    datasets.Dataset.from_dict({"input_ids": documents()}).save_to_disk(str(tmp_path / "saved"))
    return tmp_path / "saved", []


def write_parquet(tmp_path):
    import datasets
    datasets.Dataset.from_dict({"input_ids": documents()}).to_parquet(str(tmp_path / "ids.parquet"))
    return tmp_path / "ids.parquet", []


FORMATS = {"npy": write_npy, "raw-npy": write_raw_npy, "bin": write_bin, "datatrove": write_datatrove,
           "datasets-disk": write_disk, "datasets-parquet": write_parquet}


@pytest.mark.parametrize("kind", FORMATS)
def test_a_rung_trains_from_each_pretokenized_format(kind, tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("LADDER_CACHE", str(tmp_path / "cache"))
    (tmp_path / "files").mkdir()
    path, extra = FORMATS[kind](tmp_path / "files")
    data = ["data=pretokenized", f"data.path={path}", "data.tokenizer.name=gpt2", "data.val_fraction=0.05",
            f"data.eos_id={EOS}", *extra]
    code, out, err = run_cli("prepare", *data, "format=json")
    assert code == 0, err
    manifest = json.loads(out)
    assert manifest["tokenizer"]["pretokenized"] and manifest["tokenizer"]["name"] == "gpt2"
    assert manifest["tokenizer"]["vocab_size"] <= VOCAB and manifest["tokens"]["val"] > 0
    assert all(len(s["sha256"]) == 64 for s in manifest["shards"])
    in_place = kind in ("npy", "raw-npy", "bin", "datatrove")
    assert all(s["path"].startswith(str(tmp_path / "files")) for s in manifest["shards"]) == in_place
    if kind == "npy":
        assert manifest["dtype"] == "uint32" and manifest["shards"][0]["offset"] > 0  # after NumPy's header
        expected = np.concatenate([np.load(tmp_path / "files" / f"part-{i}.npy") for i in range(2)])
        data_read = TokenData(manifest["directory"])
        got = np.concatenate([*map(np.asarray, data_read.splits["train"]), *map(np.asarray, data_read.splits["val"])])
        assert np.array_equal(got, expected)  # the ids read in place, in file order, validation the tail
    code, out, err = run_cli("train", *TRAIN, *data, f"runs_dir={tmp_path / 'runs'}")
    assert code == 0, err
    result = json.loads((tmp_path / "runs" / "tiny" / "tiny-14k" / "summary.json").read_text())
    assert result["status"] == "done" and result["data_fingerprint"] == manifest["fingerprint"]
    assert np.isfinite(result["budgets"]["4k"]["loss"])


def test_pretokenized_ids_are_checked(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("LADDER_CACHE", str(tmp_path / "cache"))
    stream = token_stream()
    stream[100] = 700  # beyond ladder.vocab_size=320
    stream.astype(np.uint16).tofile(tmp_path / "train.bin")
    data = ["data=pretokenized", f"data.path={tmp_path / 'train.bin'}", "data.tokenizer.name=gpt2",
            "data.val_fraction=0.05", f"data.eos_id={EOS}", "data.dtype=uint16"]
    code, out, err = run_cli("train", *TRAIN, *data, f"runs_dir={tmp_path / 'runs'}")
    assert code == 2 and "ladder.vocab_size=320 is smaller than the tokenizer's vocabulary (701)" in err
    code, out, err = run_cli("prepare", *data[:-1])  # a raw file without a stated dtype
    assert code == 2 and "data.dtype=auto" in err and "uint16" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli("prepare", *data[:-2], "data.eos_id=999", "data.dtype=uint16")
    assert code == 2 and "data.eos_id=999: never occurs" in err
    code, out, err = run_cli("prepare", *[d for d in data if not d.startswith("data.eos_id")])
    assert code == 2 and "data.eos_id: missing" in err
    code, out, err = run_cli("prepare", *[d for d in data if not d.startswith("data.tokenizer")])
    assert code == 2 and "name the tokenizer that made the ids" in err  # not a generic hub-tokenizer message
    code, out, err = run_cli("prepare", *data, "data.max_tokens=1e4")  # never a silent cap: refused
    assert code == 2 and "read in place, whole" in err


def test_evaluations_need_the_stated_tokenizer(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("LADDER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the stated tokenizer is not cached here
    token_stream().astype(np.uint16).tofile(tmp_path / "train.bin")
    data = ["data=pretokenized", f"data.path={tmp_path / 'train.bin'}", "data.tokenizer.name=org/not-cached",
            "data.val_fraction=0.05", f"data.eos_id={EOS}", "data.dtype=uint16"]
    code, out, err = run_cli("train", *[t for t in TRAIN if t != "eval=[]"], *data, f"runs_dir={tmp_path / 'r'}")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "eval=[next_line]" in err and "data.tokenizer.name=org/not-cached" in err and "(eval=[])" in err


def test_a_changed_token_file_is_refused(tmp_path):
    stream = token_stream().astype(np.uint16)
    stream.tofile(tmp_path / "train.bin")
    cfg = {"name": "pretokenized", "source": "pretokenized", "path": str(tmp_path / "train.bin"), "format": "auto",
           "eos_id": EOS, "tokenizer": {"kind": "hf", "name": "gpt2"}, "dtype": "uint16", "val_fraction": 0.05,
           "seed": 0, "shard_tokens": 1e8, "cache_dir": str(tmp_path / "cache")}
    directory = prepare(cfg, progress=False)
    assert load_manifest(directory)["shards"][0]["path"] == str(tmp_path / "train.bin")
    stream[10] = 5
    with open(tmp_path / "train.bin", "r+b") as f:  # same size, same place: only the hash can tell
        f.write(stream.tobytes())
    with pytest.raises(LadderError, match="sha256 mismatch"):
        TokenData(directory, verify=True)
