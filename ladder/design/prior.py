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
from ladder.io import read_json

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
        require(noise_sd is None or noise_sd >= 0, f"design.noise={noise_sd}: must be >= 0 (log units: 0.005 is 0.5%)")
        require(kappa is None or kappa >= 0, f"design.kappa={kappa}: must be >= 0 (log units per e-fold)")
        return LawPrior(self.source, self.theta, self.cov, self.noise_sd if noise_sd is None else float(noise_sd),
                        self.kappa if kappa is None else float(kappa))


def epoch_prior() -> LawPrior:
    law = PUBLISHED["Epoch 2024"]
    theta = np.array([np.log(law["A"]), np.log(law["B"]), law["alpha"], law["beta"], np.log(law["E"])])
    sd = np.array(EPOCH_THETA_SD)
    return LawPrior("Epoch AI's Chinchilla refit (Besiroglu et al. 2024)", theta,
                    np.array(EPOCH_THETA_CORR) * np.outer(sd, sd), EPOCH_NOISE_SD, EPOCH_KAPPA)


def prior_from_fit(path: str | Path) -> LawPrior:
    """A prior from `ladder fit`'s fit.json of a chinchilla law (with a bootstrap and calibrated intervals)."""
    path = Path(path)
    require(path.is_file(), f"design.prior={path}: no such file; use epoch or a fit.json written by ladder fit")
    fit = read_json(path)
    theta = fit.get("theta") or {}
    require(fit.get("law") == "chinchilla", f"design.prior={path}: needs a fit of law=chinchilla; this is "
                                            f"law={fit.get('law')}")
    require(bool(theta), f"design.prior={path}: has no theta (written by an older ladder fit); fit it again")
    require(tuple(theta.get("names", ())) == THETA_NAMES,
            f"design.prior={path}: a fit with law.tie_exponents=true; a prior needs alpha and beta apart")
    require(theta.get("cov") is not None, f"design.prior={path}: the fit has no bootstrap; refit with bootstrap.n=1000")
    model = (fit.get("interval") or {}).get("error_model")
    require(model is not None, f"design.prior={path}: the fit has no error model; refit it with "
                               f"interval.method=calibrated")
    return LawPrior(f"{path} ({fit.get('source') or 'ladder fit'})", np.array(theta["value"], dtype=float),
                    np.array(theta["cov"], dtype=float), float(model["noise_sd"]), float(model["kappa_per_efold"]))


def load_prior(spec: str) -> LawPrior:
    return epoch_prior() if str(spec) == "epoch" else prior_from_fit(spec)
