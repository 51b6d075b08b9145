"""The API: problems, results, evaluate, sweeps, optimizers, exceptions, pandas."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import atlas_mmm
from conftest import PROBLEMS, REPO, run_cli


def retail():
    return atlas_mmm.Problem.from_file(str(PROBLEMS / "retail_q4.toml"))


def test_problem_round_trips_through_a_dict():
    p = retail()
    d = p.to_dict()
    assert d["name"] == p.name == "retail-q4" or d["name"] == p.name
    q = atlas_mmm.Problem.from_dict(json.loads(json.dumps(d)))
    assert q.to_dict() == d
    assert q.channels == p.channels and q.periods == p.periods == 13
    a = atlas_mmm.optimize(p, "convex")
    b = atlas_mmm.optimize(q, "convex")
    assert a.objective == b.objective
    info = p.validate()
    assert info["variables"] == len(p.channels) * 13
    assert "convex" in info["optimizers"]


def test_with_budget_is_a_new_problem():
    p = retail()
    q = p.with_budget(2 * p.budget)
    assert q.budget == 2 * p.budget and p.budget == 12_000_000.0
    more = atlas_mmm.optimize(q, "convex")
    less = atlas_mmm.optimize(p, "convex")
    assert more.objective > less.objective
    assert more.total_spend == pytest.approx(q.budget, rel=1e-9)
    with pytest.raises(atlas_mmm.InputError) as excinfo:
        p.with_budget(-1.0).validate()
    assert excinfo.value.field == "budget"


def test_result_fields_and_serialization():
    r = atlas_mmm.optimize(retail(), "convex")
    assert r.status == "optimal"
    assert r.bound is not None and r.gap == pytest.approx(
        abs(r.bound - r.objective) / max(1.0, abs(r.objective))
    )
    assert all(isinstance(v, np.ndarray) and v.shape == (13,) for v in r.allocation.values())
    for name, values in r.allocation.items():
        assert r.totals[name] == pytest.approx(values.sum(), rel=1e-12, abs=1e-9)
    assert r.metrics["evaluations"] >= 0 and r.metrics["wall_time_s"] > 0
    d = json.loads(r.to_json())
    assert d == r.to_dict()
    again = atlas_mmm.Result(d)
    assert again.objective == r.objective and again.to_dict() == d


def test_evaluate_equals_the_cli(atlas_bin, tmp_path):
    p = retail()
    r = atlas_mmm.optimize(p, "lbfgs")
    e = atlas_mmm.evaluate(p, r)
    assert e["objective"] == pytest.approx(r.objective, rel=1e-12)
    assert e["feasible"] and e["violations"] == []
    path = tmp_path / "result.json"
    path.write_text(r.to_json())
    cli = run_cli(
        atlas_bin, "evaluate", str(PROBLEMS / "retail_q4.toml"), "--allocation", str(path), "--format", "json"
    )
    assert cli.returncode == 0, cli.stderr
    c = json.loads(cli.stdout)
    assert e["objective"] == pytest.approx(c["objective"], rel=1e-12)
    assert e["max_violation"] == pytest.approx(c["max_violation"], abs=1e-9)
    # A plan that breaks the rules says which.
    bad = {k: 2 * v for k, v in r.allocation.items()}
    e2 = atlas_mmm.evaluate(p, bad)
    assert not e2["feasible"] and e2["violations"]
    with pytest.raises(atlas_mmm.InputError) as excinfo:
        atlas_mmm.evaluate(p, {**r.allocation, "tv": [-1.0] * 13})
    assert excinfo.value.field == "allocation.tv[0]"
    wrong = dict(r.allocation)
    wrong["tvv"] = wrong.pop("tv")
    with pytest.raises(atlas_mmm.InputError) as excinfo:
        atlas_mmm.evaluate(p, wrong)
    assert excinfo.value.field == "allocation.tvv"


def test_sweep_equals_the_cli(atlas_bin):
    p = atlas_mmm.Problem.from_file(str(PROBLEMS / "quickstart.toml"))
    s = atlas_mmm.sweep(p, "0.5x:1.5x:5", optimizer="convex")
    assert len(s) + len(s.errors) == 5
    objectives = [x["objective"] for x in s.scenarios]
    assert objectives == sorted(objectives)
    cli = run_cli(
        atlas_bin, "sweep", str(PROBLEMS / "quickstart.toml"), "--budgets", "0.5x:1.5x:5",
        "--optimizer", "convex", "--format", "json", "--quiet",
    )
    # Exit status 1 when a scenario fails (the others are solved and listed).
    assert cli.returncode == (1 if s.errors else 0), cli.stderr
    c = json.loads(cli.stdout)
    assert [x["name"] for x in c["scenarios"]] == [x["name"] for x in s.scenarios]
    for a, b in zip(s.scenarios, c["scenarios"]):
        assert a["objective"] == pytest.approx(b["objective"], rel=1e-9)
    assert s.errors == c["errors"]
    # A list of amounts and scenario patches.
    s2 = atlas_mmm.sweep(
        p,
        [5e5, 1e6],
        scenarios=[{"name": "base"}, {"name": "less tv", "channels": {"tv": {"max": 2e5}}}],
        optimizer="convex",
    )
    assert len(s2) == 4
    by_name = {x["name"]: x for x in s2.scenarios}
    assert by_name["less tv, budget=1000000"]["totals"]["tv"] <= 2e5 * (1 + 1e-9)
    assert by_name["less tv, budget=1000000"]["objective"] <= by_name["base, budget=1000000"]["objective"]
    assert s2.results[0].status == "optimal"
    with pytest.raises(atlas_mmm.InputError) as excinfo:
        atlas_mmm.sweep(p, "0.5x:2x")
    assert excinfo.value.field == "--budgets"


def test_optimizers_lists_the_build():
    names = [o["name"] for o in atlas_mmm.optimizers()]
    for n in ["lbfgs", "convex", "milp", "cmaes", "tpe", "trust-region"]:
        assert n in names
    lbfgs = next(o for o in atlas_mmm.optimizers() if o["name"] == "lbfgs")
    assert "memory" in lbfgs["defaults"]


def test_auto_falls_back_to_the_cli_default():
    p = atlas_mmm.Problem.from_file(str(PROBLEMS / "quickstart.toml"))
    r = atlas_mmm.optimize(p)
    names = [o["name"] for o in atlas_mmm.optimizers()]
    if "auto" in names:
        assert r.selected is not None
    else:
        assert r.optimizer == "lbfgs"


def test_settings_seed_and_time_limit():
    p = retail()
    a = atlas_mmm.optimize(p, "cmaes", seed=3, max_evaluations=2000)
    b = atlas_mmm.optimize(p, "cmaes", seed=3, max_evaluations=2000)
    assert a.objective == b.objective
    assert a.metrics["evaluations"] <= 2000 + 200
    with pytest.raises(atlas_mmm.ConfigError) as excinfo:
        atlas_mmm.optimize(p, "lbfgs", memroy=5)
    assert excinfo.value.field == "memroy" and "did you mean `memory`" in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)
    with pytest.raises(atlas_mmm.ConfigError) as excinfo:
        atlas_mmm.optimize(p, "lbgfs")
    assert "did you mean `lbfgs`" in str(excinfo.value)
    with pytest.raises(atlas_mmm.InputError) as excinfo:
        atlas_mmm.optimize(p, "lbfgs", time_limit=0)
    assert excinfo.value.field == "time_limit"
    r = atlas_mmm.optimize(
        atlas_mmm.Problem.from_file(str(PROBLEMS / "large.toml")), "cmaes",
        time_limit=0.2, max_evaluations=10**9,
    )
    assert r.status == "time_limit" and r.max_violation <= 1e-6 * 1e8


def test_warm_start_from_a_result():
    p = retail()
    first = atlas_mmm.optimize(p, "lbfgs")
    again = atlas_mmm.optimize(p, "lbfgs", start=first)
    assert again.objective >= first.objective * (1 - 1e-9)
    with pytest.raises(atlas_mmm.InputError) as excinfo:
        atlas_mmm.optimize(p, "lbfgs", start=[1.0, 2.0])
    assert excinfo.value.field == "start"


def test_exceptions_carry_their_attributes():
    mixed = atlas_mmm.Problem.from_file(str(PROBLEMS / "mixed_integer.toml"))
    with pytest.raises(atlas_mmm.UnsupportedError) as excinfo:
        atlas_mmm.optimize(mixed, "lbfgs")
    e = excinfo.value
    assert e.optimizer == "lbfgs" and "milp" in e.alternatives
    assert any("spend_unit" in f for f in e.features)
    d = retail().to_dict()
    names = [c["name"] for c in d["channels"]]
    d.setdefault("constraints", []).extend(
        [{"kind": "share", "channels": [n], "min": 0.7} for n in names[:2]]
    )
    with pytest.raises(atlas_mmm.InfeasibleError) as excinfo:
        atlas_mmm.Problem.from_dict(d).validate()
    assert excinfo.value.rules and isinstance(excinfo.value, atlas_mmm.InputError)
    d = retail().to_dict()
    d["channels"][1]["response"]["k"] = -1.0
    with pytest.raises(atlas_mmm.InputError) as excinfo:
        atlas_mmm.optimize(atlas_mmm.Problem.from_dict(d))
    assert excinfo.value.field == "channels[1].response.k" and excinfo.value.path is None
    with pytest.raises(atlas_mmm.InputError) as excinfo:
        atlas_mmm.Problem.from_dict({"name": "x", "budjet": 1})
    assert excinfo.value.field == "" or "budjet" in str(excinfo.value)
    assert "did you mean `budget`" in str(excinfo.value)
    with pytest.raises(atlas_mmm.InputError) as excinfo:
        atlas_mmm.Problem.from_file("/nonexistent/problem.toml")
    assert excinfo.value.path == "/nonexistent/problem.toml"


def test_to_pandas_when_pandas_is_installed():
    pd = pytest.importorskip("pandas")
    r = atlas_mmm.optimize(retail(), "convex")
    df = r.to_pandas()
    assert list(df.columns) == ["channel", "period", "spend"]
    assert len(df) == len(r.allocation) * 13
    assert df.groupby("channel")["spend"].sum()["tv"] == pytest.approx(r.totals["tv"])
    s = atlas_mmm.sweep(retail(), "0.8x:1.2x:3", optimizer="convex").to_pandas()
    assert len(s) == 3 and "total:tv" in s.columns
    assert isinstance(s, pd.DataFrame)


def test_works_without_pandas():
    code = (
        "import sys; sys.modules['pandas'] = None\n"
        "import atlas_mmm\n"
        f"p = atlas_mmm.Problem.from_file({str(PROBLEMS / 'quickstart.toml')!r})\n"
        "r = atlas_mmm.optimize(p, 'convex')\n"
        "assert r.status == 'optimal'\n"
        "try:\n"
        "    r.to_pandas()\n"
        "except ImportError as e:\n"
        "    assert 'pip install pandas' in str(e)\n"
        "else:\n"
        "    raise SystemExit('to_pandas without pandas did not raise')\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_typing_files_are_installed():
    import importlib.resources as resources

    files = {p.name for p in resources.files("atlas_mmm").iterdir()}
    assert {"py.typed", "_native.pyi", "errors.py"} <= files
