"""L = E + sum_k A_k / X_k^alpha_k, fitted in Besiroglu et al.'s log-sum-exp form: log L = LSE(a_k - alpha_k log X_k, e).

The parameter vector is [a_1..a_K, alpha_1..alpha_J, e], where terms may share an exponent (J <= K: the
tie_exponents option). The objective and its gradient are evaluated for a whole batch of parameter vectors at
once, so `lbfgs_batch` can step thousands of starts or bootstrap resamples together.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

OBJECTIVES = ("huber_log", "mse")
_POOL = ThreadPoolExecutor(max_workers=max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                              else (os.cpu_count() or 1)))


def in_threads(fun_rows, min_rows: int = 256):
    """Evaluate a row-independent batch objective on chunks of rows in parallel (numpy releases the GIL)."""
    workers = _POOL._max_workers

    def fun(theta, data):
        if workers == 1 or len(theta) < min_rows:
            return fun_rows(theta, data)
        bounds = np.linspace(0, len(theta), workers + 1).astype(int)
        parts = list(_POOL.map(lambda ab: fun_rows(theta[ab[0]:ab[1]], None if data is None
                                                   else data[ab[0]:ab[1]]), zip(bounds[:-1], bounds[1:])))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    return fun


def huber(r: np.ndarray, delta: float) -> np.ndarray:
    """scipy.special.huber(delta, r): r^2/2 inside delta, delta * (|r| - delta/2) outside."""
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


@dataclass(frozen=True)
class PowerLawForm:
    coef_names: tuple[str, ...]  # one per term: "a", "b"  (A = exp(a))
    exponent_names: tuple[str, ...]  # "alpha", "beta"
    exponent_of_term: tuple[int, ...]  # term k uses exponent exponent_of_term[k]
    irreducible: bool = True  # the constant E = exp(e)
    # term k also adds log_x's column offset_of_term[k] (None: nothing), a known factor of the term: the curve law's
    # noise term C N^-gamma x lr_frac is a power law in N times the step's LR
    offset_of_term: tuple[int | None, ...] = ()

    @property
    def names(self) -> list[str]:
        return [*self.coef_names, *self.exponent_names, *(["e"] if self.irreducible else [])]

    @property
    def n_params(self) -> int:
        return len(self.names)

    def split(self, theta: np.ndarray):
        k, j = len(self.coef_names), len(self.exponent_names)
        return theta[:, :k], theta[:, k:k + j], (theta[:, k + j] if self.irreducible else None)

    def log_terms(self, theta: np.ndarray, log_x: np.ndarray) -> list[np.ndarray]:
        """[(S, n)] log-terms a_k - alpha_k log X_k, then e (S, 1) when irreducible; log_x is (n, K), shared by
        every problem, or (S, n, K), each problem's own points."""
        coefs, exponents, e = self.split(theta)
        log_x = log_x if log_x.ndim == 3 else log_x[None]
        terms = [coefs[:, k, None] - exponents[:, self.exponent_of_term[k], None] * log_x[:, :, k]
                 for k in range(len(self.coef_names))]
        for k, column in enumerate(self.offset_of_term):
            if column is not None:
                terms[k] = terms[k] + log_x[:, :, column]
        if self.irreducible:
            terms.append(e[:, None])
        return terms

    def _softmax(self, theta, log_x):
        """(lse (S, n), [d lse / d term_k]) without materialising a stacked copy."""
        terms = self.log_terms(theta, log_x)
        top = terms[0]
        for term in terms[1:]:
            top = np.maximum(top, term)
        probs = [np.exp(term - top) for term in terms]
        total = probs[0].copy()
        for p in probs[1:]:
            total += p
        for p in probs:
            p /= total
        return top + np.log(total), probs

    def log_predict(self, theta: np.ndarray, log_x: np.ndarray) -> np.ndarray:
        return self._softmax(np.atleast_2d(theta), log_x)[0]

    def objective(self, log_x: np.ndarray, y: np.ndarray, kind: str = "huber_log", delta: float = 1e-3,
                  per_problem: str = "weights"):
        """fun(theta (S, P), data (S, n) | None) -> (f, grad) for `lbfgs_batch`. y is the observed L. `data` is
        each problem's weights per point (per_problem="weights": a pairs bootstrap's counts) or its own observed L
        (per_problem="targets": a wild bootstrap's resampled losses). per_problem="points": each problem has its
        own points, data (S, n, K + 2) = its log X columns, observed L and weight (0 pads a short ladder); log_x
        and y are then unused."""
        log_y = None if y is None else np.log(y)
        k_terms = len(self.coef_names)

        def fun_rows(theta, data):
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # far-off starts give inf: rejected
                if per_problem == "targets" and data is not None:
                    return _fun_rows(theta, None, data, np.log(data), log_x)
                if per_problem == "points":
                    y_own = data[:, :, -2]
                    return _fun_rows(theta, data[:, :, -1], y_own, np.log(y_own), data[:, :, :-2])
                return _fun_rows(theta, data, y, log_y, log_x)

        def _fun_rows(theta, weights, y, log_y, log_x):
            lse, probs = self._softmax(theta, log_x)
            if kind == "huber_log":
                r = lse - log_y
                loss, dlse = huber(r, delta), np.clip(r, -delta, delta)
            else:
                pred = np.exp(lse)
                r = pred - y
                loss, dlse = r * r, 2 * r * pred
            if weights is not None:
                loss *= weights
                dlse *= weights
            grad = np.zeros_like(theta)
            for k in range(k_terms):
                d_term = probs[k]
                d_term *= dlse
                grad[:, k] = d_term.sum(axis=1)
                grad[:, k_terms + self.exponent_of_term[k]] -= (d_term @ log_x[:, k] if log_x.ndim == 2
                                                                else np.einsum("sn,sn->s", d_term, log_x[:, :, k]))
            if self.irreducible:
                grad[:, -1] = (dlse * probs[-1]).sum(axis=1)
            return loss.sum(axis=1), grad

        return in_threads(fun_rows)

    def readable(self, theta: np.ndarray) -> dict[str, float]:
        """{A, B, ..., alpha, beta, ..., E}: coefficients exponentiated."""
        coefs, exponents, e = self.split(np.atleast_2d(theta))
        with np.errstate(over="ignore"):  # a term sent to +inf by a wild fit reads as inf, with its warning elsewhere
            out = {name.upper(): float(np.exp(coefs[0, k])) for k, name in enumerate(self.coef_names)}
        out.update({name: float(exponents[0, j]) for j, name in enumerate(self.exponent_names)})
        if self.irreducible:
            out["E"] = float(np.exp(e[0]))
        return out
