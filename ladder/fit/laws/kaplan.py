"""Kaplan et al. 2020's single-variable laws: L(X) = E + A / X^alpha for X = N, D or C, or the pure power law
L(X) = A / X^alpha (`irreducible: false`, as Kaplan wrote them)."""

from __future__ import annotations

from ladder.errors import require
from ladder.fit.laws.base import PowerLawLaw, spearman
from ladder.fit.powerlaw import PowerLawForm

VARIABLES = {"params": "N", "tokens": "D", "flops": "C"}


class Kaplan(PowerLawLaw):
    name = "kaplan"

    def __init__(self, variable: str = "params", irreducible: bool = True, **options):
        require(variable in VARIABLES, f"law.variable={variable!r}: use one of {', '.join(VARIABLES)}")
        self.variables = (variable,)
        self.form = PowerLawForm(("a",), ("alpha",), (0,), irreducible=bool(irreducible))
        self.default_grid = {"a": [0, 5, 10, 15, 20, 25], "alpha": [0, 0.25, 0.5, 1, 1.5, 2]}
        if irreducible:
            self.default_grid["e"] = [-1, -0.5, 0, 0.5, 1]
        # exponents below 0 are unphysical (loss growing with X), as for chinchilla
        options["bounds"] = {"alpha": [0, float("inf")], **(options.get("bounds") or {})}
        super().__init__(**options)
        self.name = f"kaplan_{VARIABLES[variable]}"

    def check(self, table) -> None:
        super().check(table)
        x, y = table[self.variables[0]], table[self.target_column]
        rho = spearman(x, y)
        require(rho < 0, f"{self.name}: the loss rises with {VARIABLES[self.variables[0]]} across the rows (rank "
                         f"correlation {rho:+.2f}); there is no scaling to fit: check the loss column and the runs")
