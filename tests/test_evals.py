"""Downstream evals: scoring against hand-computed log-probabilities, bits per byte on multi-byte UTF-8, every task
config read from local JSONL through the same `datasets` path as the hub, the offline error, and validation corpora."""

import json
import math
from contextlib import nullcontext
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ladder.config import compose_config
from ladder.data.tokenizers import ByteTokenizer, train_bpe
from ladder.errors import LadderError
from ladder.evals.scoring import (Requests, choice_metrics, continuation_logprobs, encode_items, _share,
                                  split_trailing_space)
from ladder.evals.tasks import Item, Task
from ladder.distributed import Dist
from omegaconf import OmegaConf

CPU = torch.device("cpu")


class Bigram(torch.nn.Module):
    """A model whose next-token log-probabilities depend only on the current token: logits = table[token]."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = table

    def forward(self, input_ids, **masks_and_positions):
        return SimpleNamespace(logits=self.table[input_ids])


def bigram_table() -> torch.Tensor:
    """p('b' | 'a') = 1/2 and p('c' | 'b') = 1/4, the rest of each row uniform; every other row uniform."""
    table = torch.full((256, 256), 1 / 256, dtype=torch.float64)
    for cur, nxt, p in ((ord("a"), ord("b"), 0.5), (ord("b"), ord("c"), 0.25)):
        table[cur] = (1 - p) / 255
        table[cur, nxt] = p
    return table.log()


def score(model, items, seq_len=64, batch=3):
    requests = encode_items(items, ByteTokenizer(), seq_len)
    return requests, continuation_logprobs(model, requests, batch, CPU, nullcontext(), Dist())


def test_log_probability_matches_a_hand_computed_value():
    # context "a", continuations "bc" and "bd": log p = ln 1/2 + ln 1/4 = -ln 8, and ln 1/2 + ln (3/4 / 255)
    requests, logprobs = score(Bigram(bigram_table()), [Item(("a", "a"), ("bc", "bd"), gold=0)])
    assert logprobs[0] == pytest.approx(-math.log(8), abs=1e-6)  # scored in float32
    assert logprobs[1] == pytest.approx(math.log(0.5) + math.log(0.75 / 255), abs=1e-6)  # scored in float32
    metrics = choice_metrics(requests, logprobs)
    assert metrics["acc"] == metrics["acc_norm"] == metrics["acc_per_token"] == 1.0
    assert metrics["bpb"] == pytest.approx(3 / 2)  # 3 bits over 2 bytes
    assert metrics["loss_per_token"] == pytest.approx(math.log(8) / 2)


def by_hand(model, context: str, continuation: str, longest: int, seq_len: int) -> float:
    """One plain causal forward pass over [eos] + context + continuation, the prefix cut on the left so that the
    item's longest continuation fits in seq_len + 1 tokens."""
    prefix = np.frombuffer(b"\0" + context.encode(), dtype=np.uint8)[-(seq_len + 1 - longest):]
    seq = np.concatenate([prefix, np.frombuffer(continuation.encode(), dtype=np.uint8)]).astype(np.int64)
    n = len(continuation.encode())
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.from_numpy(seq[None, :-1])).logits[0].double(), -1)
    return sum(float(logp[t, seq[t + 1]]) for t in range(len(seq) - 1 - n, len(seq) - 1))


def test_packed_batched_scoring_equals_one_sequence_at_a_time_for_a_real_model():
    from ladder.model.build import build_model
    from ladder.model.spec import ModelSpec

    spec = ModelSpec(d_model=32, n_layers=2, n_heads=2, vocab_size=256, seq_len=48, tie_embeddings=True)
    model = build_model(spec, seed=3).eval()
    items = [Item(("def f(x):\n    return",) * 3, (" x", " x + 1", " 'é日本'"), 1),  # packed: a shared context
             Item(("import os",) * 2, ("\n", "\nimport sys\nimport re\nprint(os.getcwd())"), 0),
             Item(("It is _ here", "It is _ there"), (" now", " now"), 0),  # one row per context
             Item(("a" * 100,) * 2, (" bb", " cc"), 0)]  # longer than seq_len: cut on the left
    requests, batched = score(model, items, seq_len=48, batch=2)
    assert len(requests.units) == 5  # 3 + 2 + 2 + 2 requests in 1 + 1 + 2 + 1 rows
    expected = [by_hand(model, c, t, max(len(u.encode()) for u in item.continuations), 48)
                for item in items for c, t in zip(item.contexts, item.continuations)]
    np.testing.assert_allclose(batched, expected, rtol=0, atol=1e-4)
    assert max(u.positions.max() for u in requests.units) <= 48


def test_bits_per_byte_counts_utf8_bytes_not_characters_or_tokens():
    uniform = Bigram(torch.zeros(256, 256))  # every byte equally likely: 8 bits per byte
    items = [Item(("Q:", "Q:"), (" 日本語", " abc"), 0), Item(("Q:", "Q:"), (" é", " e"), 0)]
    requests, logprobs = score(uniform, items)
    assert requests.cont_bytes.tolist() == [10, 4, 3, 2] and requests.cont_chars.tolist() == [4, 4, 2, 2]
    metrics = choice_metrics(requests, logprobs)
    assert metrics["bpb"] == pytest.approx(8.0)
    assert metrics["loss_per_token"] == pytest.approx(math.log(256))
    # per character, the 10-byte answer costs 2.5x more than its 4-character rival: acc_norm prefers the rival
    assert metrics["acc_norm"] == 0.0 and metrics["acc"] == 0.0

    # with a BPE the tokens are fewer than the bytes: bpb = tokens * log2(V) / bytes, not log2(V)
    bpe = train_bpe(["日本語 日本語 日本語 abc abc é é"] * 50, 300)
    requests = encode_items(items, bpe, 64)
    uniform_v = Bigram(torch.zeros(bpe.vocab_size, bpe.vocab_size))
    logprobs = continuation_logprobs(uniform_v, requests, 4, CPU, nullcontext(), Dist())
    gold = [0, 2]
    expected = np.mean([requests.n_cont[i] * math.log2(bpe.vocab_size) / requests.cont_bytes[i] for i in gold])
    assert requests.n_cont[0] < requests.cont_bytes[0]
    assert choice_metrics(requests, logprobs)["bpb"] == pytest.approx(expected)


def test_trailing_space_of_the_context_moves_to_the_continuation():
    assert split_trailing_space("Answer: ", "yes") == ("Answer:", " yes")
    assert split_trailing_space("Answer:", " yes") == ("Answer:", " yes")


def test_ranks_run_equal_numbers_of_batches():
    for n in (1, 7, 8, 33):
        shares = [_share(n, 4, Dist(rank=r, world_size=3)) for r in range(3)]
        assert len({batches for _, batches in shares}) == 1
        real = sorted(int(i) for share, _ in shares for i in share if i >= 0)
        assert real == list(range(n))


def test_choice_metrics_by_hand():
    # item 0 (gold 0): raw prefers choice 1 (-4 > -5); per character choice 0 (-5/5 > -4/2); per token choice 1
    # (-5/1 < -4/2). Item 1 (gold 1) is right by every rule.
    requests = Requests(units=[], n_cont=np.array([1, 2, 1, 1]),
                        cont_bytes=np.array([5, 2, 1, 1]), cont_chars=np.array([5, 2, 1, 1]),
                        choice_chars=np.array([5, 2, 1, 1]),
                        item_of=np.array([0, 0, 1, 1]), gold=np.array([0, 1]), skipped=0)
    metrics = choice_metrics(requests, np.array([-5.0, -4.0, -3.0, -1.0]))
    assert (metrics["acc"], metrics["acc_norm"], metrics["acc_per_token"]) == (0.5, 1.0, 0.5)
    assert metrics["bpb"] == pytest.approx(np.mean([5 / 5, 1 / 1]) / math.log(2))
    assert metrics["loss_per_token"] == pytest.approx(np.mean([5 / 1, 1 / 1]))
    assert metrics["items"] == 2


def test_acc_norm_is_the_harness_rule_and_acc_per_char_is_olmes():
    """The harness divides by len(choice); OLMES by the scored continuation's length, its leading space included.
    Choices "ab" and "abcd" (continuations " ab", " abcd"), gold 0, log-probabilities -3 and -5.5: per choice
    character -1.5 < -1.375 picks "abcd"; per continuation character -1.0 > -1.1 picks "ab"."""
    items = [Item(("Q:", "Q:"), (" ab", " abcd"), 0, ("ab", "abcd"))]
    requests = encode_items(items, ByteTokenizer(), 32)
    assert requests.choice_chars.tolist() == [2, 4] and requests.cont_chars.tolist() == [3, 5]
    metrics = choice_metrics(requests, np.array([-3.0, -5.5]))
    assert metrics["acc_norm"] == 0.0 and metrics["acc_per_char"] == 1.0 and metrics["acc"] == 1.0


# -- task configs on local files -----------------------------------------------------------------------------
RECORDS = {
    # the harness's query: ctx_b capitalised (the rest of it lowercased), bracket tags removed
    "hellaswag": ({"activity_label": "Baking", "ctx_a": "A man [header] cracks eggs.", "ctx_b": "then He",
                   "endings": ["into a bowl.", "on [title] the roof.", "x.", "y."], "label": "0"},
                  "Baking: A man cracks eggs. Then he", [" into a bowl.", " on. the roof.", " x.", " y."], 0),
    "arc_easy": ({"question": "What is 2+2?", "choices": {"text": ["3", "4"], "label": ["A", "B"]},
                  "answerKey": "B"}, "Question: What is 2+2?\nAnswer:", [" 3", " 4"], 1),
    "arc_challenge": ({"question": "Which?", "choices": {"text": ["p", "q", "r"], "label": ["1", "2", "3"]},
                       "answerKey": "3"}, "Question: Which?\nAnswer:", [" p", " q", " r"], 2),
    "piqa": ({"goal": "Open a jar", "sol1": "twist the lid", "sol2": "eat the lid", "label": 0},
             "Question: Open a jar\nAnswer:", [" twist the lid", " eat the lid"], 0),
    "social_iqa": ({"context": "Ann won.", "question": "How does Ann feel?", "answerA": "sad", "answerB": "proud",
                    "answerC": "lost", "label": "2"},
                   "Q: Ann won. How does Ann feel?\nA:", [" sad", " proud", " lost"], 1),
    "commonsense_qa": ({"question": " Where is ink? ", "choices": {"label": list("ABCDE"),
                                                                   "text": ["pen", "sky", "sea", "cat", "dog"]},
                        "answerKey": "B"},
                       "Question: Where is ink?\nA. pen\nB. sky\nC. sea\nD. cat\nE. dog\nAnswer:",
                       [" A", " B", " C", " D", " E"], 1),
    "openbookqa": ({"question_stem": "The sun is a", "choices": {"label": list("ABCD"),
                                                                 "text": ["star", "moon", "rock", "lake"]},
                    "answerKey": "A"}, "The sun is a", [" star", " moon", " rock", " lake"], 0),
}


def compose_task(name: str, path, *extra: str) -> Task:
    cfg = compose_config([f"eval=[{name}]", f"eval.{name}.source=local", f"eval.{name}.path={path}", *extra])
    return Task(name, OmegaConf.to_container(cfg.eval[name], resolve=True))


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_task_config_reads_a_local_jsonl_in_the_hub_schema(name, tmp_path):
    record, context, continuations, gold = RECORDS[name]
    task = compose_task(name, write_jsonl(tmp_path / f"{name}.jsonl", [record, record]))
    item = task.items(None)[0]
    assert item.contexts == (context,) * len(continuations)
    assert list(item.continuations) == continuations and item.gold == gold


def test_winogrande_scores_the_text_after_the_blank(tmp_path):
    record = {"sentence": "The cup did not fit in the box because _ was too big.", "option1": "the cup",
              "option2": "the box", "answer": "1"}
    item = compose_task("winogrande", write_jsonl(tmp_path / "w.jsonl", [record])).items(None)[0]
    assert item.contexts == ("The cup did not fit in the box because the cup",
                             "The cup did not fit in the box because the box")
    assert item.continuations == (" was too big.",) * 2 and item.gold == 0


def mmlu_records():
    return [{"question": f"q{i}?", "subject": "abstract_algebra" if i % 3 else "philosophy",
             "choices": [f"a{i}", f"b{i}", f"c{i}", f"d{i}"], "answer": i % 4} for i in range(30)]


@pytest.mark.parametrize("group,kept,subject", [("mmlu_stem", 20, "abstract algebra"),
                                               ("mmlu_humanities", 10, "philosophy")])
def test_mmlu_as_the_harness_asks_it(group, kept, subject, tmp_path):
    """The subject's description, the first 5 questions of the item's own subject (never the item), each with its
    lettered answers and the right letter, then the item; the letter is scored."""
    records = mmlu_records()
    path = write_jsonl(tmp_path / "mmlu.jsonl", records)
    items = compose_task(group, path).items(None)
    assert len(items) == kept
    first = items[0]
    parts = first.contexts[0].split("\n\n")
    assert parts[0] == f"The following are multiple choice questions (with answers) about {subject}."
    same = [i for i, r in enumerate(records) if r["subject"].replace("_", " ") == subject]
    shots = [records[i] for i in same[1:6]]  # first_n, the item itself (the first of its subject) left out
    assert parts[1:6] == [f"{r['question']}\nA. {r['choices'][0]}\nB. {r['choices'][1]}\nC. {r['choices'][2]}\n"
                          f"D. {r['choices'][3]}\nAnswer: {'ABCD'[r['answer']]}" for r in shots]
    assert parts[6].startswith(records[same[0]]["question"]) and parts[6].endswith("Answer:")
    assert first.continuations == (" A", " B", " C", " D") and first.choices == ("A", "B", "C", "D")
    assert first.gold == records[same[0]]["answer"]
    # the same shots on every call, and an item keeps its shots when the limit changes
    assert compose_task(group, path).items(None) == items
    limited = compose_task(group, path).items(5)
    assert all(item in items for item in limited) and len(limited) == 5
    assert compose_task(group, path, f"eval.{group}.fewshot=0").items(None)[0].contexts[0] == "\n\n".join(
        [parts[0], parts[6]])


def test_every_task_config_names_its_hub_source():
    from ladder.config import CONF_DIR

    tasks = [p.stem for p in (CONF_DIR / "eval").glob("*.yaml")]
    required = {"hellaswag", "arc_easy", "arc_challenge", "piqa", "social_iqa", "commonsense_qa", "openbookqa",
                "winogrande", "mmlu_stem", "mmlu_humanities", "mmlu_social_sciences", "mmlu_other"}
    assert required <= set(tasks)
    cfg = compose_config([f"eval=[{','.join(sorted(required))}]"])
    subjects = []
    for name in required:
        entry = cfg.eval[name]
        assert entry.source == "hub" and entry.path and entry.split, name
        subjects += list(entry.get("filter", {}).get("subject", []))
    assert len(subjects) == len(set(subjects)) == 57  # the four MMLU groups cover every subject once


def test_offline_hub_task_fails_in_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = compose_config(["eval=[hellaswag]"])
    with pytest.raises(LadderError) as error:
        Task("hellaswag", OmegaConf.to_container(cfg.eval.hellaswag, resolve=True)).items(10)
    message = str(error.value)
    assert "\n" not in message and "cannot reach huggingface.co" in message
    assert "eval.hellaswag.source=local" in message


@pytest.mark.parametrize("override,message", [
    ("eval.piqa.answer=nope", "eval.piqa.answer: field 'nope' is not in the records"),
    ("eval.piqa.context='{missing}'", "names 'missing' which is not in the records"),
    ("+eval.piqa.format=mc", "eval.piqa.format='mc': use one of cloze, partial"),
])
def test_bad_task_fields_name_the_field(override, message, tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [RECORDS["piqa"][0]])
    with pytest.raises(LadderError, match=message.replace("(", r"\(").replace("[", r"\[")):
        compose_task("piqa", path, override).items(None)
