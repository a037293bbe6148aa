"""A multiple-choice task made from the training corpus's own held-out documents, for ladders with no network.

`next_line`: the context is up to `context_lines` lines of a held-out document, the right answer is the line that
follows, the distractors are lines of similar length (within a factor of 1.5) from other held-out documents. Chance
is 1 / `n_choices`; indentation, names in scope and syntax make it learnable, and it improves with scale. It is
read from the validation shards (decoded with the training tokenizer), so it never overlaps the training split.
"""

from __future__ import annotations

import re

import numpy as np

from ladder.errors import require

GENERATORS = ("next_line",)


def heldout_documents(data, tokenizer) -> list[str]:
    """The validation split's documents, decoded (documents end with the tokenizer's EOS id). One document (the
    tail of a single text file, split by token range) is cut at blank lines into paragraphs instead, so distractors
    come from elsewhere in it."""
    tokens = np.concatenate([np.asarray(shard) for shard in data.splits["val"]])
    ends = np.flatnonzero(tokens == tokenizer.eos_id)
    starts = np.concatenate([[0], ends[:-1] + 1])
    documents = [tokenizer.decode(tokens[s:e]) for s, e in zip(starts, ends) if e > s]
    if len(documents) == 1:
        documents = [part for part in re.split(r"\n[ \t]*\n", documents[0]) if part.strip()]
    return documents


def next_line_records(documents: list[str], cfg: dict, seed: int, key: str) -> list[dict]:
    context_lines = int(cfg.get("context_lines") or 8)
    n_choices = int(cfg.get("n_choices") or 4)
    min_chars = int(cfg.get("min_chars") or 16)
    per_document = int(cfg.get("per_document") or 64)
    require(n_choices >= 2, f"{key}.n_choices={n_choices}: must be >= 2")
    lines = [doc.split("\n") for doc in documents]
    # candidate answers: lines long enough to carry content, after at least two lines of context
    candidates = [(d, j) for d, doc in enumerate(lines) for j in range(2, len(doc)) if len(doc[j].strip()) >= min_chars]
    require(len(documents) >= 2 and len(candidates) > n_choices,
            f"{key}: the held-out split has too few lines of {min_chars}+ characters; raise data.val_fraction")
    by_length = sorted(candidates, key=lambda c: len(lines[c[0]][c[1]]))
    lengths = np.array([len(lines[d][j]) for d, j in by_length])
    rng = np.random.default_rng([seed, 2])
    records = []
    by_document: dict[int, list[int]] = {}
    for d, j in candidates:
        by_document.setdefault(d, []).append(j)
    for d, doc in enumerate(lines):
        for j in sorted(rng.permutation(by_document.get(d, []))[:per_document]):
            answer = doc[j]
            lo, hi = np.searchsorted(lengths, [len(answer) / 1.5, len(answer) * 1.5 + 1])
            pool = [by_length[i] for i in range(lo, hi)]
            pool = [c for c in pool if c[0] != d and lines[c[0]][c[1]] != answer] or \
                [c for c in by_length if c[0] != d and lines[c[0]][c[1]] != answer]
            picks = rng.choice(len(pool), size=min(n_choices - 1, len(pool)), replace=False)
            choices = [answer] + [lines[pool[i][0]][pool[i][1]] for i in picks]
            if len(set(choices)) < n_choices:
                continue
            order = rng.permutation(n_choices)
            records.append({"context": "\n".join(doc[max(0, j - context_lines):j]) + "\n",
                            "choices": [choices[i] for i in order], "label": int(np.flatnonzero(order == 0)[0]),
                            "document": d})
    return records
