"""Multiple-choice tasks from their configs (conf/eval/): records -> items, each a list of (context, continuation)
pairs and the index of the right one.

Records come through the corpus reader (`ladder.data.sources`), so a hub task and a local JSONL file with the same
fields take the same `datasets` path. A task config says where the records are and how to read them:

  source, path, subset, split, revision   where (hub | local | stdlib), as for corpora; or `heldout`, items
                 generated from the training corpus's held-out documents (see heldout.py)
  context        a template over the record's fields: "Question: {question}\\nAnswer:" ({a[b]} indexes a dict)
  choices        a field holding the list of answers ("endings", "choices.text"), or a list of fields
  literal_choices  fixed answer texts instead ([A, B, C, D]: MMLU's and CommonsenseQA's letters, as the harness)
  answer         the field of the right answer: an index, a digit string, or a label looked up in `answer_labels`
  answer_offset  subtracted from a numeric answer (1 where the dataset counts from 1)
  continuation   a template over {choice}: " {choice}"
  format         cloze: every choice continues the same context; partial: each choice fills the blank (`_`) of the
                 context and the scored continuation is the text after it (Winogrande, as the harness scores it)
  preprocess     null | hellaswag: the harness's query, activity_label + ": " + ctx_a + " " + ctx_b.capitalize(),
                 and its cleanup of WikiHow bracket tags | mmlu: a `subject_name` field (subject, spaces for _)
  strip          fields stripped of surrounding whitespace before rendering (the harness's {{question.strip()}})
  description    a template put once before the shots and the item (MMLU's "The following are ...")
  filter         {field: [values]}: keep only those records (MMLU's subject groups)
  fewshot, fewshot_split, seed   k solved examples before each item, drawn with a fixed seed from fewshot_split
                 (null: the evaluated split, never the item itself); a local task's shots come from fewshot_path
  fewshot_sampler  random (seeded per item) | first_n (the pool's first k, as the harness's MMLU)
  fewshot_by     a field: shots come only from records with the item's value of it (MMLU: the same subject)
  limit          items scored (a seeded subset, the same for every rung); null: eval_max_items from the train config
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

import numpy as np

from ladder.data.sources import records, resolve_source
from ladder.errors import LadderError, require
from ladder.evals.heldout import GENERATORS, next_line_records

FORMATS = ("cloze", "partial")
PREPROCESSORS = ("hellaswag", "mmlu")
SAMPLERS = ("random", "first_n")


@dataclass(frozen=True)
class Item:
    contexts: tuple[str, ...]       # one per choice
    continuations: tuple[str, ...]  # one per choice; the scored text
    gold: int
    choices: tuple[str, ...] = ()   # the harness's choice strings (its doc_to_choice): acc_norm divides by their length
    group: str = ""                 # the record's value of `fewshot_by`


def _lookup(record: dict, dotted: str, key: str):
    value = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise LadderError(f"{key}: field {dotted!r} is not in the records; fields are {', '.join(record)}")
        value = value[part]
    return value


def _render(template: str, fields: dict, key: str) -> str:
    try:
        return template.format_map(fields)
    except (KeyError, IndexError) as error:
        raise LadderError(f"{key}: {template!r} names {error} which is not in the records; fields are "
                          f"{', '.join(fields)}") from None


def preprocess_hellaswag(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


class Task:
    """One task config, resolved: `items()` reads, formats and subsamples its records."""

    def __init__(self, name: str, cfg: dict, heldout=None):
        """`heldout`: a callable returning the training corpus's held-out documents (for source=heldout)."""
        self.name, self.cfg, self.key, self.heldout = name, cfg, f"eval.{name}", heldout
        for field in ("context", "answer"):
            require(cfg.get(field) not in (None, ""), f"{self.key}.{field}: missing; see conf/eval/ for examples")
        require(cfg.get("choices") not in (None, "") or cfg.get("literal_choices"),
                f"{self.key}.choices: missing; name the field of the answers (or give literal_choices)")
        self.format = cfg.get("format") or "cloze"
        require(self.format in FORMATS, f"{self.key}.format={self.format!r}: use one of {', '.join(FORMATS)}")
        self.preprocess = cfg.get("preprocess")
        require(self.preprocess in (None, *PREPROCESSORS),
                f"{self.key}.preprocess={self.preprocess!r}: use null or one of {', '.join(PREPROCESSORS)}")
        self.fewshot, self.seed = int(cfg.get("fewshot") or 0), int(cfg.get("seed") or 0)
        require(self.fewshot >= 0, f"{self.key}.fewshot={self.fewshot}: must be >= 0")
        self.sampler = cfg.get("fewshot_sampler") or "random"
        require(self.sampler in SAMPLERS, f"{self.key}.fewshot_sampler={self.sampler!r}: use one of "
                                          f"{', '.join(SAMPLERS)}")
        require(cfg.get("choices") in (None, "") or not cfg.get("literal_choices"),
                f"{self.key}: give choices (fields) or literal_choices (fixed texts), not both")
        if cfg.get("source") == "heldout":
            require(cfg.get("generator") in GENERATORS and heldout is not None,
                    f"{self.key}.generator={cfg.get('generator')!r}: use one of {', '.join(GENERATORS)}")
            self.source = None
        else:
            self.source = resolve_source({**cfg, "name": name}, key=self.key)

    def _clean(self, text: str) -> str:
        return preprocess_hellaswag(text) if self.preprocess == "hellaswag" else text

    def _read(self, split: str | None = None, path: str | None = None) -> list[dict]:
        if self.source is None:
            return next_line_records(self.heldout(), self.cfg, self.seed, self.key)
        source = self.source
        if path is not None:
            source = resolve_source({**self.cfg, "name": self.name, "path": path}, key=f"{self.key}.fewshot_path")
        elif split is not None and source.kind == "hub":
            source = resolve_source({**self.cfg, "name": self.name, "split": split}, key=self.key)
        rows = list(records(source))
        for field, allowed in (self.cfg.get("filter") or {}).items():
            allowed = {str(v) for v in allowed}
            rows = [r for r in rows if str(_lookup(r, field, f"{self.key}.filter")) in allowed]
        require(rows, f"{self.key}: no records in {source.hub_path or source.files[0]} (after filter)")
        return rows

    def _fields(self, record: dict) -> dict:
        """The record as the templates see it: stripped fields, and the preprocessor's derived ones."""
        record = dict(record)
        for field in self.cfg.get("strip") or ():
            if isinstance(record.get(field), str):
                record[field] = record[field].strip()
        if self.preprocess == "hellaswag" and "ctx_a" in record:
            record["query"] = (f"{record.get('activity_label', '')}: {record['ctx_a']} "
                               f"{str(record.get('ctx_b', '')).capitalize()}")
        if self.preprocess == "mmlu":
            record["subject_name"] = str(record.get("subject", "")).replace("_", " ")
        return record

    def _parse(self, record: dict) -> Item:
        record = self._fields(record)
        choices_cfg = self.cfg.get("choices")
        if self.cfg.get("literal_choices"):
            choices = [str(c) for c in self.cfg["literal_choices"]]
        elif isinstance(choices_cfg, str):
            choices = _lookup(record, choices_cfg, f"{self.key}.choices")
        else:
            choices = [_lookup(record, f, f"{self.key}.choices") for f in choices_cfg]
        require(isinstance(choices, (list, tuple)) and len(choices) >= 2 and all(isinstance(c, str) for c in choices),
                f"{self.key}.choices: expected a list of at least two answer texts, got {choices!r:.80}")
        gold = self._gold(record, len(choices))
        context = self._clean(_render(self.cfg["context"], record, f"{self.key}.context"))
        continuation = str(self.cfg.get("continuation", " {choice}"))
        group = str(_lookup(record, self.cfg["fewshot_by"], f"{self.key}.fewshot_by")) if self.cfg.get(
            "fewshot_by") else ""  # `record` already holds the derived fields, as the pool's do
        if self.format == "partial":  # each choice fills the blank; the rest of the sentence is what gets scored
            require("_" in context, f"{self.key}: format=partial needs a '_' blank in the context: {context!r:.80}")
            blank = context.index("_")
            after = " " + context[blank + 1:].strip()
            filled = tuple(context[:blank] + c for c in choices)  # the harness's choices: the filled contexts
            return Item(filled, (after,) * len(choices), gold, filled, group)
        cleaned = tuple(self._clean(c) for c in choices)
        texts = tuple(continuation.format(choice=c) for c in cleaned)
        return Item((context,) * len(choices), texts, gold, cleaned, group)

    def _gold(self, record: dict, n_choices: int) -> int:
        answer = _lookup(record, str(self.cfg["answer"]), f"{self.key}.answer")
        labels_field = self.cfg.get("answer_labels")
        if labels_field:
            labels = [str(label) for label in _lookup(record, labels_field, f"{self.key}.answer_labels")]
            require(str(answer) in labels, f"{self.key}.answer: {answer!r} is not one of the labels {labels}")
            gold = labels.index(str(answer))
        elif isinstance(answer, (int, np.integer)) or (isinstance(answer, str) and answer.strip().isdigit()):
            gold = int(answer) - int(self.cfg.get("answer_offset") or 0)
        elif isinstance(answer, str) and len(answer.strip()) == 1 and answer.strip().upper() in string.ascii_uppercase:
            gold = string.ascii_uppercase.index(answer.strip().upper())
        else:
            raise LadderError(f"{self.key}.answer: {answer!r} is neither an index nor a letter; set "
                              f"{self.key}.answer_labels=FIELD to look it up")
        require(0 <= gold < n_choices, f"{self.key}.answer: {answer!r} points outside the {n_choices} choices "
                                       f"(answer_offset={self.cfg.get('answer_offset') or 0})")
        return gold

    def items(self, limit: int | None) -> list[Item]:
        """The scored items: a seeded subset of `limit` (the same for every rung), each with its few-shot prefix."""
        rows = self._read()
        order = np.arange(len(rows))
        if limit is not None and len(rows) > limit:
            order = np.sort(np.random.default_rng([self.seed, 0]).choice(len(rows), size=limit, replace=False))
        items = [self._parse(rows[i]) for i in order]
        description = self.cfg.get("description") or ""
        if not self.fewshot and not description:
            return items
        pool, same = self._fewshot_pool(rows)
        by = self.cfg.get("fewshot_by")
        groups = [str(_lookup(self._fields(r), by, f"{self.key}.fewshot_by")) for r in pool] if by else None
        solved: dict[int, str] = {}
        out = []
        for index, item, record in zip(order, items, (rows[i] for i in order)):
            prefix = _render(description, self._fields(record), f"{self.key}.description") if description else ""
            if self.sampler == "random":  # seeded by the item's own index: independent of the limit and other items
                candidates = np.random.default_rng([self.seed, 1, int(index)]).permutation(len(pool))
            else:
                candidates = np.arange(len(pool))
            picks = [int(j) for j in candidates if not (same and j == index)
                     and (groups is None or groups[j] == item.group)][:self.fewshot]
            require(len(picks) == self.fewshot, f"{self.key}.fewshot={self.fewshot}: the few-shot pool has only "
                                                f"{len(picks)} records{' for ' + item.group if item.group else ''}")
            for j in picks:
                if j not in solved:
                    shot = self._parse(pool[j])
                    solved[j] = shot.contexts[shot.gold] + shot.continuations[shot.gold]
            prefix += "".join(solved[j] + "\n\n" for j in picks)
            out.append(Item(tuple(prefix + c for c in item.contexts), item.continuations, item.gold, item.choices,
                            item.group))
        return out

    def _fewshot_pool(self, rows: list[dict]) -> tuple[list[dict], bool]:
        """(the records shots are drawn from, whether they are the evaluated records themselves)."""
        if not self.fewshot:
            return [], False
        if self.cfg.get("fewshot_path"):
            require(self.source is not None and self.source.kind != "hub",
                    f"{self.key}.fewshot_path: for local tasks; a hub task's shots come from fewshot_split")
            return self._read(path=str(self.cfg["fewshot_path"])), False
        split = self.cfg.get("fewshot_split")
        if self.source is None or split in (None, "", self.source.split) or self.source.kind != "hub":
            return rows, True
        return self._read(str(split)), False
