"""Run configurator: model size -> batch, learning rate, warmup, optimizer settings, schedule and token budgets.

Kept apart from the model configurator (`ladder.model`): a shape says nothing about how it is trained.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

from ladder.errors import LadderError, require

SCHEDULES = ("cosine", "linear", "constant", "wsd", "wsds")
_BUDGET = re.compile(r"^\s*([+-]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(xC|F|flops|FLOPs)?\s*$")


@dataclass(frozen=True)
class Recipe:
    """Resolved hyperparameters of one run."""

    batch_sequences: int
    micro_batch_sequences: int
    grad_accum_steps: int
    batch_tokens: int
    lr: float
    warmup_tokens: int
    warmup_steps: int
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    grad_clip: float
    schedule: dict

    @property
    def branches_budgets(self) -> bool:
        """WSD-S: one run yields every budget, through cooldown branches."""
        return self.schedule["name"] == "wsds"

    def to_dict(self) -> dict:
        return asdict(self)


def to_number(value, where: str) -> float:
    """YAML reads `4e12` as a string; accept it and friends as numbers, refuse anything else in one line."""
    if isinstance(value, bool):
        raise LadderError(f"{where}={value!r}: must be a number")
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).replace("_", ""))
    except ValueError:
        raise LadderError(f"{where}={value!r}: must be a number") from None


def parse_budget(value, n_params: int, flops_per_token: int, tokens_per_param: float, where: str) -> int:
    """A token budget from `2xC` (multiples of tokens_per_param * N), a token count, or `1e18F` (FLOPs)."""
    match = _BUDGET.match(str(value)) if not isinstance(value, bool) else None
    require(match is not None, f"{where}={value!r}: write a budget as NxC (e.g. 2xC), a token count (e.g. 5e9) "
                               f"or FLOPs (e.g. 1e18F)")
    amount, unit = float(match.group(1)), match.group(2)
    if unit == "xC":
        tokens = amount * tokens_per_param * n_params
    elif unit in ("F", "flops", "FLOPs"):
        tokens = amount / flops_per_token
    else:
        tokens = amount
    require(tokens >= 1, f"{where}={value!r}: must be a positive budget (it gives {tokens:.3g} tokens)")
    return int(round(tokens))


def is_flops_budget(label) -> bool:
    """Whether a budget is written in FLOPs (`1e18F`), the only budgets that make isoFLOP curves."""
    match = _BUDGET.match(str(label))
    return bool(match) and match.group(2) in ("F", "flops", "FLOPs")


def budget_label(value) -> str:
    """`2xC` and `1e18F` as written; a plain token count as a short number (20000.0 -> 20k)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        from ladder.report import human
        return human(value)
    return str(value).replace(" ", "")


def resolve_recipe(cfg: dict, n_params: int, seq_len: int, where: str = "recipe") -> Recipe:
    """Hyperparameters for a model with `n_params` parameters (in the recipe's `params_for` convention)."""
    for key in ("beta1", "beta2"):
        value = to_number(cfg[key], f"{where}.{key}")
        require(0 <= value < 1, f"{where}.{key}={value}: must be in [0, 1)")
    for key in ("eps", "weight_decay", "grad_clip", "warmup_tokens_per_param"):
        require(to_number(cfg[key], f"{where}.{key}") >= 0, f"{where}.{key}={cfg[key]}: must be >= 0")
    lr_rule, batch_rule = cfg["lr"], cfg["batch"]
    for group, rule in (("lr", lr_rule), ("batch", batch_rule)):
        for key, value in rule.items():
            number = to_number(value, f"{where}.{group}.{key}")
            require(key == "exponent" or number > 0, f"{where}.{group}.{key}={value}: must be positive")

    lr = to_number(lr_rule["base"], "lr") * (n_params / to_number(lr_rule["ref_params"], "")) ** to_number(
        lr_rule["exponent"], "")
    sequences_at_ref_len = to_number(batch_rule["base_sequences"], "") * (
        n_params / to_number(batch_rule["ref_params"], "")) ** to_number(batch_rule["exponent"], "")
    floor = int(to_number(batch_rule.get("min_sequences", 1), f"{where}.batch.min_sequences"))
    batch_sequences = max(floor, round(sequences_at_ref_len * to_number(batch_rule["ref_seq_len"], "") / seq_len))
    micro = int(to_number(cfg["micro_batch_sequences"], f"{where}.micro_batch_sequences"))
    require(micro >= 1, f"{where}.micro_batch_sequences={micro}: must be >= 1")
    micro = min(micro, batch_sequences)
    grad_accum = math.ceil(batch_sequences / micro)
    batch_sequences = grad_accum * micro  # the global batch is a whole number of micro-batches
    batch_tokens = batch_sequences * seq_len
    warmup_tokens = int(round(to_number(cfg["warmup_tokens_per_param"], "") * n_params))
    return Recipe(
        batch_sequences=batch_sequences, micro_batch_sequences=micro, grad_accum_steps=grad_accum,
        batch_tokens=batch_tokens, lr=lr, warmup_tokens=warmup_tokens,
        warmup_steps=math.ceil(warmup_tokens / batch_tokens),
        beta1=float(cfg["beta1"]), beta2=float(cfg["beta2"]), eps=float(cfg["eps"]),
        weight_decay=float(cfg["weight_decay"]), grad_clip=float(cfg["grad_clip"]),
        schedule=validate_schedule(cfg["schedule"], f"{where}.schedule"))


def validate_schedule(schedule, where: str) -> dict:
    require(isinstance(schedule, dict), f"{where}={schedule!r}: a mapping, not a name; set {where}.name={schedule} "
                                        f"(or choose a recipe whose schedule it is, e.g. recipe=porian)")
    schedule = dict(schedule)
    name = schedule.get("name")
    require(name in SCHEDULES, f"{where}.name={name!r}: unknown schedule; use one of {', '.join(SCHEDULES)}")
    for key in ("final_lr_frac", "cooldown_frac"):
        if key in schedule:
            value = to_number(schedule[key], f"{where}.{key}")
            require(0 <= value <= 1, f"{where}.{key}={value}: must be in [0, 1]")
            schedule[key] = value
    if name in ("wsd", "wsds"):
        require(schedule.get("cooldown_frac", 0) > 0, f"{where}.cooldown_frac: {name} needs a cooldown fraction in (0, 1]")
        shape = schedule.get("cooldown_shape", "linear")
        require(shape in ("linear", "cosine", "1-sqrt"),
                f"{where}.cooldown_shape={shape!r}: use linear, cosine or 1-sqrt")
    return schedule
