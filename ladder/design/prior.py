"""What `ladder design` believes before any rung runs: a law with its uncertainty, and the error model.

A prior is the law's parameter vector in the fitter's log-sum-exp form, theta = [log A, log B, alpha, beta, log E]
for chinchilla, with a covariance; the "true" law of each simulation is a draw from it. Besides the law it carries
the two parts of the error model the forecast-interval machinery learns from a ladder (ladder/fit/calibrate.py): one
run's noise and the extrapolation error per e-fold of distance beyond the ladder's largest rung. A fit.json of the
curve law (law=curve) is a prior too: theta = [log A, log B, log C, alpha, beta, gamma, log E], and how much of a
curve point's noise its whole run shares (`run_share`), since a run's evaluations move together.

The default is Epoch AI's refit of Chinchilla (Besiroglu et al. 2024): their published point estimate, and the
covariance, noise and extrapolation scale that `ladder fit` measures on their data (4000 pairs-bootstrap resamples,
rolling folds); tests/test_design.py recomputes them from ../shared. A user's own `fit.json` of a chinchilla law
works the same way: its `theta` (value and bootstrap covariance) and `interval.error_model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ladder.errors import LadderError, require
from ladder.fit.reproduce import PUBLISHED
from ladder.io import TEXT, check_shape, is_number, read_json

THETA_NAMES = ("a", "b", "alpha", "beta", "e")
# ladder fit of Epoch's 240 points, 4000 bootstrap resamples: sd and correlation of theta, noise, extrapolation.
EPOCH_THETA_SD = (0.2496, 0.4149, 0.0149, 0.0203, 0.0138)
EPOCH_THETA_CORR = ((1.000, -0.252, 0.999, -0.258, 0.584),
                    (-0.252, 1.000, -0.263, 1.000, 0.612),
                    (0.999, -0.263, 1.000, -0.269, 0.578),
                    (-0.258, 1.000, -0.269, 1.000, 0.609),
                    (0.584, 0.612, 0.578, 0.609, 1.000))
EPOCH_NOISE_SD = 0.0049
EPOCH_KAPPA = 0.0146


@dataclass
class LawPrior:
    source: str
    theta: np.ndarray  # (5,) [log A, log B, alpha, beta, log E]; (k,) in the law's form's names for another law
    cov: np.ndarray  # (k, k)
    noise_sd: float  # one run's log-loss scatter around the law (for the curve law: one evaluation's, in all)
    kappa: float  # extrapolation error (log units) per e-fold beyond the ladder's largest rung
    law: str = "chinchilla"  # the law whose form theta is in: chinchilla or curve
    run_share: float | None = None  # the curve law: the part of an evaluation's noise variance its run shares

    def make_law(self):
        """An unfitted law of the prior's kind: its form, variables and bounds are the simulation's."""
        return unfitted_law(self.law)

    def draw(self, n: int, seed: int) -> np.ndarray:
        """(n, k) true laws. The covariance is nearly singular (A and alpha move together), so it is drawn through
        its eigenvectors with negative round-off eigenvalues set to zero."""
        values, vectors = np.linalg.eigh((self.cov + self.cov.T) / 2)
        scale = vectors * np.sqrt(np.clip(values, 0, None))
        return self.theta[None, :] + np.random.default_rng(seed).standard_normal((n, len(self.theta))) @ scale.T

    def readable(self) -> dict[str, float]:
        return self.make_law().readable(self.theta)

    def with_errors(self, noise_sd: float | None, kappa: float | None) -> "LawPrior":
        """The same law with the user's noise or extrapolation scale (design.noise, design.kappa) where given."""
        require(noise_sd is None or (is_number(noise_sd) and 0 <= noise_sd < 1),
                f"design.noise={noise_sd}: a number in [0, 1) (log units: 0.005 is 0.5%)")
        require(kappa is None or (is_number(kappa) and 0 <= kappa < 1),
                f"design.kappa={kappa}: a number in [0, 1) (log units per e-fold)")
        return LawPrior(self.source, self.theta, self.cov, self.noise_sd if noise_sd is None else float(noise_sd),
                        self.kappa if kappa is None else float(kappa), self.law, self.run_share)


def unfitted_law(name: str):
    from ladder.fit.laws import make_law
    return make_law({"name": name})


def epoch_prior() -> LawPrior:
    law = PUBLISHED["Epoch 2024"]
    theta = np.array([np.log(law["A"]), np.log(law["B"]), law["alpha"], law["beta"], np.log(law["E"])])
    sd = np.array(EPOCH_THETA_SD)
    return LawPrior("Epoch AI's Chinchilla refit (Besiroglu et al. 2024)", theta,
                    np.array(EPOCH_THETA_CORR) * np.outer(sd, sd), EPOCH_NOISE_SD, EPOCH_KAPPA)


def _finite_list(length: int, lo: float, hi: float):
    """A JSON list of `length` numbers within [lo, hi] (a test and what it asks for, as io.check_shape takes)."""
    return (lambda v: isinstance(v, list) and len(v) == length and all(is_number(x) and lo <= x <= hi for x in v),
            f"a list of {length} numbers within [{lo:g}, {hi:g}]")


REFIT = "refit it with ladder fit, or restore the file"
PRIOR_LAWS = ("chinchilla", "curve")


def fit_prior_shape(names) -> dict:
    """What design reads of a fit.json: theta's values (log coefficients within e^+-200: exp of each stays a
    float), a square covariance of plausible size, a non-negative error model."""
    k = len(names)
    return {"law": TEXT, "theta": {"names": (lambda v: v == list(names), f"[{', '.join(names)}]"),
                                   "value": _finite_list(k, -200, 200),
                                   "cov": (lambda v: isinstance(v, list) and len(v) == k and all(
                                       _finite_list(k, -1e4, 1e4)[0](row) for row in v),
                                           f"{k} lists of {k} numbers within [-1e4, 1e4]")},
            "interval": {"error_model": {"noise_sd": (lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
                                         "kappa_per_efold": (lambda v: is_number(v) and 0 <= v < 1,
                                                             "a number in [0, 1)")}}}


def prior_from_fit(path: str | Path) -> LawPrior:
    """A prior from `ladder fit`'s fit.json of a chinchilla or curve law (with a bootstrap and calibrated
    intervals)."""
    path = Path(path)
    require(path.is_file(), f"design.prior={path}: no such file; use epoch or a fit.json written by ladder fit")
    fit = read_json(path)
    require(isinstance(fit, dict), f"design.prior={path}: a JSON {type(fit).__name__}, not a fit.json of ladder fit")
    law = fit.get("law")
    require(isinstance(law, str) and law in PRIOR_LAWS,
            f"design.prior={path}: needs a fit of law=chinchilla or law=curve; this is law={law}")
    model_law = unfitted_law(law)
    names = tuple(model_law.form.names)
    theta = fit.get("theta") or {}
    require(bool(theta), f"design.prior={path}: has no theta (written by an older ladder fit); fit it again")
    check_shape(f"design.prior={path}", fit, {"theta": {}, "interval?": {}}, REFIT)
    require(law != "chinchilla" or tuple(theta.get("names", ())) == names,
            f"design.prior={path}: a fit with law.tie_exponents=true; a prior needs alpha and beta apart")
    require(theta.get("cov") is not None, f"design.prior={path}: the fit has no bootstrap; refit with bootstrap.n=1000")
    require(isinstance(fit.get("interval"), dict) and fit["interval"].get("error_model") is not None,
            f"design.prior={path}: the fit has no error model; refit it with interval.method=calibrated")
    check_shape(f"design.prior={path}", fit, fit_prior_shape(names), REFIT)
    value, cov = np.array(theta["value"], dtype=float), np.array(theta["cov"], dtype=float)
    for name in ("alpha", "beta"):  # they lower the loss
        x = value[names.index(name)]
        require(0 < x <= 5, f"design.prior={path}: theta's {name} {x:g} (in (0, 5]) is no law's; {REFIT}")
    require(abs(value[-1]) <= 20, f"design.prior={path}: theta's log E {value[-1]:g} (within [-20, 20]) is no law's; "
                                  f"refit it with ladder fit")
    collapsed = [w for w in fit.get("warnings") or [] if isinstance(w, str) and w.startswith("E collapsed")]
    require(not collapsed, f"design.prior={path}: the fit's E collapsed to 0, so laws drawn around it are not the "
                           f"ladder's; refit on more sizes or longer runs, or with law.bounds.e, before designing")
    on_bound = model_law._on_bound(value)  # laws drawn around it would leave the bounds the fits keep
    if on_bound:
        i, side = next(iter(on_bound.items()))
        raise LadderError(f"design.prior={path}: theta's {names[i]} sits on its {side} bound "
                          f"({model_law.bounds[i, 0 if side == 'lower' else 1]:g}), so the fit did not pin it down "
                          f"(it warned); refit on more sizes or longer runs before designing from it")
    require(np.allclose(cov, cov.T, rtol=1e-6, atol=1e-12) and np.linalg.eigvalsh(cov).min() > -1e-6 * max(
        1.0, np.abs(cov).max()), f"design.prior={path}: theta's covariance is not symmetric positive semi-definite; "
                                  f"refit it with ladder fit")
    model = fit["interval"]["error_model"]
    noise, run_share = float(model["noise_sd"]), None
    if law == "curve":  # an evaluation's noise: its run's level and its scatter about the run's mean
        effects = fit.get("run_effects")
        require(isinstance(effects, dict) and "level_sd" in effects and "within_sd" in effects,
                f"design.prior={path}: has no run_effects with level_sd and within_sd (written by an older ladder "
                f"fit); fit it again")
        level, point = effects["level_sd"], effects["within_sd"]
        require(is_number(level) and is_number(point) and 0 <= level < 1 and 0 <= point < 1,
                f"design.prior={path}: run_effects.level_sd and within_sd must be numbers in [0, 1); {REFIT}")
        require(level + point > 0, f"design.prior={path}: run_effects says the runs have no noise at all "
                                   f"(level_sd and within_sd 0); {REFIT}")
        noise, run_share = float(np.hypot(level, point)), float(level ** 2 / (level ** 2 + point ** 2))
    return LawPrior(f"{path} ({fit.get('source') or 'ladder fit'})", value, cov, noise,
                    float(model["kappa_per_efold"]), law, run_share)


def load_prior(spec: str) -> LawPrior:
    return epoch_prior() if str(spec) == "epoch" else prior_from_fit(spec)
