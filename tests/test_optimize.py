"""The batch L-BFGS every law fits with (ladder.fit.optimize): each row a problem of its own, solved as scipy solves
it alone."""

import numpy as np
from scipy.optimize import minimize

from ladder.fit.optimize import lbfgs_batch


def rosenbrock(x, data):
    """(a - x)^2 + 100 (y - x^2)^2 for each row, its minimum at (a, a^2); a from `data` (S, 1), else 1. Its curved
    valley makes the line search back off: steps of 1/2, 1/4, ... are taken along the way."""
    a = 1.0 if data is None else data[:, 0]
    u, v = x[:, 0], x[:, 1]
    f = (a - u) ** 2 + 100 * (v - u ** 2) ** 2
    grad = np.stack([-2 * (a - u) - 400 * u * (v - u ** 2), 200 * (v - u ** 2)], axis=1)
    return f, grad


def starts(n=40, seed=0):
    return np.random.default_rng(seed).uniform(-2, 2, (n, 2))


def test_every_row_reaches_the_minimum_scipy_reaches():
    x0 = starts()
    result = lbfgs_batch(rosenbrock, x0, ftol=1e-15, gtol=1e-8)
    assert result.converged.all()
    assert np.allclose(result.x, 1.0, atol=1e-4)
    for row in x0[:5]:
        theirs = minimize(lambda x: tuple(v[0] for v in rosenbrock(x[None, :], None)), row, jac=True,
                          method="L-BFGS-B")
        assert np.allclose(theirs.x, 1.0, atol=1e-3)  # the same minimum from the same starts


def test_each_row_solves_its_own_problem_from_its_own_data():
    a = np.linspace(-1.5, 1.5, 40)[:, None]
    result = lbfgs_batch(rosenbrock, starts(), data=a, ftol=1e-15, gtol=1e-8)
    assert np.allclose(result.x[:, 0], a[:, 0], atol=1e-4) and np.allclose(result.x[:, 1], a[:, 0] ** 2, atol=1e-3)
    alone = lbfgs_batch(rosenbrock, starts()[7:8], data=a[7:8], ftol=1e-15, gtol=1e-8)
    assert np.allclose(alone.x, result.x[7:8], atol=1e-6)  # a row's answer does not depend on its neighbours


def test_bounds_hold_and_a_bound_minimum_is_found():
    bounds = np.array([[-2.0, 0.5], [-2.0, 2.0]])  # the minimum (1, 1) lies outside: the best inside is x = 0.5
    result = lbfgs_batch(rosenbrock, np.clip(starts(), -2, 0.5), bounds=bounds, ftol=1e-15, gtol=1e-8)
    assert np.all(result.x[:, 0] <= 0.5) and np.all(result.x >= -2)
    assert np.allclose(result.x, [0.5, 0.25], atol=1e-4)


def test_a_row_with_no_descent_stops_without_moving_the_others():
    def walled(x, data):  # no value beyond |x| = 3: a row pushed against it finds no step that passes
        f, grad = rosenbrock(x, data)
        return np.where(np.abs(x).max(axis=1) > 3, np.nan, f), grad

    x0 = np.array([[-1.2, 1.0], [2.9999, 2.9999]])
    result = lbfgs_batch(walled, x0, ftol=1e-15, gtol=1e-8)
    assert result.converged[0] and np.allclose(result.x[0], 1.0, atol=1e-4)
    assert not result.converged[1] and np.abs(result.x[1]).max() <= 3  # stopped at the wall, as scipy's ABNORMAL
    assert np.isfinite(result.f[1]) and result.f[1] < rosenbrock(x0[1:], None)[0][0]  # having gone downhill to it
