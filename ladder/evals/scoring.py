"""Scoring: the log-probability of continuations given contexts (ranked classification), and the mean loss of
fixed token windows (validation sets). Both batched, under no_grad, and split over ranks with equal batch counts,
so that sharded (FSDP) models, whose forward passes are collectives, run the same number of them on every rank.

Metrics of a multiple-choice task, as the lm-evaluation-harness and OLMo define them:
  acc            argmax of the continuations' summed log-probabilities
  acc_norm       argmax of log-probability per character of the choice (the harness's acc_norm: the choice's own
                 text, without the space before it; for Winogrande the filled-in context, as the harness counts it)
  acc_per_char   argmax of log-probability per character of the scored continuation, its leading space included
                 (OLMES's per-character normalisation)
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
from ladder import distributed


@dataclass
class Unit:
    """One row of a forward pass: a shared prefix (`[eos] + context`) followed by one or more continuations, each
    attending to the prefix and to itself only, with positions restarting after the prefix. Scoring k choices of a
    shared context this way costs the context once, not k times, and gives the same log-probabilities."""
    tokens: np.ndarray
    segment: np.ndarray    # 0 for the prefix, j for continuation j (1-based)
    positions: np.ndarray  # position ids
    scored: list           # (request index, positions whose logits predict it, its target tokens)


@dataclass
class Requests:
    """Every (context, continuation) pair of a task: token units to run, and per pair what the metrics need."""
    units: list[Unit]
    n_cont: np.ndarray          # continuation tokens per request
    cont_bytes: np.ndarray      # UTF-8 bytes per continuation
    cont_chars: np.ndarray      # characters per continuation (as scored: its leading space included)
    choice_chars: np.ndarray    # characters per choice as the harness counts them (acc_norm)
    item_of: np.ndarray         # the item each request belongs to
    gold: np.ndarray            # per item
    skipped: int                # items whose continuation alone does not fit in seq_len


def split_trailing_space(context: str, continuation: str) -> tuple[str, str]:
    """Trailing spaces of the context belong to the continuation (the harness's rule): "Answer: " + "x" scores " x"."""
    stripped = context.rstrip(" ")
    return stripped, context[len(stripped):] + continuation


def pack(prefix: np.ndarray, continuations: list[np.ndarray], first_request: int, seq_len: int) -> Unit:
    """A unit for continuations of one prefix; the prefix is cut on the left so that every continuation's positions
    stay within seq_len + 1 (as the harness cuts each request)."""
    prefix = prefix[-(seq_len + 1 - max(len(c) for c in continuations)):]
    p = len(prefix)
    tokens, segment, positions, scored = [prefix], [np.zeros(p, np.int64)], [np.arange(p)], []
    start = p
    for j, cont in enumerate(continuations):
        n = len(cont)
        tokens.append(cont)
        segment.append(np.full(n, j + 1))
        positions.append(np.arange(p, p + n))
        # the first token is predicted by the prefix's last position, the rest by the continuation's own
        scored.append((first_request + j, np.concatenate([[p - 1], np.arange(start, start + n - 1)]), cont))
        start += n
    return Unit(np.concatenate(tokens).astype(np.int64), np.concatenate(segment), np.concatenate(positions), scored)


def encode_items(items: list[Item], tokenizer, seq_len: int) -> Requests:
    pairs = [split_trailing_space(c, t) for item in items for c, t in zip(item.contexts, item.continuations)]
    contexts = tokenizer.encode_batch([c for c, _ in pairs])
    wholes = tokenizer.encode_batch([c + t for c, t in pairs])
    units, n_cont, item_of, gold, kept, choice_chars = [], [], [], [], [], []
    skipped, k = 0, 0
    eos = np.array([tokenizer.eos_id])
    for item in items:
        n = len(item.contexts)
        conts = [wholes[k + j][len(contexts[k + j]):] for j in range(n)]
        if any(len(c) == 0 or len(c) > seq_len for c in conts):
            skipped += 1
            k += n
            continue
        first = len(n_cont)
        if len(set(item.contexts)) == 1:  # cloze: one prefix, every choice packed after it
            units.append(pack(np.concatenate([eos, contexts[k]]), conts, first, seq_len))
        else:  # partial: a prefix per choice
            units += [pack(np.concatenate([eos, contexts[k + j]]), [conts[j]], first + j, seq_len) for j in range(n)]
        n_cont += [len(c) for c in conts]
        item_of += [len(gold)] * n
        kept += [pairs[k + j][1] for j in range(n)]
        choice_chars += [len(c) for c in item.choices] if item.choices else [len(pairs[k + j][1]) for j in range(n)]
        gold.append(item.gold)
        k += n
    return Requests(units, np.array(n_cont, dtype=np.int64),
                    np.array([len(t.encode("utf-8")) for t in kept], dtype=np.int64),
                    np.array([len(t) for t in kept], dtype=np.int64), np.array(choice_chars, dtype=np.int64),
                    np.array(item_of, dtype=np.int64), np.array(gold, dtype=np.int64), skipped)


def _share(n: int, batch: int, info) -> tuple[np.ndarray, int]:
    """This rank's indices, padded (with -1) so that every rank runs the same number of batches."""
    mine = np.arange(info.rank, n, info.world_size)
    per_rank = -(-n // info.world_size)
    batches = -(-per_rank // batch)
    return np.concatenate([mine, np.full(per_rank - len(mine), -1)]), batches


def _batch_tensors(units: list[Unit], device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded tokens, position ids and the boolean attention mask [B, 1, W, W] (True: may attend)."""
    width = max(len(u.tokens) for u in units)
    tokens = torch.zeros((len(units), width), dtype=torch.long)
    positions = torch.zeros((len(units), width), dtype=torch.long)
    segment = torch.full((len(units), width), -1, dtype=torch.long)
    for row, unit in enumerate(units):
        tokens[row, :len(unit.tokens)] = torch.from_numpy(unit.tokens)
        positions[row, :len(unit.tokens)] = torch.from_numpy(unit.positions)
        segment[row, :len(unit.tokens)] = torch.from_numpy(unit.segment)
    query, key = segment[:, :, None], segment[:, None, :]
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    mask = causal & (key == 0) & (query >= 0) | causal & (key == query) | torch.eye(width, dtype=torch.bool)
    return tokens.to(device), positions.to(device), mask[:, None].to(device)


@torch.no_grad()
def continuation_logprobs(module, requests: Requests, batch: int, device, autocast, info) -> np.ndarray:
    """Summed log-probability of each request's continuation, in nats (all ranks get all of them)."""
    out = np.zeros(len(requests.n_cont))
    units = requests.units
    if not units:
        return out
    # longest first within this rank's share: batches of similar length waste little padding
    share, batches = _share(len(units), batch, info)
    share = share[np.argsort([-len(units[i].tokens) if i >= 0 else 0 for i in share], kind="stable")]
    for b in range(batches):
        chunk = [int(i) for i in share[b * batch:(b + 1) * batch] if i >= 0]
        rows = [units[i] for i in chunk] or [units[0]]  # a rank with nothing left still joins the collective
        tokens, positions, mask = _batch_tensors(rows, device)
        with autocast:
            logits = module(input_ids=tokens, position_ids=positions, attention_mask=mask).logits
        for row, i in enumerate(chunk):
            for request, predict_at, targets in units[i].scored:
                picked = logits[row, torch.as_tensor(predict_at, device=device)].float()
                targets = torch.tensor(targets, dtype=torch.long, device=device)  # tokenizer arrays may be read-only
                out[request] = -float(F.cross_entropy(picked, targets, reduction="sum"))
    return np.array(distributed.all_reduce_sum(out.tolist(), info)) if info.enabled else out


ACCURACIES = ("acc", "acc_norm", "acc_per_char", "acc_per_token")


def item_results(requests: Requests, logprobs: np.ndarray) -> list[dict[str, float]]:
    """Per item: each accuracy (1 or 0, as the harness logs its samples) and the correct continuation's bpb and
    loss per token."""
    out = []
    for item in range(len(requests.gold)):
        idx = np.flatnonzero(requests.item_of == item)
        lp = logprobs[idx]
        gold = int(requests.gold[item])
        # np.argmax takes the first of equal scores, as the harness does
        picks = {"acc": np.argmax(lp), "acc_norm": np.argmax(lp / requests.choice_chars[idx]),
                 "acc_per_char": np.argmax(lp / requests.cont_chars[idx]),
                 "acc_per_token": np.argmax(lp / requests.n_cont[idx])}
        out.append({**{k: float(v == gold) for k, v in picks.items()},
                    "bpb": float(-lp[gold] / (math.log(2) * requests.cont_bytes[idx[gold]])),
                    "loss_per_token": float(-lp[gold] / requests.n_cont[idx[gold]])})
    return out


def choice_metrics(requests: Requests, logprobs: np.ndarray) -> dict[str, float]:
    """The accuracies, bpb and loss_per_token averaged over the task's items (see the module docstring)."""
    items = item_results(requests, logprobs)
    if not items:
        return {"items": 0}
    return {**{k: float(np.mean([r[k] for r in items])) for k in (*ACCURACIES, "bpb", "loss_per_token")},
            "items": len(items)}


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
