"""Scoring: the log-probability of continuations given contexts (ranked classification), and the mean loss of
fixed token windows (validation sets). Both batched, under no_grad, and split over ranks with equal batch counts,
so that sharded (FSDP) models, whose forward passes are collectives, run the same number of them on every rank.

Metrics of a multiple-choice task, as the lm-evaluation-harness and OLMo define them:
  acc            argmax of the continuations' summed log-probabilities
  acc_norm       argmax of log-probability per character of the continuation (the harness's acc_norm, OLMES' RC)
  acc_per_token  argmax of log-probability per token (OLMo's len_norm)
  bpb            the correct continuation's loss in bits per UTF-8 byte: -log2 p / bytes, averaged over items
  loss_per_token the correct continuation's loss in nats per token, averaged over items
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ladder.evals.tasks import Item
from ladder.train import distributed


@dataclass
class Requests:
    """Every (context, continuation) pair of a task as token ids: `[eos] + context + continuation`, cut on the left
    to seq_len + 1 tokens; the last `n_cont` targets are the continuation."""
    sequences: list[np.ndarray]
    n_cont: np.ndarray          # continuation tokens per request
    cont_bytes: np.ndarray      # UTF-8 bytes per continuation
    cont_chars: np.ndarray      # characters per continuation
    item_of: np.ndarray         # the item each request belongs to
    gold: np.ndarray            # per item
    skipped: int                # items whose continuation alone does not fit in seq_len


def split_trailing_space(context: str, continuation: str) -> tuple[str, str]:
    """Trailing spaces of the context belong to the continuation (the harness's rule): "Answer: " + "x" scores " x"."""
    stripped = context.rstrip(" ")
    return stripped, context[len(stripped):] + continuation


def encode_items(items: list[Item], tokenizer, seq_len: int) -> Requests:
    pairs = [split_trailing_space(c, t) for item in items for c, t in zip(item.contexts, item.continuations)]
    contexts = tokenizer.encode_batch([c for c, _ in pairs])
    wholes = tokenizer.encode_batch([c + t for c, t in pairs])
    sequences, n_cont, item_of, gold, keep_pairs = [], [], [], [], []
    skipped, k = 0, 0
    for item in items:
        n = len(item.contexts)
        conts = [wholes[k + j][len(contexts[k + j]):] for j in range(n)]
        if any(len(c) == 0 or len(c) > seq_len for c in conts):
            skipped += 1
        else:
            for j in range(n):
                seq = np.concatenate([[tokenizer.eos_id], contexts[k + j], conts[j]]).astype(np.int64)
                sequences.append(seq[-(seq_len + 1):])
                n_cont.append(len(conts[j]))
                item_of.append(len(gold))
                keep_pairs.append(pairs[k + j][1])
            gold.append(item.gold)
        k += n
    return Requests(sequences, np.array(n_cont, dtype=np.int64),
                    np.array([len(t.encode("utf-8")) for t in keep_pairs], dtype=np.int64),
                    np.array([len(t) for t in keep_pairs], dtype=np.int64),
                    np.array(item_of, dtype=np.int64), np.array(gold, dtype=np.int64), skipped)


def _share(n: int, batch: int, info) -> tuple[np.ndarray, int]:
    """This rank's request indices, padded (with -1) so that every rank runs the same number of batches."""
    mine = np.arange(info.rank, n, info.world_size)
    per_rank = -(-n // info.world_size)
    batches = -(-per_rank // batch)
    return np.concatenate([mine, np.full(per_rank - len(mine), -1)]), batches


@torch.no_grad()
def continuation_logprobs(module, requests: Requests, batch: int, device, autocast, info) -> np.ndarray:
    """Summed log-probability of each request's continuation, in nats (all ranks get all of them)."""
    n = len(requests.sequences)
    out = np.zeros(n)
    if n == 0:
        return out
    # longest first within this rank's share: batches of similar length waste little padding
    share, batches = _share(n, batch, info)
    lengths = np.array([len(requests.sequences[i]) if i >= 0 else 0 for i in share])
    share = share[np.argsort(-lengths, kind="stable")]
    for b in range(batches):
        chunk = share[b * batch:(b + 1) * batch]
        real = [int(i) for i in chunk if i >= 0] or [0]  # a rank with nothing left still joins the collective
        width = max(len(requests.sequences[i]) for i in real) - 1
        tokens = torch.zeros((len(real), width + 1), dtype=torch.long)
        for row, i in enumerate(real):
            seq = requests.sequences[i]
            tokens[row, :len(seq)] = torch.from_numpy(seq)
        tokens = tokens.to(device)
        with autocast:
            logits = module(input_ids=tokens[:, :-1]).logits
        rows, cols = [], []
        for row, i in enumerate(real):
            end = len(requests.sequences[i]) - 1  # targets [end - n_cont, end) are the continuation
            rows += [row] * int(requests.n_cont[i])
            cols += range(end - int(requests.n_cont[i]), end)
        rows, cols = torch.tensor(rows, device=device), torch.tensor(cols, device=device)
        nll = F.cross_entropy(logits[rows, cols].float(), tokens[rows, cols + 1], reduction="none")
        sums = torch.zeros(len(real), device=device, dtype=torch.float64).index_add_(0, rows, -nll.double())
        if any(i >= 0 for i in chunk):
            for row, i in enumerate(real):
                out[i] = float(sums[row])
    return np.array(distributed.all_reduce_sum(out.tolist(), info)) if info.enabled else out


def choice_metrics(requests: Requests, logprobs: np.ndarray) -> dict[str, float]:
    """acc, acc_norm, acc_per_token, bpb and loss_per_token over the task's items (see the module docstring)."""
    n_items = len(requests.gold)
    if n_items == 0:
        return {"items": 0}
    right = {"acc": 0, "acc_norm": 0, "acc_per_token": 0}
    bpb, per_token = [], []
    for item in range(n_items):
        idx = np.flatnonzero(requests.item_of == item)
        lp = logprobs[idx]
        gold = int(requests.gold[item])
        right["acc"] += int(np.argmax(lp) == gold)
        right["acc_norm"] += int(np.argmax(lp / requests.cont_chars[idx]) == gold)
        right["acc_per_token"] += int(np.argmax(lp / requests.n_cont[idx]) == gold)
        bpb.append(-lp[gold] / (math.log(2) * requests.cont_bytes[idx[gold]]))
        per_token.append(-lp[gold] / requests.n_cont[idx[gold]])
    return {**{k: v / n_items for k, v in right.items()}, "bpb": float(np.mean(bpb)),
            "loss_per_token": float(np.mean(per_token)), "items": n_items}


@torch.no_grad()
def windows_loss(module, windows: torch.Tensor, batch: int, device, autocast, info) -> float:
    """Mean next-token loss (nats) over fixed windows of seq_len + 1 tokens, split over ranks."""
    share, batches = _share(len(windows), batch, info)
    loss_sum = count = 0.0
    for b in range(batches):
        chunk = share[b * batch:(b + 1) * batch]
        real = torch.from_numpy(chunk[chunk >= 0])
        rows = windows[real if len(real) else torch.tensor([0])].to(device)
        with autocast:
            logits = module(input_ids=rows[:, :-1]).logits
        if len(real):
            loss_sum += float(F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), rows[:, 1:].reshape(-1),
                                              reduction="sum"))
            count += rows[:, 1:].numel()
    loss_sum, count = distributed.all_reduce_sum([loss_sum, count], info)
    return loss_sum / count
