"""The evaluation suite of a run: every entry of the `eval` config, read and tokenized once, scored on demand.

An entry is a multiple-choice task (`kind: multiple_choice`, see tasks.py) or a named validation corpus
(`kind: perplexity`: any corpus config, local or hub, scored as mean loss over fixed windows). Results are flat
names, `<entry>/<metric>`: `hellaswag/acc`, `hellaswag/bpb`, `c4_val/loss`, ...
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ladder.data.sources import documents, resolve_source
from ladder.errors import LadderError, require
from ladder.evals.scoring import choice_metrics, continuation_logprobs, encode_items, windows_loss
from ladder.evals.tasks import Task

KINDS = ("multiple_choice", "perplexity")


def corpus_windows(name: str, cfg: dict, tokenizer, seq_len: int, max_tokens: int) -> tuple[torch.Tensor, float]:
    """Windows of seq_len + 1 tokens from the corpus's documents (each after an EOS, as in training), and the
    corpus's UTF-8 bytes per token over the documents read, for bits per byte."""
    key = f"eval.{name}"
    source = resolve_source({"text_field": "text", **cfg, "name": name}, key=key)
    limit = cfg.get("max_documents")
    need = (max(1, max_tokens // seq_len)) * seq_len + 1
    stream, n_tokens, n_bytes = [], 0, 0
    for text in documents(source, int(limit) if limit else None):
        ids = tokenizer.encode_batch([text])[0]
        stream.append(np.concatenate([[tokenizer.eos_id], ids]))
        n_tokens += len(ids) + 1
        n_bytes += len(text.encode("utf-8"))
        if n_tokens >= need:
            break
    require(n_tokens > seq_len, f"{key}: the corpus holds {n_tokens} tokens, fewer than one window of {seq_len + 1}")
    tokens = np.concatenate(stream).astype(np.int64)
    rows = (min(len(tokens), need) - 1) // seq_len
    windows = np.stack([tokens[i * seq_len:i * seq_len + seq_len + 1] for i in range(rows)])
    return torch.from_numpy(windows), n_bytes / n_tokens


class EvalSuite:
    def __init__(self, eval_cfg: dict | None, tokenizer, seq_len: int, max_items: int | None, max_tokens: int,
                 heldout=None):
        """`heldout`: a callable returning the training corpus's held-out documents (tasks with source=heldout)."""
        self.tasks, self.corpora, self.skipped = {}, {}, {}
        for name, entry in (eval_cfg or {}).items():
            require(isinstance(entry, dict), f"eval.{name}: expected a mapping (see conf/eval/)")
            kind = entry.get("kind", "multiple_choice")
            require(kind in KINDS, f"eval.{name}.kind={kind!r}: use one of {', '.join(KINDS)}")
            if kind == "perplexity":
                tokens = int(float(entry.get("max_tokens") or max_tokens))
                self.corpora[name] = corpus_windows(name, entry, tokenizer, seq_len, tokens)
                continue
            limit = entry.get("limit") or max_items
            items = Task(name, entry, heldout).items(int(limit) if limit else None)
            requests = encode_items(items, tokenizer, seq_len)
            require(len(requests.gold), f"eval.{name}: no item fits in seq_len={seq_len} tokens")
            self.tasks[name], self.skipped[name] = requests, requests.skipped

    def __bool__(self) -> bool:
        return bool(self.tasks or self.corpora)

    def run(self, module, batch: int, device, autocast, info) -> dict[str, float]:
        """Every entry's metrics; the caller puts the model in eval mode."""
        results: dict[str, float] = {}
        for name, requests in self.tasks.items():
            logprobs = continuation_logprobs(module, requests, batch, device, autocast, info)
            results.update({f"{name}/{metric}": value for metric, value in choice_metrics(requests, logprobs).items()})
        for name, (windows, bytes_per_token) in self.corpora.items():
            loss = windows_loss(module, windows, batch, device, autocast, info)
            results.update({f"{name}/loss": loss, f"{name}/bpb": loss / math.log(2) / bytes_per_token})
        return results


def make_suite(cfg, data, seq_len: int) -> "EvalSuite":
    """The run's eval entries (cfg.eval), read and tokenized with the training corpus's tokenizer (`data`: its
    TokenData)."""
    from omegaconf import OmegaConf

    from ladder.data.tokenizers import load_saved
    from ladder.evals.heldout import heldout_documents
    entries = OmegaConf.to_container(cfg.eval, resolve=True) if cfg.get("eval") else {}
    limit = cfg.train.get("eval_max_items")
    # a pretokenized corpus's tokenizer is only named: loaded (from the hub cache) when evaluations need it
    tokenizer = None
    if entries:
        try:
            tokenizer = load_saved(data.manifest["tokenizer"], data.directory)
        except LadderError as error:
            stated = data.manifest["tokenizer"]
            require(not stated.get("pretokenized"), f"eval=[{','.join(entries)}]: evaluations tokenize text with the "
                    f"tokenizer that made the ids, data.tokenizer.name={stated.get('name')}, which cannot be loaded "
                    f"here ({str(error).split(';')[0].split(': ', 1)[-1]}); connect to the network once to cache it, "
                    f"or train without them (eval=[])")
            raise
    return EvalSuite(entries, tokenizer, seq_len, int(limit) if limit else None, int(float(cfg.train.eval_tokens)),
                     heldout=lambda: heldout_documents(data, tokenizer))
