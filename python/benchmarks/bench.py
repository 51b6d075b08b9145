#!/usr/bin/env python3
"""Speed of atlas_mmm, measured in one process (issue 19's targets):

1. call overhead: ``atlas_mmm.optimize`` on retail_q4 against the same solve done
   entirely in Rust in the same process (``_native.rust_solve_times``: compile, solve,
   result), target ``python <= 1.1 * rust + 1 ms`` (medians);
2. SciPy SLSQP (the peer code of ``benches/peers/peers.py``) against
   ``atlas_mmm.optimize(problem, "convex")`` on the same problem, target >= 50x faster at
   equal or better objective (both plans re-evaluated by ``atlas_mmm.evaluate``);
3. a NumPy model of large.toml with ``value_batch`` and ``gradient`` (``lbfgs``)
   against the built-in model (``lbfgs``), target within 5x.

    python python/benchmarks/bench.py [--repeats N] [--json FILE]

Needs numpy and scipy. Prints a table and, with ``--json``, the figures as JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import atlas_mmm
from atlas_mmm import _native

REPO = Path(__file__).resolve().parents[2]
PROBLEMS = REPO / "examples" / "problems"
sys.path.insert(0, str(REPO / "python" / "tests"))

from numpy_mmm import NumpyMmm  # noqa: E402


def median_time(fn, repeats):
    times = []
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def load_peers():
    spec = importlib.util.spec_from_file_location("peers", REPO / "benches" / "peers" / "peers.py")
    peers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peers)
    return peers


def overhead(repeats):
    problem = atlas_mmm.Problem.from_file(str(PROBLEMS / "retail_q4.toml"))
    rows = []
    for optimizer in ("convex", "lbfgs"):
        # Warm up both paths (thread pools, allocator, page faults).
        _native.rust_solve_times(problem, optimizer, 3)
        for _ in range(3):
            atlas_mmm.optimize(problem, optimizer)
        rust = statistics.median(_native.rust_solve_times(problem, optimizer, repeats))
        py, _ = median_time(lambda: atlas_mmm.optimize(problem, optimizer), repeats)
        rows.append(
            {
                "problem": "retail_q4",
                "optimizer": optimizer,
                "rust_s": rust,
                "python_s": py,
                "limit_s": 1.1 * rust + 1e-3,
                "ratio": py / rust,
                "pass": py <= 1.1 * rust + 1e-3,
            }
        )
    return rows


def slsqp_vs_convex(repeats):
    peers = load_peers()
    path = PROBLEMS / "retail_q4.toml"
    problem = atlas_mmm.Problem.from_file(str(path))
    peer_problem = peers.Problem(peers.read_problem(str(path)))
    names = problem.channels
    T = problem.periods

    def slsqp():
        x, status, _, _ = peers.solve_slsqp(peer_problem, 600.0, 0)
        return x, status

    slsqp()  # imports and first-call costs out of the timing
    s_time, (x, s_status) = median_time(slsqp, max(1, repeats // 10))
    alloc = {c: [float(v) for v in x[i * T : (i + 1) * T]] for i, c in enumerate(names)}
    s_eval = atlas_mmm.evaluate(problem, alloc)
    atlas_mmm.optimize(problem, "convex")
    a_time, r = median_time(lambda: atlas_mmm.optimize(problem, "convex"), repeats)
    tol = 1e-6 * problem.budget
    return {
        "problem": "retail_q4",
        "slsqp_s": s_time,
        "slsqp_status": s_status,
        "slsqp_objective": s_eval["objective"],
        "slsqp_max_violation": s_eval["max_violation"],
        "convex_s": a_time,
        "convex_status": r.status,
        "convex_objective": r.objective,
        "convex_max_violation": r.max_violation,
        "speedup": s_time / a_time,
        "pass": s_time / a_time >= 50
        and r.objective >= s_eval["objective"] * (1 - 1e-9)
        and r.max_violation <= tol,
    }


class WithoutDiagonal:
    """The NumPy model without ``hessian_diagonal``: values, gradients, batches."""

    def __init__(self, inner):
        self.inner = inner
        self.concave = inner.concave
        self.value = inner.value
        self.value_and_gradient = inner.value_and_gradient
        self.gradient = inner.gradient
        self.value_batch = inner.value_batch


def numpy_model_large(repeats):
    problem = atlas_mmm.Problem.from_file(str(PROBLEMS / "large.toml"))
    atlas_mmm.optimize(problem, "lbfgs")
    b_time, built_in = median_time(lambda: atlas_mmm.optimize(problem, "lbfgs"), repeats)
    out = {
        "problem": "large",
        "variables": len(problem.channels) * problem.periods,
        "built_in_s": b_time,
        "built_in_objective": built_in.objective,
        "built_in_gradients": built_in.metrics["gradient_evaluations"],
        "variants": [],
    }
    for label, with_diagonal in (
        ("value_batch + value_and_gradient", False),
        ("value_batch + value_and_gradient + hessian_diagonal", True),
    ):
        inner = NumpyMmm(problem.to_dict())
        model = inner if with_diagonal else WithoutDiagonal(inner)
        atlas_mmm.optimize(problem, "lbfgs", model=model)
        inner.calls = {k: 0 for k in inner.calls}
        m_time, r = median_time(lambda: atlas_mmm.optimize(problem, "lbfgs", model=model), repeats)
        out["variants"].append(
            {
                "model": label,
                "seconds": m_time,
                "objective": r.objective,
                "model_time_s": r.metrics["model_time_s"],
                "calls_per_solve": {k: v // repeats for k, v in inner.calls.items() if v},
                "ratio": m_time / b_time,
                "pass": m_time <= 5 * b_time and r.objective >= built_in.objective * (1 - 1e-6),
            }
        )
    out["pass"] = any(v["pass"] for v in out["variants"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out = {
        "host": {"python": sys.version.split()[0], "machine": platform.machine(), "node": platform.node()},
        "atlas_mmm": atlas_mmm.__version__,
        "overhead": overhead(args.repeats),
        "slsqp_vs_convex": slsqp_vs_convex(args.repeats),
        "numpy_model_large": numpy_model_large(max(3, args.repeats // 4)),
    }
    print("call overhead (retail_q4, medians)")
    for r in out["overhead"]:
        print(
            f"  {r['optimizer']:8} rust {r['rust_s'] * 1e3:8.3f} ms   python {r['python_s'] * 1e3:8.3f} ms"
            f"   ratio {r['ratio']:.3f}   limit {r['limit_s'] * 1e3:.3f} ms   {'ok' if r['pass'] else 'FAIL'}"
        )
    s = out["slsqp_vs_convex"]
    print("SciPy SLSQP vs atlas_mmm convex (retail_q4)")
    print(
        f"  slsqp  {s['slsqp_s'] * 1e3:9.2f} ms  objective {s['slsqp_objective']:.10g}  ({s['slsqp_status']})\n"
        f"  convex {s['convex_s'] * 1e3:9.2f} ms  objective {s['convex_objective']:.10g}  ({s['convex_status']})\n"
        f"  speedup {s['speedup']:.1f}x   {'ok' if s['pass'] else 'FAIL'}"
    )
    m = out["numpy_model_large"]
    print(f"NumPy model vs built-in model, lbfgs on large ({m['variables']} variables, medians)")
    print(
        f"  built-in {m['built_in_s'] * 1e3:9.2f} ms  objective {m['built_in_objective']:.10g}"
        f"  gradients {m['built_in_gradients']}"
    )
    for v in m["variants"]:
        print(
            f"  numpy    {v['seconds'] * 1e3:9.2f} ms  objective {v['objective']:.10g}  ratio {v['ratio']:.2f}x"
            f"  {'ok' if v['pass'] else 'over 5x'}  [{v['model']}] calls {v['calls_per_solve']}"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0 if all(r["pass"] for r in out["overhead"]) and s["pass"] and m["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
