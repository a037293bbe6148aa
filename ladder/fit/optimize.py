"""One optimizer for every law: L-BFGS run on a batch of independent problems at once, then scipy to polish.

Fitting from a 4500-start grid and refitting 4000 bootstrap resamples are both "many small problems of the same
shape". Looping scipy over them costs minutes; stepping them together as arrays costs seconds. The batch version
follows scipy's L-BFGS-B closely (two-loop recursion, memory 10, scipy's default stopping rules, bounds by
projection); scipy's own L-BFGS-B then polishes the winner, so the reported optimum is scipy's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.optimize import minimize

# fun(x (S, P), data (S, n) or None) -> (f (S,), grad (S, P)); data is per-problem: a bootstrap's counts per point,
# or its resampled observations (see PowerLawForm.objective).
BatchObjective = Callable[[np.ndarray, np.ndarray | None], tuple[np.ndarray, np.ndarray]]

SCIPY_FTOL = 1e7 * np.finfo(float).eps  # scipy's default factr=1e7
SCIPY_GTOL = 1e-5


@dataclass
class BatchResult:
    x: np.ndarray  # (S, P)
    f: np.ndarray  # (S,)
    converged: np.ndarray  # (S,) bool: met a stopping rule (not the iteration cap, not a failed line search)
    iterations: np.ndarray  # (S,)


def _project(x: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    return np.clip(x, lower, upper)


def lbfgs_batch(fun: BatchObjective, x0: np.ndarray, data: np.ndarray | None = None,
                bounds: np.ndarray | None = None, memory: int = 10, max_iter: int = 1000,
                ftol: float = SCIPY_FTOL, gtol: float = SCIPY_GTOL, f_floor: float = 1.0,
                progress: str | None = None) -> BatchResult:
    """Minimise each row of x0 independently. Stops a row when its projected gradient is below gtol, or when a step
    lowers f by less than ftol * max(|f|, f_floor). scipy's f_floor is 1, which makes the rule absolute for
    objectives far below 1 (the summed Huber is ~1e-3): pass f_floor=0 for a rule relative to f itself.
    `progress`: a bar of that name over the rows finished (on a terminal)."""
    x = np.array(x0, dtype=float)
    P = x.shape[1]
    lower = np.full(P, -np.inf) if bounds is None else bounds[:, 0]
    upper = np.full(P, np.inf) if bounds is None else bounds[:, 1]
    x = _project(x, lower, upper)
    f, g = fun(x, data)
    from ladder.progress import bar
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"), \
            bar(len(x), progress or "", unit="fit", enabled=progress is not None) as shown:  # non-finite trials
        return _lbfgs_loop(fun, x, f, g, data, lower, upper, memory, max_iter, ftol, gtol, f_floor, shown)


def _lbfgs_loop(fun, x, f, g, data, lower, upper, memory, max_iter, ftol, gtol, f_floor, shown) -> BatchResult:
    S, P = x.shape
    # The histories hold the active rows only (`idx`), and every active row has taken as many steps as the others,
    # so one slot order serves them all: no per-row gathers in the two-loop recursion.
    idx = np.arange(S)
    s_hist, y_hist = np.zeros((S, memory, P)), np.zeros((S, memory, P))
    rho = np.zeros((S, memory))  # 0 marks an empty or skipped slot: it then drops out of the recursion
    newest = -1
    converged = np.zeros(S, dtype=bool)
    iterations = np.zeros(S, dtype=int)
    for _ in range(max_iter):
        if idx.size == 0:
            break
        xa, fa, ga = x[idx], f[idx], g[idx]
        data_a = None if data is None else data[idx]
        free = ~(((xa <= lower) & (ga > 0)) | ((xa >= upper) & (ga < 0)))  # bound-clamped coordinates stay put
        pg = np.where(free, ga, 0.0)
        done = np.abs(pg).max(axis=1) <= gtol
        direction = -_two_loop(pg, s_hist, y_hist, rho, newest, memory, free)
        slope = np.einsum("sp,sp->s", direction, ga)
        bad = slope >= 0  # not a descent direction: fall back to steepest descent and forget the history
        direction[bad], slope[bad] = -pg[bad], -np.einsum("sp,sp->s", pg[bad], pg[bad])
        rho[bad] = 0.0
        step = np.minimum(1.0, 1.0 / np.maximum(np.linalg.norm(pg, axis=1), 1e-300)) if newest < 0 \
            else np.ones(len(idx))

        x_new, f_new, g_new = xa.copy(), fa.copy(), ga.copy()
        pending = ~done & (slope < 0)
        for _ in range(40):  # backtracking line search on the sufficient-decrease (Armijo) condition
            p = np.flatnonzero(pending)
            if p.size == 0:
                break
            trial = _project(xa[p] + step[p, None] * direction[p], lower, upper)
            ft, gt = fun(trial, None if data_a is None else data_a[p])
            ok = np.isfinite(ft) & (ft <= fa[p] + 1e-4 * np.einsum("sp,sp->s", trial - xa[p], ga[p]))
            x_new[p[ok]], f_new[p[ok]], g_new[p[ok]] = trial[ok], ft[ok], gt[ok]
            pending[p[ok]] = False
            step[p[~ok]] *= 0.5
        stuck = pending  # no decrease found along the direction: stop here, as scipy does (ABNORMAL)

        s, y = x_new - xa, g_new - ga
        sy = np.einsum("sp,sp->s", s, y)
        newest = (newest + 1) % memory
        keep = sy > 1e-10 * np.maximum(np.einsum("sp,sp->s", y, y), 1e-300)
        s_hist[:, newest], y_hist[:, newest] = s, y
        rho[:, newest] = np.where(keep, 1.0 / np.where(keep, sy, 1.0), 0.0)
        small_change = (fa - f_new) <= ftol * np.maximum(np.maximum(np.abs(fa), np.abs(f_new)), f_floor)
        x[idx], f[idx], g[idx] = x_new, f_new, g_new
        iterations[idx] += ~done
        finished = done | stuck | (small_change & ~stuck)
        converged[idx] = done | (small_change & ~stuck)
        if finished.any():
            going = ~finished
            idx, s_hist, y_hist, rho = idx[going], s_hist[going], y_hist[going], rho[going]
        shown.advance(int(finished.sum()))
    return BatchResult(x=x, f=f, converged=converged, iterations=iterations)


def _two_loop(g, s_hist, y_hist, rho, newest, memory, free):
    """H_k @ g for each problem, from its last `memory` (s, y) pairs (Nocedal & Wright, Alg. 7.4); slot `newest`
    holds every problem's latest pair (-1: none yet)."""
    q = g.copy()
    alphas = np.zeros(rho.shape)
    order = [(newest - k) % memory for k in range(memory)]  # newest first
    for slot in order:
        s, y, r = s_hist[:, slot], y_hist[:, slot], rho[:, slot]
        a = r * np.einsum("sp,sp->s", s, q)
        alphas[:, slot] = a
        q -= a[:, None] * y
    y, r = y_hist[:, newest], rho[:, newest]
    yy = np.einsum("sp,sp->s", y, y)
    gamma = np.where((r > 0) & (yy > 0), 1.0 / np.where(r > 0, r, 1.0) / np.where(yy > 0, yy, 1.0), 1.0)
    z = gamma[:, None] * q
    for slot in reversed(order):
        s, y, r = s_hist[:, slot], y_hist[:, slot], rho[:, slot]
        b = r * np.einsum("sp,sp->s", y, z)
        z += s * (alphas[:, slot] - b)[:, None]
    return np.where(free, z, 0.0)


def polish(fun: BatchObjective, x0: np.ndarray, data: np.ndarray | None = None,
           bounds: np.ndarray | None = None, ftol: float = 1e-15, gtol: float = 1e-12):
    """scipy's L-BFGS-B from one start, tight tolerances; returns (x, f, success)."""
    w = None if data is None else data[None, :]

    def single(x):
        f, g = fun(x[None, :], w)
        return float(f[0]), g[0]

    scipy_bounds = None if bounds is None else [tuple(None if np.isinf(v) else float(v) for v in b) for b in bounds]
    result = minimize(single, x0, jac=True, method="L-BFGS-B", bounds=scipy_bounds,
                      options={"ftol": ftol, "gtol": gtol, "maxiter": 15000, "maxfun": 30000})
    return result.x, float(result.fun), bool(result.success)
