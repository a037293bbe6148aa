import json
import os

import numpy as np
import pytest

from ladder.config import compose_config
from ladder.data import Sampler, TokenData, load_manifest, prepare
from ladder.data.engine import is_validation
from ladder.data.prepare import choose_dtype
from ladder.data.tokenizers import ByteTokenizer, train_bpe
from ladder.errors import LadderError
from omegaconf import OmegaConf

TEXTS = [f"Document {i}: the quick brown fox {'jumps ' * (i % 7)}over the lazy dog. Ünïcödé ✓ {i * i}\n" * 20
         for i in range(60)]


def data_cfg(tmp_path, *overrides):
    cfg = compose_config(["data=local", f"data.cache_dir={tmp_path / 'cache'}", "data.tokenizer.kind=bytes",
                          "data.val_fraction=0.1", *overrides])
    return OmegaConf.to_container(cfg.data, resolve=True)


def write_txt(directory, texts=TEXTS):
    directory.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(texts):
        (directory / f"doc{i:03d}.txt").write_text(text, encoding="utf-8")
    return directory


def write_jsonl(path, texts=TEXTS, field="text"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({field: t, "id": i}) + "\n" for i, t in enumerate(texts)))
    return path


def test_txt_jsonl_parquet_give_the_same_tokens(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_txt(tmp_path / "txt")
    write_jsonl(tmp_path / "j" / "c.jsonl")
    (tmp_path / "p").mkdir()
    pq.write_table(pa.table({"text": TEXTS}), tmp_path / "p" / "c.parquet")
    totals = []  # in one piece: with several, a piece is a run of files, so the layout decides the split
    for path in (tmp_path / "txt", tmp_path / "j" / "c.jsonl", tmp_path / "p" / "c.parquet"):
        manifest = load_manifest(prepare(data_cfg(tmp_path, f"data.path={path}", "data.tasks=1"), progress=False))
        totals.append((manifest["tokens"]["train"], manifest["tokens"]["val"], manifest["documents"]["val"]))
    assert totals[0] == totals[1] == totals[2]
    assert totals[0][0] + totals[0][1] == sum(len(t.encode()) + 1 for t in TEXTS)  # bytes + one EOS per document


def test_hub_code_path_on_a_local_copy(tmp_path):
    # A hub config with its path pointed at local files: the same load_dataset(path, name=, split=, streaming=True).
    write_jsonl(tmp_path / "hub" / "train.jsonl")
    cfg = compose_config(["data=fineweb_edu", f"data.path={tmp_path / 'hub'}", "data.subset=null",
                          "data.tokenizer.kind=bytes", f"data.cache_dir={tmp_path / 'cache'}", "data.val_fraction=0.1"])
    manifest = load_manifest(prepare(OmegaConf.to_container(cfg.data), progress=False))
    assert manifest["source"]["kind"] == "hub" and manifest["documents"]["train"] + manifest["documents"]["val"] == 60


def test_offline_hub_corpus_is_one_line(run_cli, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run_cli("prepare", "data=c4", f"data.cache_dir={tmp_path}")
    assert code == 2 and err.count("\n") == 1
    assert "cannot reach huggingface.co to stream allenai/c4/en" in err and "data=local data.path=" in err


def test_manifest_and_fingerprint_cache(tmp_path):
    write_txt(tmp_path / "txt")
    cfg = data_cfg(tmp_path, f"data.path={tmp_path / 'txt'}")
    first = prepare(cfg, progress=False)
    manifest = load_manifest(first)
    for key in ("source", "tokenizer", "dtype", "tokens", "documents", "shards", "harness_version", "fingerprint"):
        assert key in manifest, key
    assert manifest["tokenizer"]["kind"] == "bytes" and manifest["tokenizer"]["hash"]
    assert manifest["dtype"] == "uint16" and first.name.endswith(manifest["fingerprint"][:16])
    for shard in manifest["shards"]:
        assert set(shard) >= {"path", "split", "tokens", "bytes", "sha256"}
    stamp = (first / "manifest.json").stat().st_mtime_ns
    assert prepare(cfg, progress=False) == first and (first / "manifest.json").stat().st_mtime_ns == stamp
    other = prepare({**cfg, "seed": 1}, progress=False)
    assert other != first  # the split depends on the seed, so does the fingerprint
    (tmp_path / "txt" / "doc000.txt").write_text("changed text\n")
    assert prepare(cfg, progress=False) != first  # a changed file changes the fingerprint


def test_split_is_by_document_and_deterministic():
    picks = [is_validation(0, i, 0.1) for i in range(5000)]
    assert picks == [is_validation(0, i, 0.1) for i in range(5000)]
    assert 0.08 < np.mean(picks) < 0.12
    assert picks != [is_validation(1, i, 0.1) for i in range(5000)]


def test_interrupted_prepare_resumes_from_its_finished_pieces(tmp_path, monkeypatch):
    write_txt(tmp_path / "txt", TEXTS * 10)  # 600 documents, 4 pieces of 150: one batch each
    cfg = data_cfg(tmp_path, f"data.path={tmp_path / 'txt'}", "data.tasks=4", "data.workers=1")
    calls = {"n": 0}
    original = ByteTokenizer.encode_pieces

    def dies_in_the_second_piece(self, texts):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, texts)

    monkeypatch.setattr(ByteTokenizer, "encode_pieces", dies_in_the_second_piece)
    with pytest.raises(KeyboardInterrupt):
        prepare(cfg, progress=False)
    assert not list((tmp_path / "cache").rglob("manifest.json"))  # nothing vouches for partial shards
    (partial,) = (tmp_path / "cache").glob(".*.partial")
    assert (partial / "piece_00000.json").exists() and not (partial / "piece_00001.json").exists()
    calls["n"] = 10  # no more interrupts; count the batches the resumed prepare encodes
    directory = prepare(cfg, progress=False)
    assert calls["n"] == 13  # pieces 1, 2 and 3 only: piece 0 was finished and is not tokenized again
    assert not partial.exists()
    monkeypatch.setattr(ByteTokenizer, "encode_pieces", original)
    fresh = prepare({**cfg, "cache_dir": str(tmp_path / "fresh")}, progress=False)
    assert [s["sha256"] for s in load_manifest(directory)["shards"]] == \
        [s["sha256"] for s in load_manifest(fresh)["shards"]]


def test_two_workers_write_the_shards_one_writes(tmp_path):
    write_txt(tmp_path / "txt", TEXTS * 4)
    shards = []
    for workers in (1, 2):
        cfg = data_cfg(tmp_path, f"data.path={tmp_path / 'txt'}", "data.tasks=4", f"data.workers={workers}",
                       f"data.cache_dir={tmp_path / f'cache{workers}'}")
        manifest = load_manifest(prepare(cfg, progress=False))
        assert manifest["workers"] == workers and manifest["tasks"] == 4
        shards.append([(s["split"], s["tokens"], s["sha256"]) for s in manifest["shards"]])
    assert shards[0] == shards[1] and len(shards[0]) == 8  # a train and a validation shard per piece


def test_tokenizers_round_trip_multibyte_text():
    text = "naïve café — 数据 🚀 def f(x):\n    return x"
    assert ByteTokenizer().decode(ByteTokenizer().encode_batch([text])[0]) == text
    bpe = train_bpe(TEXTS * 5, vocab_size=400)
    ids = bpe.encode_batch([text])[0]
    assert bpe.decode(ids) == text
    assert 256 < bpe.vocab_size <= 400 and bpe.eos_id not in ids
    assert len(bpe.encode_batch([TEXTS[0]])[0]) < len(TEXTS[0].encode()) / 2  # it learned merges


def test_bpe_prepare_saves_a_loadable_tokenizer(tmp_path):
    from ladder.data.tokenizers import load_saved
    write_txt(tmp_path / "txt")
    directory = prepare(data_cfg(tmp_path, f"data.path={tmp_path / 'txt'}", "data.tokenizer.kind=bpe",
                                 "data.tokenizer.vocab_size=300"), progress=False)
    manifest = load_manifest(directory)
    tokenizer = load_saved(manifest["tokenizer"], directory)
    assert tokenizer.decode(tokenizer.encode_batch(["quick brown ✓"])[0]) == "quick brown ✓"
    data = TokenData(directory)
    first_doc = np.asarray(data.splits["train"][0][:50])
    assert tokenizer.decode(first_doc).startswith("Document")


@pytest.fixture
def token_data(tmp_path):
    write_txt(tmp_path / "txt")
    return TokenData(prepare(data_cfg(tmp_path, f"data.path={tmp_path / 'txt'}"), progress=False))


def test_sampler_is_a_pure_function_of_seed_and_step(token_data):
    a, b = Sampler(token_data, 32, 8, seed=0), Sampler(token_data, 32, 8, seed=0)
    assert all(np.array_equal(a.batch(s)[0], b.batch(s)[0]) for s in (0, 5, 17))
    assert not np.array_equal(a.batch(3)[0], Sampler(token_data, 32, 8, seed=1).batch(3)[0])
    x, y = a.batch(2)
    assert x.shape == (8, 32) and np.array_equal(x[:, 1:], y[:, :-1])


def test_ranks_split_the_global_batch_disjointly(token_data):
    sampler = Sampler(token_data, 32, 8, seed=0)
    for step in (0, 1, 9):
        whole = sampler.window_ids(step)
        parts = [sampler.window_ids(step, rank, 4) for rank in range(4)]
        assert np.array_equal(np.concatenate(parts), whole)
        assert len(set(np.concatenate(parts).tolist())) == 8
    with pytest.raises(LadderError, match="does not split over 3 ranks"):
        sampler.window_ids(0, 0, 3)


def test_epochs_cover_every_window_then_repeat(token_data):
    sampler = Sampler(token_data, 32, 4, seed=0)
    steps_per_epoch = sampler.windows // 4
    seen = np.concatenate([sampler.window_ids(s) for s in range(steps_per_epoch)])
    assert len(set(seen.tolist())) == len(seen)  # no window twice within an epoch
    assert sampler.repeat_factor(3 * sampler.epoch_tokens) == pytest.approx(3.0)
    later = sampler.window_ids(steps_per_epoch * 2 + 1)
    assert set(later.tolist()) <= set(range(sampler.windows))


def test_validation_windows_are_fixed(token_data):
    first, second = token_data.validation_windows(32, 256), token_data.validation_windows(32, 256)
    assert first.shape == (8, 33) and np.array_equal(first, second)


def test_corrupt_and_truncated_shards_are_detected(tmp_path):
    write_txt(tmp_path / "txt")
    directory = prepare(data_cfg(tmp_path, f"data.path={tmp_path / 'txt'}"), progress=False)
    shard = directory / load_manifest(directory)["shards"][0]["path"]
    raw = bytearray(shard.read_bytes())
    raw[100] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(LadderError, match="sha256 mismatch"):
        TokenData(directory)
    shard.write_bytes(bytes(raw[:-10]))
    with pytest.raises(LadderError, match="missing or truncated"):
        TokenData(directory)


@pytest.mark.parametrize("setup, message", [
    ("empty", "gave no train tokens"),
    ("field", "data.text_field='body': not in the records"),
    ("latin1", "not UTF-8 text"),
    ("binary", "NUL bytes"),
    ("nothing", "no files match"),
])
def test_bad_corpora_are_one_line_errors(run_cli, tmp_path, setup, message):
    path = tmp_path / "corpus"
    path.mkdir()
    if setup == "empty":
        (path / "a.txt").write_text("")
    elif setup == "field":
        write_jsonl(path / "a.jsonl")
    elif setup == "latin1":
        (path / "a.txt").write_bytes("café olé\n".encode("latin-1"))
    elif setup == "binary":
        (path / "a.txt").write_bytes(b"text\x00\x01\x02 more")
    target = path if setup != "nothing" else tmp_path / "missing*.txt"
    field = ["data.text_field=body"] if setup == "field" else []
    code, _, err = run_cli("prepare", "data=local", f"data.path={target}", "data.tokenizer.kind=bytes", *field,
                           f"data.cache_dir={tmp_path / 'cache'}")
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # after prepare's own notes, if any
    assert code == 2 and len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    assert message in errors[0]
    assert not list((tmp_path / "cache").rglob("manifest.json"))


def test_uint16_refused_for_a_large_vocabulary():
    assert choose_dtype("auto", 50304) == "uint16" and choose_dtype("auto", 100352) == "uint32"
    with pytest.raises(LadderError, match="data.dtype=uint16: the tokenizer's vocabulary \\(100352\\) does not fit"):
        choose_dtype("uint16", 100352)


def test_default_corpus_is_the_embedded_stdlib(tmp_path):
    cfg = compose_config([f"data.cache_dir={tmp_path}", "data.max_documents=40", "data.val_fraction=0.2"])
    assert cfg.data.source == "stdlib" and cfg.data.tokenizer.kind == "bytes"
    manifest = load_manifest(prepare(OmegaConf.to_container(cfg.data), progress=False))
    assert manifest["source"]["python"] and manifest["tokens"]["train"] > 10_000
    assert os.path.basename(manifest["shards"][0]["path"]).startswith("train_")


def test_a_single_text_file_splits_by_token_range(tmp_path, capsys):
    corpus = tmp_path / "input.txt"  # nanoGPT's case: one file, one document
    corpus.write_text("".join(TEXTS), encoding="utf-8")
    manifest = load_manifest(prepare(data_cfg(tmp_path, f"data.path={corpus}"), progress=True))
    assert manifest["split_by"] == "token_range" and manifest["documents"] == {"train": 1, "val": 1}
    total = len("".join(TEXTS).encode()) + 2  # one EOS after each part
    assert manifest["tokens"]["val"] == pytest.approx(0.1 * total, abs=2)
    assert "split by token range" in capsys.readouterr().err
    many = load_manifest(prepare(data_cfg(tmp_path, f"data.path={write_txt(tmp_path / 'docs')}"), progress=False))
    assert many["split_by"] == "documents"


def test_a_prepared_corpus_opens_without_reading_a_document(tmp_path, monkeypatch):
    """Every rung opens the corpus: once prepared, its split rule comes from the manifest's directory, not from
    reading documents again (by document and by token range alike)."""
    import importlib
    prepare_module = importlib.import_module("ladder.data.prepare")  # the package's `prepare` is the function

    one_file = tmp_path / "input.txt"
    one_file.write_text("".join(TEXTS), encoding="utf-8")
    configs = [data_cfg(tmp_path, f"data.path={write_txt(tmp_path / 'docs')}"),
               data_cfg(tmp_path, f"data.path={one_file}")]
    directories = [prepare(cfg, progress=False) for cfg in configs]
    assert [load_manifest(d)["split_by"] for d in directories] == ["documents", "token_range"]

    def no_reading(*args, **kwargs):
        raise AssertionError("a prepared corpus was read to choose its split")

    monkeypatch.setattr(prepare_module, "documents", no_reading)
    assert [prepare_module.prepared(cfg) for cfg in configs] == directories


def test_a_deleted_manifest_is_repaired(tmp_path):
    cfg = data_cfg(tmp_path, f"data.path={write_txt(tmp_path / 'docs')}")
    directory = prepare(cfg, progress=False)
    shards = load_manifest(directory)["shards"]
    (directory / "manifest.json").unlink()
    assert prepare(cfg, progress=False) == directory
    assert load_manifest(directory)["shards"] == shards
    TokenData(directory)  # every shard verifies against the new manifest


def test_long_documents_are_encoded_in_pieces_with_the_same_text(monkeypatch):
    import ladder.data.tokenizers as tokenizers

    tokenizer = train_bpe(TEXTS, 300)
    long = "".join(TEXTS) * 3
    monkeypatch.setattr(tokenizers, "PIECE_CHARS", 5000)  # pieces of a long document, groups of pieces per call
    monkeypatch.setattr(tokenizers, "GROUP_CHARS", 12000)
    calls = []
    real = tokenizer.tokenizer.encode_batch_fast
    tokenizer.tokenizer = type("Spy", (), {"encode_batch_fast": lambda self, texts, **k: calls.append(
        sum(map(len, texts))) or real(texts, **k), "decode": tokenizer.tokenizer.decode})()
    ids, short = tokenizer.encode_batch([long, TEXTS[0]])
    assert tokenizer.decode(ids) == long and tokenizer.decode(short) == TEXTS[0]
    assert len(calls) > 1 and max(calls) < 12000 + 5000  # never the whole document in one call
    chunks = list(tokenizers.pieces(long, 5000))
    assert "".join(chunks) == long and len(chunks) > len(long) // 5000 and max(map(len, chunks)) <= 5000
    assert all(p.endswith("\n") for p in chunks[:-1])  # cut at line ends


def test_one_text_file_with_a_bpe_trains_on_its_head_and_feeds_next_line(tmp_path):
    from ladder.evals.heldout import heldout_documents, next_line_records

    corpus = tmp_path / "input.txt"
    corpus.write_text("\n\n".join(TEXTS), encoding="utf-8")
    for seed in (0, 7):  # 7: the one document's hash says validation; a document split would train on nothing
        cfg = data_cfg(tmp_path, f"data.path={corpus}", "data.tokenizer.kind=bpe", "data.tokenizer.vocab_size=300",
                       "data.tokenizer.train_bytes=1e5", f"data.seed={seed}")
        directory = prepare(cfg, progress=False)
        assert load_manifest(directory)["split_by"] == "token_range"
    data = TokenData(directory)
    from ladder.data.tokenizers import load_saved
    documents = heldout_documents(data, load_saved(data.manifest["tokenizer"], directory))
    assert len(documents) > 2  # the one held-out tail, cut at blank lines
    assert next_line_records(documents, {"min_chars": 8}, 0, "eval.next_line")


def test_a_hub_tokenizer_over_65536_ids_writes_uint32_shards(tmp_path):
    """The OLMo ladder's tokenizer has ~100k ids: a fast tokenizer loaded through transformers (from a local copy,
    the hub's code path) writes uint32 shards whose ids above 65535 survive, with 2 workers as with 1."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = [f"w{i}" for i in range(70_000)]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(["<|endoftext|>", "[UNK]", *words])},
                                         unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>",
                            unk_token="[UNK]").save_pretrained(tmp_path / "tok")
    write_txt(tmp_path / "txt", [" ".join(words[i::97]) for i in range(97)])
    ids = []
    for workers in (1, 2):
        cfg = data_cfg(tmp_path, f"data.path={tmp_path / 'txt'}", "data.tokenizer.kind=hf",
                       f"data.tokenizer.name={tmp_path / 'tok'}", "data.tasks=2", f"data.workers={workers}",
                       f"data.cache_dir={tmp_path / f'cache{workers}'}")
        directory = prepare(cfg, progress=False)
        data = TokenData(directory)
        assert data.manifest["dtype"] == "uint32" and data.vocab_size == 70_002
        ids.append(np.concatenate([np.asarray(s) for s in data.splits["train"] + data.splits["val"]]))
    assert np.array_equal(ids[0], ids[1]) and ids[0].max() > 65535
    expected = {2 + i for i in range(70_000)} | {0}  # words -> their ids, and EOS
    assert set(ids[0].tolist()) == expected


def test_a_rung_on_a_cluster_never_tokenizes(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")  # inside a Slurm job, the data not prepared
    monkeypatch.setenv("LADDER_CACHE", str(tmp_path / "cache"))
    code, out, err = run_cli("train", "rung=tiny-14k", f"runs_dir={tmp_path / 'runs'}", "data.max_documents=100",
                             "logger.wandb=disabled")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "not prepared" in err and "ladder prepare" in err and "hydra/launcher=slurm" in err
    assert not list((tmp_path / "cache").rglob("*.bin"))  # nothing tokenized


def test_more_pieces_than_files_is_said_and_still_splits_the_records(tmp_path, capsys):
    write_jsonl(tmp_path / "one.jsonl")  # one file, 60 records, 4 pieces: each piece reads it and keeps every 4th
    cfg = data_cfg(tmp_path, f"data.path={tmp_path / 'one.jsonl'}", "data.tasks=4", "data.workers=1")
    manifest = load_manifest(prepare(cfg, progress=False))
    assert "data.tasks=4 but data=local has 1 file(s)" in capsys.readouterr().err
    assert manifest["documents"]["train"] + manifest["documents"]["val"] == 60  # every record once


# -- a killed prepare: nothing it started outlives it to hold the corpus lock (issue 30); datatrove's stats in its log

def write_corpus(directory, files=8, records=2000):
    """8 .jsonl files of plain words: with the default BPE, about half a second a piece on 2 cores."""
    import random
    rng = random.Random(0)
    words = "the quick brown fox jumps over lazy dog and runs far away".split()
    directory.mkdir(parents=True)
    for f in range(files):
        (directory / f"part{f}.jsonl").write_text("".join(
            json.dumps({"text": " ".join(rng.choice(words) for _ in range(200))}) + "\n" for _ in range(records)))
    return directory


def prepare_cmd(corpus, cache, *extra):
    import sys
    return [sys.executable, "-m", "ladder.cli", "prepare", "data=local", f"data.path={corpus}",
            f"data.cache_dir={cache}", "data.tasks=8", "data.workers=2", *extra]


def lock_of(corpus, cache):
    from ladder.data.prepare import resolve
    final = resolve(OmegaConf.to_container(compose_config(prepare_cmd(corpus, cache)[4:]).data, resolve=True))[2]
    return final.parent / f".{final.name}.lock"


def lock_is_free(path, within_s):
    import fcntl
    import time
    deadline = time.time() + within_s
    with open(path) as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.time() > deadline:
                    return False
                time.sleep(0.05)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_a_killed_prepare_leaves_no_worker_holding_its_lock(tmp_path, sig):
    import signal
    import subprocess
    import time

    corpus, cache = write_corpus(tmp_path / "corpus"), tmp_path / "cache"
    first = subprocess.Popen(prepare_cmd(corpus, cache), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)  # its group: anything it leaves behind is ended below
    try:
        deadline = time.time() + 120
        while not list(cache.glob(".*.partial/piece_00001.json")):  # two pieces done, six to go
            assert first.poll() is None and time.time() < deadline, "the prepare ended before its second piece"
            time.sleep(0.01)
        first.send_signal(getattr(signal, sig))  # the main process only
        first.wait(timeout=30)
        assert lock_is_free(lock_of(corpus, cache), within_s=5), "a process of the killed prepare holds its lock"
        second = subprocess.run(prepare_cmd(corpus, cache), capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr[-2000:]
        (directory,) = cache.glob("local-*")
        manifest = load_manifest(directory)
        assert manifest["tasks"] == 8 and len(manifest["shards"]) == 16
        TokenData(directory, verify=True)  # every shard's sha256
    finally:
        try:
            os.killpg(first.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


ORPHAN = """
import os, sys, time
from pathlib import Path
from ladder.data.prepare import _lock
with _lock(Path(sys.argv[1]), False):
    child = os.fork()  # inherits the locked file, as datatrove's workers did, and outlives its parent
    if child == 0:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1), os.dup2(null, 2)  # the test reads its parent's output to the end
        time.sleep(300)
        os._exit(0)
    print(child, flush=True)
    os._exit(0)
"""


def test_a_lock_whose_holder_died_is_said_in_one_line_not_waited_on(tmp_path):
    import signal
    import subprocess
    import sys

    corpus, cache = write_corpus(tmp_path / "corpus", files=2, records=50), tmp_path / "cache"
    lock = lock_of(corpus, cache)
    lock.parent.mkdir(parents=True)
    orphan = int(subprocess.run([sys.executable, "-c", ORPHAN, str(lock)], capture_output=True, text=True,
                                check=True).stdout)
    try:
        assert not lock_is_free(lock, within_s=0)
        waiter = subprocess.run(prepare_cmd(corpus, cache), capture_output=True, text=True, timeout=60)
        last = waiter.stderr.splitlines()[-1]
        assert waiter.returncode == 2 and last.startswith("error: "), waiter.stderr
        assert "has died and a process it started still holds the lock" in last and f"fuser -v {lock}" in last
    finally:
        os.kill(orphan, signal.SIGKILL)
    assert lock_is_free(lock, within_s=5)
    again = subprocess.run(prepare_cmd(corpus, cache), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr


def test_prepare_keeps_datatrove_stats_in_its_log(tmp_path):
    import subprocess

    corpus, cache = write_corpus(tmp_path / "corpus", files=4, records=20), tmp_path / "cache"
    result = subprocess.run(prepare_cmd(corpus, cache, "data.tokenizer.kind=bytes", "data.tasks=4"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "fingerprint" in result.stdout and "tokens from 80 documents" in result.stdout  # ladder's own summary
    for stream in (result.stdout, result.stderr):
        assert "Stats" not in stream and "SUCCESS" not in stream and "INFO" not in stream, stream
    (directory,) = cache.glob("local-*")
    assert "📉📉📉 Stats: All 4 tasks" in (directory / "datatrove" / "console.log").read_text()
