"""What `ladder design` believes before any rung runs: a Chinchilla law with its uncertainty, and the error model.

A prior is the law's parameter vector in the fitter's log-sum-exp form, theta = [log A, log B, alpha, beta, log E],
with a covariance; the "true" law of each simulation is a draw from it. Besides the law it carries the two parts of
the error model the forecast-interval machinery learns from a ladder (ladder/fit/calibrate.py): one run's noise and
the extrapolation error per e-fold of distance beyond the ladder's largest rung.

The default is Epoch AI's refit of Chinchilla (Besiroglu et al. 2024): their published point estimate, and the
covariance, noise and extrapolation scale that `ladder fit` measures on their data (4000 pairs-bootstrap resamples,
rolling folds); tests/test_design.py recomputes them from ../shared. A user's own `fit.json` of a chinchilla law
works the same way: its `theta` (value and bootstrap covariance) and `interval.error_model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ladder.errors import require
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
    theta: np.ndarray  # (5,) [log A, log B, alpha, beta, log E]
    cov: np.ndarray  # (5, 5)
    noise_sd: float  # one run's log-loss scatter around the law
    kappa: float  # extrapolation error (log units) per e-fold beyond the ladder's largest rung

    def draw(self, n: int, seed: int) -> np.ndarray:
        """(n, 5) true laws. The covariance is nearly singular (A and alpha move together), so it is drawn through
        its eigenvectors with negative round-off eigenvalues set to zero."""
        values, vectors = np.linalg.eigh((self.cov + self.cov.T) / 2)
        scale = vectors * np.sqrt(np.clip(values, 0, None))
        return self.theta[None, :] + np.random.default_rng(seed).standard_normal((n, len(self.theta))) @ scale.T

    def readable(self) -> dict[str, float]:
        a, b, alpha, beta, e = self.theta
        return {"E": float(np.exp(e)), "A": float(np.exp(a)), "B": float(np.exp(b)), "alpha": float(alpha),
                "beta": float(beta)}

    def with_errors(self, noise_sd: float | None, kappa: float | None) -> "LawPrior":
        """The same law with the user's noise or extrapolation scale (design.noise, design.kappa) where given."""
        require(noise_sd is None or (is_number(noise_sd) and 0 <= noise_sd < 1),
                f"design.noise={noise_sd}: a number in [0, 1) (log units: 0.005 is 0.5%)")
        require(kappa is None or (is_number(kappa) and 0 <= kappa < 1),
                f"design.kappa={kappa}: a number in [0, 1) (log units per e-fold)")
        return LawPrior(self.source, self.theta, self.cov, self.noise_sd if noise_sd is None else float(noise_sd),
                        self.kappa if kappa is None else float(kappa))


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
# What design reads of a fit.json: theta's five values (log A and log B within e^+-200, exponents within (0, 5], log E
# within e^+-20: exp of each stays a float), a 5x5 covariance of plausible size, a non-negative error model.
FIT_PRIOR = {"law": TEXT, "theta": {"names": (lambda v: v == list(THETA_NAMES), "[a, b, alpha, beta, e]"),
                                    "value": _finite_list(5, -200, 200),
                                    "cov": (lambda v: isinstance(v, list) and len(v) == 5 and all(
                                        _finite_list(5, -1e4, 1e4)[0](row) for row in v),
                                            "5 lists of 5 numbers within [-1e4, 1e4]")},
             "interval": {"error_model": {"noise_sd": (lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
                                          "kappa_per_efold": (lambda v: is_number(v) and 0 <= v < 1,
                                                              "a number in [0, 1)")}}}


def prior_from_fit(path: str | Path) -> LawPrior:
    """A prior from `ladder fit`'s fit.json of a chinchilla law (with a bootstrap and calibrated intervals)."""
    path = Path(path)
    require(path.is_file(), f"design.prior={path}: no such file; use epoch or a fit.json written by ladder fit")
    fit = read_json(path)
    require(isinstance(fit, dict), f"design.prior={path}: a JSON {type(fit).__name__}, not a fit.json of ladder fit")
    require(fit.get("law") == "chinchilla", f"design.prior={path}: needs a fit of law=chinchilla; this is "
                                            f"law={fit.get('law')}")
    theta = fit.get("theta") or {}
    require(bool(theta), f"design.prior={path}: has no theta (written by an older ladder fit); fit it again")
    check_shape(f"design.prior={path}", fit, {"theta": {}, "interval?": {}}, REFIT)
    require(tuple(theta.get("names", ())) == THETA_NAMES,
            f"design.prior={path}: a fit with law.tie_exponents=true; a prior needs alpha and beta apart")
    require(theta.get("cov") is not None, f"design.prior={path}: the fit has no bootstrap; refit with bootstrap.n=1000")
    require(isinstance(fit.get("interval"), dict) and fit["interval"].get("error_model") is not None,
            f"design.prior={path}: the fit has no error model; refit it with interval.method=calibrated")
    check_shape(f"design.prior={path}", fit, FIT_PRIOR, REFIT)
    value, cov = np.array(theta["value"], dtype=float), np.array(theta["cov"], dtype=float)
    require(0 < value[2] <= 5 and 0 < value[3] <= 5 and abs(value[4]) <= 20,
            f"design.prior={path}: theta's exponents {value[2]:g}, {value[3]:g} (each in (0, 5]) or log E {value[4]:g} "
            f"(within [-20, 20]) are no law's; refit it with ladder fit")
    require(np.allclose(cov, cov.T, rtol=1e-6, atol=1e-12) and np.linalg.eigvalsh(cov).min() > -1e-6 * max(
        1.0, np.abs(cov).max()), f"design.prior={path}: theta's covariance is not symmetric positive semi-definite; "
                                  f"refit it with ladder fit")
    model = fit["interval"]["error_model"]
    return LawPrior(f"{path} ({fit.get('source') or 'ladder fit'})", value, cov, float(model["noise_sd"]),
                    float(model["kappa_per_efold"]))


def load_prior(spec: str) -> LawPrior:
    return epoch_prior() if str(spec) == "epoch" else prior_from_fit(spec)
