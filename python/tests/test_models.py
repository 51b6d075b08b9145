"""Models written in Python, optimized by the Rust optimizers."""

from __future__ import annotations

import threading
import traceback

import numpy as np
import pytest

import atlas_mmm
from conftest import PROBLEMS
from numpy_mmm import NumpyMmm


def load(name):
    return atlas_mmm.Problem.from_file(str(PROBLEMS / name))


@pytest.mark.parametrize("name", ["retail_q4.toml", "quickstart.toml", "profit.toml"])
def test_numpy_model_matches_the_built_in_model(name):
    problem = load(name)
    model = NumpyMmm(problem.to_dict())
    rng = np.random.default_rng(3)
    n = len(problem.channels) * problem.periods
    for _ in range(5):
        x = rng.uniform(0, 2 * problem.budget / n, n)
        alloc = {c: x[i * problem.periods : (i + 1) * problem.periods] for i, c in enumerate(problem.channels)}
        built_in = atlas_mmm.evaluate(problem, alloc)["objective"]
        if problem.to_dict().get("objective", "response") == "response":
            assert model.value(x) == pytest.approx(built_in, rel=1e-12)
        # Gradient against central differences.
        g = model.gradient(x)
        h = 1e-6 * max(1.0, float(np.abs(x).max()))
        for i in rng.choice(n, size=min(n, 6), replace=False):
            e = np.zeros(n)
            e[i] = h
            fd = (model.value(x + e) - model.value(x - e)) / (2 * h)
            assert g[i] == pytest.approx(fd, rel=1e-5, abs=1e-9 * abs(model.value(x)) / h)
        hd = model.hessian_diagonal(x)
        for i in rng.choice(n, size=min(n, 4), replace=False):
            e = np.zeros(n)
            e[i] = h
            fd2 = (model.gradient(x + e)[i] - model.gradient(x - e)[i]) / (2 * h)
            assert hd[i] == pytest.approx(fd2, rel=1e-4, abs=1e-6 * abs(hd).max())
        v, g2 = model.value_and_gradient(x)
        assert v == pytest.approx(model.value(x), rel=1e-14)
        np.testing.assert_allclose(g2, g, rtol=1e-14)
        X = np.stack([x, 0.5 * x])
        np.testing.assert_allclose(model.value_batch(X), [model.value(x), model.value(0.5 * x)], rtol=1e-12)


class GradientOnly:
    """value(x) and gradient(x) only (no value_and_gradient)."""

    def __init__(self, inner):
        self.inner = inner
        self.concave = inner.concave

    def value(self, x):
        return self.inner.value(x)

    def gradient(self, x):
        return self.inner.gradient(x)


@pytest.mark.parametrize("methods", ["value+gradient", "value_and_gradient"])
def test_python_model_with_gradient_reaches_the_built_in_optimum(methods):
    problem = load("retail_q4.toml")
    built_in = atlas_mmm.optimize(problem, "convex")
    assert built_in.status == "optimal"
    inner = NumpyMmm(problem.to_dict())
    model = GradientOnly(inner) if methods == "value+gradient" else inner
    result = atlas_mmm.optimize(problem, "lbfgs", model=model)
    used = "gradient" if methods == "value+gradient" else "value_and_gradient"
    assert inner.calls[used] > 0
    assert result.status in ("converged", "optimal")
    assert result.max_violation <= 1e-6 * problem.budget
    # The objective is the Python model's, and reaches the certified optimum.
    x = np.concatenate([result.allocation[c] for c in problem.channels])
    assert result.objective == pytest.approx(inner.value(x), rel=1e-12)
    assert result.objective == pytest.approx(built_in.objective, rel=1e-6)
    assert result.objective <= built_in.bound * (1 + 1e-9)


def test_value_batch_gets_two_dimensional_batches():
    problem = load("quickstart.toml")
    best = atlas_mmm.optimize(problem, "convex").objective
    shapes = []

    inner = NumpyMmm(problem.to_dict())

    class BatchOnly:
        """A black box: values only, in batches."""

        def value(self, x):
            return inner.value(x)

        def value_batch(self, X):
            shapes.append(X.shape)
            return inner.value_batch(X)

    model = BatchOnly()
    # TPE with several jobs evaluates each batch of trials in one call.
    settings = dict(seed=1, n_jobs=4, n_trials=120)
    result = atlas_mmm.optimize(problem, "tpe", model=model, **settings)
    assert shapes and all(len(s) == 2 and s[1] == 3 for s in shapes)
    assert any(s[0] > 1 for s in shapes)
    built_in = atlas_mmm.optimize(problem, "tpe", **settings)
    assert result.objective == pytest.approx(built_in.objective, rel=1e-9)
    assert result.objective >= 0.95 * best


def test_gradient_optimizer_refuses_a_value_only_model():
    problem = load("quickstart.toml")

    class ValueOnly:
        def __init__(self):
            self.inner = NumpyMmm(problem.to_dict())

        def value(self, x):
            return self.inner.value(x)

    with pytest.raises(atlas_mmm.UnsupportedError) as excinfo:
        atlas_mmm.optimize(problem, "lbfgs", model=ValueOnly())
    assert "cmaes" in excinfo.value.alternatives
    assert excinfo.value.features


class Boom(Exception):
    pass


def test_a_raising_model_stops_the_solve_with_its_exception():
    problem = load("retail_q4.toml")
    inner = NumpyMmm(problem.to_dict())
    calls = []

    class Raising:
        def value(self, x):
            calls.append(1)
            if len(calls) == 7:
                raise Boom("the model failed on call 7")
            return inner.value(x)

        def gradient(self, x):
            return inner.gradient(x)

    with pytest.raises(Boom, match="call 7") as excinfo:
        atlas_mmm.optimize(problem, "lbfgs", model=Raising())
    # The traceback reaches into the model's own code.
    frames = traceback.extract_tb(excinfo.value.__traceback__)
    assert any(f.name == "value" for f in frames)
    # The solve stopped at the failure rather than running on.
    assert len(calls) <= 12


def test_model_not_called_with_the_gil_held_by_the_solver():
    """While a Python model's solve runs, other Python threads keep running."""
    problem = load("retail_q4.toml")
    model = NumpyMmm(problem.to_dict())
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)
            stop.wait(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        atlas_mmm.optimize(problem, "lbfgs", model=model)
    finally:
        stop.set()
        t.join()
    assert ticks


def test_a_model_without_value_is_a_type_error():
    problem = load("quickstart.toml")
    with pytest.raises(TypeError, match="value"):
        atlas_mmm.optimize(problem, "cmaes", model=object())
