"""Every example problem solved from Python equals the command line's result."""

from __future__ import annotations

import json

import numpy as np
import pytest

import atlas_mmm
from conftest import PROBLEMS, problem_files, run_cli


def cli_result(atlas_bin, path, *args):
    out = run_cli(atlas_bin, "optimize", str(path), "--format", "json", "-q", *args)
    return out


def assert_same(py: atlas_mmm.Result, cli: dict) -> None:
    assert py.problem == cli["problem"]
    assert py.optimizer == cli["optimizer"]
    assert py.status == cli["status"]
    scale = max(1.0, abs(cli["objective"]))
    assert abs(py.objective - cli["objective"]) <= 1e-9 * scale
    if cli["bound"] is None:
        assert py.bound is None
    else:
        assert abs(py.bound - cli["bound"]) <= 1e-9 * scale
    assert list(py.allocation) == list(cli["allocation"])
    budget = max(1.0, sum(cli["totals"].values()))
    for name, values in cli["allocation"].items():
        np.testing.assert_allclose(py.allocation[name], values, rtol=0, atol=1e-9 * budget)
    assert py.max_violation <= 1e-6 * budget
    # The contract's result keys, all present.
    for key in cli:
        if key != "metrics":
            assert key in py.to_dict(), key
    assert set(cli["metrics"]) <= set(py.metrics)


@pytest.mark.parametrize("path", problem_files(), ids=lambda p: p.name)
def test_default_optimizer_equals_cli(atlas_bin, path):
    problem = atlas_mmm.Problem.from_file(str(path))
    cli = cli_result(atlas_bin, path)
    if cli.returncode == 2:
        # The default optimizer refuses the problem: the same refusal from Python.
        with pytest.raises(atlas_mmm.AtlasError) as excinfo:
            atlas_mmm.optimize(problem)
        assert str(excinfo.value) == cli.stderr.strip().removeprefix("error: ")
        return
    assert cli.returncode == 0, cli.stderr
    assert_same(atlas_mmm.optimize(problem), json.loads(cli.stdout))


@pytest.mark.parametrize("optimizer", ["convex", "milp", "trust-region"])
@pytest.mark.parametrize("name", ["retail_q4.toml", "mixed_integer.toml", "profit.toml"])
def test_named_optimizers_equal_cli(atlas_bin, name, optimizer):
    path = next(p for p in problem_files() if p.name == name)
    problem = atlas_mmm.Problem.from_file(str(path))
    cli = cli_result(atlas_bin, path, "--optimizer", optimizer)
    if cli.returncode == 2:
        with pytest.raises(atlas_mmm.UnsupportedError) as excinfo:
            atlas_mmm.optimize(problem, optimizer)
        assert str(excinfo.value) == cli.stderr.strip().removeprefix("error: ")
        assert excinfo.value.features and excinfo.value.alternatives
        return
    assert cli.returncode == 0, cli.stderr
    assert_same(atlas_mmm.optimize(problem, optimizer), json.loads(cli.stdout))


def test_certified_optimum_of_retail(optima):
    problem = atlas_mmm.Problem.from_file(str(PROBLEMS / "retail_q4.toml"))
    result = atlas_mmm.optimize(problem, "convex")
    best = optima["retail_q4.toml"]["best_known"]
    assert result.status == "optimal"
    assert result.gap is not None and result.gap <= 1e-6
    assert abs(result.objective - best) <= 1e-6 * best
    assert result.bound >= result.objective
