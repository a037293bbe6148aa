"""Scaling laws, one small class each. `make_law` builds one from the `law` config group."""

from __future__ import annotations

import inspect

from ladder.errors import require
from ladder.fit.laws.base import Law, Prediction
from ladder.fit.laws.chinchilla import Chinchilla
from ladder.fit.laws.curve import Curve
from ladder.fit.laws.exp_error import ExpError
from ladder.fit.laws.isoflop import Envelope, IsoFLOP
from ladder.fit.laws.kaplan import Kaplan
from ladder.fit.laws.two_step import TwoStep

LAWS: dict[str, type[Law]] = {"chinchilla": Chinchilla, "kaplan": Kaplan, "isoflop": IsoFLOP,
                              "envelope": Envelope, "two_step": TwoStep, "exp_error": ExpError,
                              "curve": Curve}


def make_law(options: dict, ci_level: float = 0.95) -> Law:
    options = dict(options)
    name = options.pop("name", None)
    require(name in LAWS, f"law={name}: unknown law; use one of {', '.join(LAWS)}")
    cls = LAWS[name]
    accepted = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            accepted |= set(inspect.signature(klass.__init__).parameters) - {"self", "options"}
    unknown = sorted(set(options) - accepted)
    require(not unknown, f"law.{unknown[0] if unknown else ''}: not an option of law {name}; "
                         f"options: {', '.join(sorted(accepted - {'ci_level'}))}")
    return cls(**options, ci_level=ci_level)


__all__ = ["LAWS", "Law", "Prediction", "make_law"]
