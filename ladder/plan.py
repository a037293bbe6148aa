"""Ladder config -> fully resolved rungs (shape, counts, hyperparameters, budgets, cost) and the target run.

A rung is one training run. With a branching schedule (WSD-S) a rung is one size and yields every budget; with any
other schedule a rung is one (size, budget) pair, as in the OLMo ladder.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field

from omegaconf import DictConfig, ListConfig, OmegaConf

from ladder.errors import LadderError, require
from ladder.hardware import peak_flops
from ladder.model import (FLOPS_CONVENTIONS, ModelSpec, ParamCount, ParamCounts, count_params,
                          flops_per_token, preset_shape)
from ladder.model import shape_for_params
from ladder.model.presets import PRESETS
from ladder.recipe import Recipe, budget_label, parse_budget, resolve_recipe, to_number
from ladder.train.options import check_eval_points

# GPU-hours are estimated from the FLOPs actually executed (attention and output layer included).
EXECUTED_FLOPS_CONVENTION = "porian"


@dataclass
class Rung:
    name: str
    size: str
    seed: int
    spec: ModelSpec
    counts: ParamCounts
    recipe: Recipe
    budgets: dict[str, int]  # label -> tokens, ascending; the run trains to the last
    flops_per_token: int  # in the plan's convention
    eval_points: int = 0  # evaluations spread over the main run, besides one at each budget (train.eval_points)
    eval_tokens: int = 0  # tokens one evaluation reads (forward only): validation set, eval corpora, task items

    @property
    def tokens(self) -> int:
        return max(self.budgets.values())

    @property
    def steps(self) -> int:
        return math.ceil(self.tokens / self.recipe.batch_tokens)

    @property
    def trained_tokens(self) -> int:
        """Tokens the run trains, what it costs: with WSD-S the main run stops at the last budget's fork and every
        budget (the last too) adds its own cooldown branch."""
        if not self.recipe.branches_budgets:
            return self.tokens
        from ladder.schedule import cooldown_length

        batch = self.recipe.batch_tokens
        cooldowns = [cooldown_length(math.ceil(tokens / batch), self.recipe.schedule) * batch
                     for tokens in self.budgets.values()]
        return self.tokens - cooldowns[-1] + sum(cooldowns)

    @property
    def flops(self) -> float:
        return float(self.flops_per_token) * self.trained_tokens

    @property
    def run_steps(self):
        """Where the run goes in optimizer steps: each budget, each cooldown's fork, the evaluations between."""
        from ladder.schedule import run_steps
        return run_steps(self.budgets, self.recipe.batch_tokens, self.recipe.schedule, self.recipe.branches_budgets)

    @property
    def eval_share(self) -> float:
        """Evaluation's share of the rung's compute: a forward pass costs a third of a training step's."""
        evaluating = (self.eval_points + len(self.budgets)) * self.eval_tokens
        return evaluating / (evaluating + 3 * self.trained_tokens) if evaluating else 0.0


@dataclass
class Target:
    name: str
    spec: ModelSpec
    counts: ParamCounts
    tokens: int
    flops_per_token: int
    shape_from: str

    @property
    def flops(self) -> float:
        return float(self.flops_per_token) * self.tokens


@dataclass
class Plan:
    ladder: str
    flops_convention: str
    rungs: list[Rung]
    target: Target
    gpu: str
    mfu: float
    params_convention: ParamCount = ParamCount.total  # N in every fit of this ladder (ladder.params_convention)
    params_for: ParamCount = ParamCount.olmo  # N in the recipe's rules (recipe.params_for)
    notes: list[str] = field(default_factory=list)
    corpus: dict | None = None  # the training split's tokens (with_corpus), beside each rung's
    eval_points_setting: str = "auto"  # train.eval_points as given

    @property
    def ladder_flops(self) -> float:
        return sum(rung.flops for rung in self.rungs)

    @property
    def data_tokens(self) -> int:
        """Training tokens the longest rung reads: what the corpus must hold for no rung to repeat it."""
        return max(rung.tokens for rung in self.rungs)

    def gpu_hours(self, spec: ModelSpec, tokens: int) -> float:
        executed = float(flops_per_token(spec, EXECUTED_FLOPS_CONVENTION)) * tokens
        return executed / (peak_flops(self.gpu) * self.mfu) / 3600

    def rung(self, name: str | None) -> Rung:
        """The rung `rung=NAME` names, refused in one line when missing or not in the ladder."""
        require(name, f"rung: missing; name one of {', '.join(r.name for r in self.rungs)} (rung=NAME)")
        for rung in self.rungs:
            if rung.name == str(name):  # Hydra reads rung=123 as a number
                return rung
        raise LadderError(f"rung={name!r}: not in ladder {self.ladder!r}; use one of "
                          f"{', '.join(r.name for r in self.rungs)}")


def make_plan(cfg: DictConfig) -> Plan:
    """Validate everything first, then resolve; raises LadderError with a one-line message."""
    convention = cfg.get("flops_convention")
    require(convention in FLOPS_CONVENTIONS,
            f"flops_convention={convention!r}: unknown; use one of {', '.join(FLOPS_CONVENTIONS)}")
    gpu = str(cfg.hardware.gpu)
    peak_flops(gpu)
    mfu = to_number(cfg.hardware.mfu, "hardware.mfu")
    require(0 < mfu <= 1, f"hardware.mfu={mfu}: must be in (0, 1], e.g. 0.4")

    lad = cfg.ladder
    plain_name(lad.get("name"), "ladder.name")
    recipe_cfg = _plain(cfg.recipe)
    tokens_per_param = to_number(recipe_cfg["tokens_per_param"], "recipe.tokens_per_param")
    require(tokens_per_param > 0, f"recipe.tokens_per_param={tokens_per_param}: must be positive")
    params_for = ParamCount.named(recipe_cfg["params_for"], "recipe.params_for")
    unknown = sorted(set(lad.keys()) - LADDER_KEYS)
    require(not unknown, f"ladder.{unknown[0] if unknown else ''}: not a ladder key (misspelt?); a ladder has "
                         f"{', '.join(sorted(LADDER_KEYS))}")
    sizes = _plain(lad.get("sizes")) or {}
    require(isinstance(sizes, dict) and len(sizes) > 0, "ladder.sizes: missing or empty; give at least one size "
                                                        "(see conf/ladder/tiny.yaml)")
    budgets = _plain(lad.get("budgets"))
    require(budgets is None or isinstance(budgets, list), f"ladder.budgets={budgets!r}: a list, e.g. [{budgets}]")
    require(budgets, "ladder.budgets: missing or empty; give at least one budget, e.g. [1xC, 2xC]")
    params_convention = ParamCount.named(lad.get("params_convention"), "ladder.params_convention")
    seeds = list(lad.get("seeds") or [0])
    for i, seed in enumerate(seeds):
        require(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0,
                f"ladder.seeds[{i}]={seed!r}: must be a non-negative integer")

    rungs, notes = [], []
    points = cfg.train.get("eval_points") if cfg.get("train") else 0
    check_eval_points(points)
    for size, entry in sizes.items():
        where = f"ladder.sizes.{size}"
        plain_name(size, where)
        entry, size_recipe = split_recipe(entry, recipe_cfg, where)
        spec = resolve_spec(entry, lad, where)
        counts = count_params(spec)
        asked = to_number(entry["params"], where) if isinstance(entry, dict) and entry.get("params") else None
        if asked and abs(counts.total / asked - 1) > 0.02:
            notes.append(f"{where}.params={asked:g}: the shape rule's closest shape has {counts.total:.3g} "
                         f"parameters ({counts.total / asked - 1:+.0%}); give an explicit shape or another size")
        n = counts.by_convention(params_for)
        require(n > 0, f"{where}: has no {params_for.name} parameters; set recipe.params_for=total")
        recipe = resolve_recipe(size_recipe, n, spec.seq_len, f"{where}.recipe" if size_recipe is not recipe_cfg
                                else "recipe")
        fpt = flops_per_token(spec, convention)
        resolved = {}
        for i, value in enumerate(budgets):
            tokens = parse_budget(value, n, fpt, tokens_per_param, f"ladder.budgets[{i}]")
            resolved[budget_label(value)] = recipe.batch_tokens * max(1, math.ceil(tokens / recipe.batch_tokens))
        resolved = dict(sorted(resolved.items(), key=lambda kv: kv[1]))
        groups = [resolved] if recipe.branches_budgets else [{label: tokens} for label, tokens in resolved.items()]
        for group in groups:
            for seed in seeds:
                name = size if recipe.branches_budgets else f"{size}-{next(iter(group))}"
                if len(seeds) > 1:
                    name += f"-s{seed}"
                rung = Rung(name=name, size=size, seed=seed, spec=spec, counts=counts, recipe=recipe,
                            budgets=group, flops_per_token=fpt, eval_tokens=evaluation_tokens(cfg, spec.seq_len))
                wanted = auto_eval_points(rung) if str(points) == "auto" else int(points or 0)
                rung.eval_points = len(rung.run_steps.eval_steps(wanted))  # what the run does: a short one has fewer
                if rung.eval_share > EVAL_SHARE and str(points) == "auto":
                    notes.append(f"rung {name}: its budgets' own evaluations are {rung.eval_share:.0%} of its compute; "
                                 f"a smaller train.eval_tokens or train.eval_max_items, or eval=[], costs less")
                rungs.append(rung)
    names = [r.name for r in rungs]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    require(duplicate is None, f"ladder: two rungs are named {duplicate!r}; give sizes or budgets distinct names")

    target = resolve_target(cfg.target, lad, convention, params_for, tokens_per_param)
    return Plan(ladder=str(lad.name), flops_convention=convention, rungs=rungs, target=target, gpu=gpu, mfu=mfu,
                params_convention=params_convention, params_for=params_for, notes=notes,
                eval_points_setting=str(points))


EVAL_SHARE = 0.10  # evaluation's share of a rung's compute that train.eval_points=auto keeps under
EVAL_AIM = 0.08  # what auto plans for: the estimate counts FLOPs, and task batches' padding and masks made the
#                  measured share of wall time 1-2 points higher than it (2 CPU cores, the tiny ladder)
MAX_EVAL_POINTS = 20
UNSIZED_TASK_ITEMS = 1000  # a task scored whole (no limit, no train.eval_max_items): its size is known once read


def evaluation_tokens(cfg, seq_len: int) -> int:
    """Tokens one evaluation reads: the validation set, each eval corpus, and each task's items at one window each
    (packed items are shorter; a task whose choices do not share a window costs more). Each count checked here,
    before any job: a bad one is one line naming it."""
    tcfg = cfg.get("train") or {}
    val_tokens = _count(tcfg.get("eval_tokens"), "train.eval_tokens", minimum=1)
    max_items = _count(tcfg.get("eval_max_items"), "train.eval_max_items") if tcfg.get("eval_max_items") else None
    tokens = val_tokens
    entries = _plain(cfg.get("eval")) or {}
    for name, entry in entries.items() if isinstance(entries, dict) else []:
        if not isinstance(entry, dict):
            continue
        if entry.get("kind") == "perplexity":
            given = entry.get("max_tokens")
            tokens += _count(given, f"eval.{name}.max_tokens", minimum=1) if given else val_tokens
        else:
            limit = _count(entry["limit"], f"eval.{name}.limit", minimum=1) if entry.get("limit") else None
            tokens += (limit or max_items or UNSIZED_TASK_ITEMS) * seq_len
    return tokens


def _count(value, where: str, minimum: int = 0) -> int:
    number = to_number(value, where)
    require(number == int(number) and number >= minimum, f"{where}={value!r}: a whole number of at least {minimum}")
    return int(number)


def auto_eval_points(rung: "Rung") -> int:
    """The most evaluations between budgets (at most MAX_EVAL_POINTS) that, with one at each budget, keep
    evaluation under EVAL_SHARE of the rung's compute (planned at EVAL_AIM); 0 where the budgets' own evaluations
    already reach it."""
    affordable = EVAL_AIM / (1 - EVAL_AIM) * 3 * rung.trained_tokens / rung.eval_tokens
    return max(0, min(MAX_EVAL_POINTS, math.floor(affordable) - len(rung.budgets)))


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
LADDER_KEYS = {"name", "vocab_size", "seq_len", "tie_embeddings", "sizes", "budgets", "seeds", "params_convention",
               "shape_rule"}


def plain_name(name, where: str) -> str:
    """Ladder and size names become directories under runs_dir: a plain name, never a path."""
    require(isinstance(name, str) and NAME.fullmatch(name) and ".." not in name,
            f"{where}={name!r}: use a plain name (letters, digits, . _ + -; no / or ..), it names a directory")
    return name


def split_recipe(entry, recipe_cfg: dict, where: str) -> tuple:
    """A size entry's own `recipe:` overrides (as `ladder tune` writes them, or a hand-fixed rung), merged over the
    ladder's recipe for that size only."""
    if not isinstance(entry, dict) or "recipe" not in entry:
        return entry, recipe_cfg
    entry = dict(entry)
    overrides = entry.pop("recipe")
    require(isinstance(overrides, dict), f"{where}.recipe: must be a mapping of recipe keys, e.g. {{lr: {{base: 0.001}}}}")
    merged = dict(recipe_cfg)
    for key, value in overrides.items():
        require(key in recipe_cfg and key not in ("name", "params_for", "tokens_per_param"),
                f"{where}.recipe.{key}: not a per-size recipe key; use one of "
                f"{', '.join(k for k in recipe_cfg if k not in ('name', 'params_for', 'tokens_per_param'))}")
        merged[key] = {**recipe_cfg[key], **value} if isinstance(value, dict) and isinstance(recipe_cfg[key], dict) \
            else value
    return entry, merged


def _plain(node):
    """A plain dict/list from an OmegaConf node (or the value itself)."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, (DictConfig, ListConfig)) else node


def resolve_spec(entry, lad, where: str) -> ModelSpec:
    """A size entry is {preset: NAME}, {params: N} (the shape rule) or an explicit shape; extra keys override."""
    require(isinstance(entry, dict), f"{where}: must be a mapping such as {{preset: tiny-14k}} or {{params: 1e5}}")
    entry = dict(entry)
    shape = {"vocab_size": lad.vocab_size, "seq_len": lad.seq_len, "tie_embeddings": lad.tie_embeddings}
    preset, params = entry.pop("preset", None), entry.pop("params", None)
    require(not (preset and params), f"{where}: give preset or params, not both")
    if preset:
        shape.update(preset_shape(str(preset), f"{where}.preset"))
    elif params is not None:
        rule = _plain(lad.get("shape_rule")) or {}
        n = to_number(params, f"{where}.params")
        require(n > 0, f"{where}.params={params}: must be positive")
        ruled = shape_for_params(n, int(lad.vocab_size), int(lad.seq_len), bool(lad.tie_embeddings),
                                 aspect_ratio=to_number(rule.get("aspect_ratio", 128), "ladder.shape_rule.aspect_ratio"),
                                 head_dim=int(to_number(rule.get("head_dim", 64), "ladder.shape_rule.head_dim")),
                                 where=f"{where}.params")
        shape.update(d_model=ruled.d_model, n_layers=ruled.n_layers, n_heads=ruled.n_heads, head_dim=ruled.head_dim)
    shape.update(entry)
    return ModelSpec.from_dict(shape, where)


PRESET_MATCH = 0.10  # target.params within this of a preset of the ladder's family builds that preset


def family_preset(params: float, lad, tcfg: dict) -> str | None:
    """The preset of the ladder's own family (the prefix of the presets its sizes and target name, e.g. olmo-)
    whose N, in the ladder's convention, is within PRESET_MATCH of `params`: `target.params=13e9` on the OLMo
    ladder is OLMo's 13B, not a shape of the rule's."""
    named = [entry.get("preset") for entry in (_plain(lad.get("sizes")) or {}).values() if isinstance(entry, dict)]
    families = {str(name).split("-")[0] + "-" for name in [*named, tcfg.get("preset")] if name}
    convention = ParamCount.named(lad.get("params_convention"), "ladder.params_convention")
    best, best_gap = None, math.log1p(PRESET_MATCH)
    for name in (n for n in PRESETS if any(n.startswith(f) for f in families)):
        counts = count_params(resolve_spec({"preset": name}, lad, "target"))
        gap = abs(math.log(counts.by_convention(convention) / params))
        if gap <= best_gap:
            best, best_gap = name, gap
    return best


def resolve_target(tcfg, lad, convention: str, params_for: ParamCount, tokens_per_param: float) -> Target:
    """The target run: target.preset, or target.params (the ladder's own preset of that size where it has one,
    else the shape rule's). Its name is target.name, else the preset's, else its size (13B)."""
    tcfg = _plain(tcfg)
    if tcfg.get("params") is not None:
        params = to_number(tcfg["params"], "target.params")
        require(params > 0, f"target.params={tcfg['params']}: must be positive")
        preset = family_preset(params, lad, tcfg)
        entry = {"preset": preset} if preset else {"params": params}
        shape_from = (f"preset {preset}, the ladder's nearest to {params:.3g} params" if preset else
                      f"shape rule for {params:.3g} params")
        name = preset or _size_name(params)
    elif tcfg.get("preset"):
        entry, name = {"preset": tcfg["preset"]}, str(tcfg["preset"])
        shape_from = f"preset {name}"
    else:
        raise LadderError("target: give target.params (e.g. target.params=7e9) or target.preset")
    spec = resolve_spec(entry, lad, "target")
    counts = count_params(spec)
    fpt = flops_per_token(spec, convention)
    if tcfg.get("tokens") is not None:
        tokens = parse_budget(tcfg["tokens"], counts.by_convention(params_for), fpt, tokens_per_param, "target.tokens")
    elif tcfg.get("flops") is not None:
        tokens = parse_budget(f"{to_number(tcfg['flops'], 'target.flops')}F", 1, fpt, 1, "target.flops")
    else:
        raise LadderError("target: give target.tokens (e.g. target.tokens=4e12) or target.flops")
    name = str(tcfg.get("name") or name)
    plain_name(name, "target.name")
    return Target(name=name, spec=spec, counts=counts, tokens=tokens, flops_per_token=fpt, shape_from=shape_from)


def _size_name(params: float) -> str:
    """13e9 -> 13B, 1.5e8 -> 150M: a target's name when it has no preset."""
    from ladder.report import human
    return re.sub(r"\.0+(?=[A-Za-z]*$)", "", human(params))


def target_entry(target) -> dict:
    """The `target:` mapping of a ladder file as given (what a written ladder file carries): the shape from params
    when both params and a preset are set (params wins in the plan), tokens over flops likewise."""
    out = {"name": str(target.name), "preset": target.get("preset"), "params": target.get("params"),
           "tokens": target.get("tokens"), "flops": target.get("flops")}
    if out["params"] is not None:
        out["preset"] = None
    if out["tokens"] is not None:
        out["flops"] = None

    def number(value):  # YAML reads 4e12 as a string; 1xC stays a budget
        try:
            return float(str(value).replace("_", ""))
        except ValueError:
            return str(value)
    return {k: number(v) if k in ("params", "tokens", "flops") and v is not None else v for k, v in out.items()}


def with_corpus(plan: Plan, data: dict) -> Plan:
    """The plan with the corpus's training tokens, and a warning (before any job starts) for every rung that would
    read them more than data.max_epochs times."""
    from ladder.data.prepare import corpus_size

    plan.corpus = {"name": data["name"], **corpus_size(data, plan.data_tokens)}
    limit, tokens = float(data.get("max_epochs") or 1), plan.corpus["train_tokens"]
    for rung in plan.rungs if tokens else []:
        epochs = rung.tokens / tokens
        if epochs > limit:
            plan.notes.append(f"rung {rung.name} reads data={data['name']}'s training split {epochs:.1f} times "
                              f"(data.max_epochs={limit:g}); use a larger corpus (another data=, a larger data.subset, "
                              f"more files), smaller ladder.budgets, or data.max_epochs={math.ceil(epochs)} to accept "
                              f"the repetition")
    return plan


def plan_to_dict_for(rung: Rung) -> dict:
    """The resolved rung a run directory records (config.yaml, W&B) and its identity hashes."""
    return {"name": rung.name, "shape": rung.spec.to_dict(), "recipe": rung.recipe.to_dict(),
            "budgets": rung.budgets, "seed": rung.seed}


def rung_identity(rung: Rung) -> str:
    """What makes a rung this rung (shape, recipe, budgets, seed), known before any data is read: a finished rung
    whose config changed is refused, never silently kept (summary.json's rung_identity). How the batch is split into
    micro-batches only decides memory, not the result."""
    resolved = plan_to_dict_for(rung)
    resolved["recipe"] = {k: v for k, v in resolved["recipe"].items()
                          if k not in ("micro_batch_sequences", "grad_accum_steps")}
    return hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()


def plan_to_dict(plan: Plan) -> dict:
    rungs = []
    for rung in plan.rungs:
        rungs.append({
            "name": rung.name, "size": rung.size, "seed": rung.seed, "shape": rung.spec.to_dict(),
            **rung.counts.to_dict(), "tokens": rung.tokens, "budgets": rung.budgets, "flops": rung.flops,
            "flops_per_token": rung.flops_per_token, "lr": rung.recipe.lr, "batch_tokens": rung.recipe.batch_tokens,
            "steps": rung.steps, "recipe": rung.recipe.to_dict(),
            "trained_tokens": rung.trained_tokens, "gpu_hours": plan.gpu_hours(rung.spec, rung.trained_tokens),
            "eval_points": rung.eval_points, "eval_tokens": rung.eval_tokens, "eval_share": rung.eval_share})
    target = plan.target
    return {
        "ladder": plan.ladder, "flops_convention": plan.flops_convention,
        "params_convention": plan.params_convention.name, "params_column": plan.params_convention.value,
        "hardware": {"gpu": plan.gpu, "mfu": plan.mfu, "gpu_hours_from": EXECUTED_FLOPS_CONVENTION},
        "rungs": rungs,
        "target": {"name": target.name, "shape": target.spec.to_dict(), "shape_from": target.shape_from,
                   **target.counts.to_dict(), "tokens": target.tokens, "flops": target.flops,
                   "gpu_hours": plan.gpu_hours(target.spec, target.tokens)},
        "ladder_flops": plan.ladder_flops,
        "ladder_gpu_hours": sum(r["gpu_hours"] for r in rungs),
        "cost_fraction": plan.ladder_flops / target.flops,
        **({"corpus": plan.corpus} if plan.corpus else {}),
        "warnings": list(plan.notes),
    }


def plan_table(plan: Plan):
    """The rungs with what each costs, a total row, and the target and cost lines under it (a TextTable)."""
    from ladder.report import human
    from ladder.report.tables import TextTable

    data = plan_to_dict(plan)
    header = ["rung", "shape", "budgets", "params", "non-emb", "tokens", "FLOPs", "batch tok", "LR", "steps", "GPU-h",
              "evals", "eval %"]
    rows = [[r["name"], _shape(r["shape"]), ",".join(r["budgets"]), human(r["params"]), human(r["non_embedding_params"]),
             human(r["tokens"]), f"{r['flops']:.2e}", human(r["batch_tokens"]), f"{r['lr']:.2e}", str(r["steps"]),
             f"{r['gpu_hours']:.3g}", f"{r['eval_points']}+{len(r['budgets'])}", f"{r['eval_share']:.1%}"]
            for r in data["rungs"]]
    rows.append(["total", "", "", "", "", human(sum(r["tokens"] for r in data["rungs"])), f"{data['ladder_flops']:.2e}",
                 "", "", str(sum(r["steps"] for r in data["rungs"])), f"{data['ladder_gpu_hours']:.3g}", "", ""])
    if plan.params_convention is ParamCount.olmo:  # the ladder's N, when neither count shown is it
        header.insert(5, "olmo")
        for row, r in zip(rows, data["rungs"]):
            row.insert(5, human(r[ParamCount.olmo]))
        rows[-1].insert(5, "")
    corpus = plan.corpus or {}
    if corpus.get("train_tokens"):  # each rung's tokens against the corpus's
        header.append("epochs")
        for row, r in zip(rows, data["rungs"]):
            row.append(f"{r['tokens'] / corpus['train_tokens']:.2f}")
        rows[-1].append("")
    t = data["target"]
    title = (f"ladder {data['ladder']}: {len(rows) - 1} rungs; FLOPs as {data['flops_convention']}; N in fits: "
             f"{plan.params_convention.describe()}; GPU-hours on "
             f"{plan.gpu} at {plan.mfu:.0%} MFU (executed FLOPs incl. attention)\n")
    notes = ["", f"target {t['name']}: {_shape(t['shape'])} ({t['shape_from']}), {human(t['params'])} params, "
                 f"{human(t['tokens'])} tokens, {t['flops']:.2e} FLOPs, {t['gpu_hours']:.3g} GPU-h",
             f"ladder cost: {data['cost_fraction']:.2%} of the target's FLOPs",
             f"evals: evaluations between budgets + one per budget, each {human(data['rungs'][0]['eval_tokens'])} "
             f"tokens forward (train.eval_points={plan.eval_points_setting}); eval %: their share of the rung's "
             f"compute",
             *([f"data {corpus['name']}: {human(corpus['train_tokens']) if corpus['train_tokens'] else '?'} training "
                f"tokens ({corpus['how']})"] if corpus else []),
             *[f"warning: {note}" for note in plan.notes]]
    return TextTable(header, rows, title, notes)


def format_plan(plan: Plan) -> str:
    return plan_table(plan).text()


def _shape(shape: dict) -> str:
    return f"d{shape['d_model']} L{shape['n_layers']} H{shape['n_heads']}"
