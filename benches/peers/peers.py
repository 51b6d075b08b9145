#!/usr/bin/env python3
"""Python peers of the Atlas benchmark.

Reads a problem file of the Atlas contract (shared/spec/problem-format.md: TOML via
tomllib, or JSON), solves it with established Python optimizers and writes one result
JSON per solver in the contract's result format (section 6), so that Atlas can
re-evaluate every allocation with its own model:

    python peers.py check
        -> JSON on stdout: which solvers can run, which packages are missing
    python peers.py solve PROBLEM --out-dir DIR [--solvers a,b] [--time-limit S]
                          [--runs N] [--seed N]
        -> DIR/<solver>.json for every solver asked for
    python peers.py sweep PROBLEM --factors START:STOP:N --out FILE [--solvers a,b]
                          [--time-limit S]
        -> FILE: a budget response curve (N budgets from START to STOP times the
           problem's budget) per solver: SciPy SLSQP in a loop, each solve started from
           the previous budget's plan; CVXPY with the budget as a Parameter, the problem
           built once and re-solved (its fastest re-solve path)

Solvers and the packages they need:

    scipy-slsqp         numpy scipy            SLSQP, gradients, all rules
    scipy-trust-constr  numpy scipy            trust-constr, gradients and Hessian products
    optuna-tpe          numpy scipy optuna     TPE over the unit cube, penalty for rules
    optuna-cmaes        numpy scipy optuna cmaes  Optuna's CMA-ES sampler, the same way
    cmaes               numpy scipy cmaes      the `cmaes` package's CMA directly
    cvxpy-clarabel      numpy scipy cvxpy clarabel  disciplined convex program, Clarabel
    highs               numpy scipy highspy    MILP for the integer rules (chord approximation)

Install them into a virtual environment:

    python3 -m venv .venv && .venv/bin/pip install numpy scipy optuna cmaes cvxpy clarabel highspy

A solver refuses (writes {"peer": {"refused": reason}}) what it cannot honour, as Atlas's
backends do: integer rules for all but `highs`, S-curves for the convex ones, problems
too large for dense or black-box methods. Timings cover building the model and solving,
not reading the file or importing packages.
"""

import argparse
import importlib.util
import json
import math
import os
import platform
import sys
import time

SOLVERS = {
    "scipy-slsqp": ["numpy", "scipy"],
    "scipy-trust-constr": ["numpy", "scipy"],
    "optuna-tpe": ["numpy", "scipy", "optuna"],
    "optuna-cmaes": ["numpy", "scipy", "optuna", "cmaes"],
    "cmaes": ["numpy", "scipy", "cmaes"],
    "cvxpy-clarabel": ["numpy", "scipy", "cvxpy", "clarabel"],
    "highs": ["numpy", "scipy", "highspy"],
}

# Size limits: beyond them a method is impractical (dense n x n algebra, or a black-box
# search in too many dimensions for its budget); the solver refuses rather than burn the
# time limit.
MAX_VARIABLES = {
    "scipy-slsqp": 1200,
    "scipy-trust-constr": 12000,
    "optuna-tpe": 30,
    "optuna-cmaes": 100,
    "cmaes": 100,
    "cvxpy-clarabel": 20000,
    "highs": 2000,
}


# Modules each solver imports, loaded before the timed runs so timings exclude imports.
MODULES = {
    "scipy-slsqp": ["numpy", "scipy.optimize"],
    "scipy-trust-constr": ["numpy", "scipy.optimize", "scipy.sparse", "scipy.sparse.linalg"],
    "optuna-tpe": ["numpy", "scipy.optimize", "optuna"],
    "optuna-cmaes": ["numpy", "scipy.optimize", "optuna", "cmaes"],
    "cmaes": ["numpy", "scipy.optimize", "cmaes"],
    "cvxpy-clarabel": ["numpy", "scipy.sparse", "cvxpy", "clarabel"],
    "highs": ["numpy", "highspy"],
}


def missing_packages(solver):
    return [p for p in SOLVERS[solver] if importlib.util.find_spec(p) is None]


class Refused(Exception):
    """The solver cannot honour a feature of the problem."""


class OutOfTime(Exception):
    """Raised inside an evaluation once a time limit has passed."""


# ---- the contract's problem -----------------------------------------------------------


def read_problem(path):
    ext = os.path.splitext(path)[1].lower()
    with open(path, "rb") as f:
        data = f.read()
    if ext == ".toml":
        import tomllib

        return tomllib.loads(data.decode("utf-8"))
    if ext == ".json":
        return json.loads(data)
    if ext in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as e:
            raise SystemExit(f"{path}: reading YAML needs PyYAML (pip install pyyaml)") from e
        return yaml.safe_load(data)
    raise SystemExit(f"{path}: unknown extension {ext} (toml, json, yaml)")


class Problem:
    """The contract's problem compiled for numpy: flat layout x[c * T + t], the model
    R(x) = sum_c sum_t d_t f_c(a_ct), a_c = W_c x_c, and the linear rows."""

    def __init__(self, doc):
        import numpy as np

        self.np = np
        self.name = doc["name"]
        self.T = int(doc.get("periods", 1))
        self.budget = float(doc["budget"])
        self.budget_mode = doc.get("budget_mode", "exact")
        self.objective = doc.get("objective", "response")
        self.margin = float(doc.get("margin", 1.0))
        self.target = doc.get("target_response")
        self.discount = float(doc.get("discount", 0.0))
        self.max_active = doc.get("max_active_channels")
        chans = doc["channels"]
        self.channels = [c["name"] for c in chans]
        self.C = len(chans)
        C, T = self.C, self.T
        self.n = C * T
        self.d = np.array([1.0 / (1.0 + self.discount) ** t for t in range(T)])
        # Curves, as per-channel parameter arrays.
        self.kind = [c["response"]["kind"] for c in chans]
        get = lambda c, k, default=0.0: float(c["response"].get(k, default))
        self.beta = np.array([get(c, "beta") for c in chans])
        self.k = np.array([get(c, "k", 1.0) for c in chans])
        self.s = np.array([get(c, "s", 1.0) for c in chans])
        self.lam = np.array([get(c, "lam", 1.0) for c in chans])
        self.alpha = np.array([get(c, "alpha", 1.0) for c in chans])
        # Adstock: W[c] is T x T lower triangular with W[c][t][t-l] = w_l.
        self.W = np.zeros((C, T, T))
        for ci, c in enumerate(chans):
            ad = c.get("adstock")
            if ad is None:
                w = np.array([1.0])
            else:
                lags = int(ad.get("max_lag", 1))
                w = np.array([float(ad["decay"]) ** l for l in range(lags)])
                if ad.get("normalize", True):
                    w = w / w.sum()
            for t in range(T):
                for l in range(min(len(w), t + 1)):
                    self.W[ci, t, t - l] = w[l]
        # Bounds per variable, channel totals, integer rules.
        self.lb = np.zeros(self.n)
        self.ub = np.full(self.n, np.inf)
        self.rows = []  # (dense coefficient vector, lo, hi, label)
        self.spend_unit = [c.get("spend_unit") for c in chans]
        self.min_active = [c.get("min_active") for c in chans]
        self.fixed_cost = [c.get("fixed_cost") for c in chans]
        for ci, c in enumerate(chans):
            sl = slice(ci * T, (ci + 1) * T)
            self.lb[sl] = float(c.get("period_min", 0.0))
            if c.get("period_max") is not None:
                self.ub[sl] = float(c["period_max"])
            lo = float(c.get("min", 0.0))
            hi = float(c["max"]) if c.get("max") is not None else np.inf
            if T == 1:
                self.lb[sl] = max(self.lb[ci * T], lo)
                self.ub[sl] = min(self.ub[ci * T], hi)
            elif lo > 0 or hi < np.inf:
                a = np.zeros(self.n)
                a[sl] = 1.0
                self.rows.append((a, lo, hi, f"channels[{ci}] total"))
        self.ub = np.minimum(self.ub, self.budget)
        # Budget.
        ones = np.ones(self.n)
        if self.budget_mode == "exact" and self.objective != "min_spend":
            self.rows.append((ones, self.budget, self.budget, "budget"))
        else:
            self.rows.append((ones, -np.inf, self.budget, "budget"))
        self.min_roi = []
        for i, con in enumerate(doc.get("constraints", [])):
            self._constraint(i, con)
        self.integer = (
            any(v is not None for v in self.spend_unit + self.min_active + self.fixed_cost)
            or self.max_active is not None
        )
        if self.rows:
            self.A = np.array([r[0] for r in self.rows])
            self.row_lo = np.array([r[1] for r in self.rows])
            self.row_hi = np.array([r[2] for r in self.rows])
        else:
            self.A = np.zeros((0, self.n))
            self.row_lo = np.zeros(0)
            self.row_hi = np.zeros(0)

    def index(self, name):
        return self.channels.index(name)

    def group(self, names, periods):
        a = self.np.zeros(self.n)
        ps = range(self.T) if periods is None else periods
        for nm in names:
            ci = self.index(nm)
            for t in ps:
                a[ci * self.T + t] = 1.0
        return a

    def _constraint(self, i, con):
        np = self.np
        kind = con["kind"]
        periods = con.get("periods")
        lo = con.get("min")
        hi = con.get("max")
        if kind == "share":
            g = self.group(con["channels"], periods)
            al = self.group(self.channels, periods)
            if lo is not None:
                self.rows.append((g - lo * al, 0.0, np.inf, f"constraints[{i}]"))
            if hi is not None:
                self.rows.append((g - hi * al, -np.inf, 0.0, f"constraints[{i}]"))
        elif kind == "ratio":
            g = self.group(con["channels"], periods)
            o = self.group(con["over"], periods)
            if lo is not None:
                self.rows.append((g - lo * o, 0.0, np.inf, f"constraints[{i}]"))
            if hi is not None:
                self.rows.append((g - hi * o, -np.inf, 0.0, f"constraints[{i}]"))
        elif kind == "spend":
            g = self.group(con["channels"], periods)
            self.rows.append(
                (g, -np.inf if lo is None else lo, np.inf if hi is None else hi, f"constraints[{i}]")
            )
        elif kind == "max_change":
            rate = float(con["max_rate"])
            names = con.get("channels") or self.channels
            for nm in names:
                ci = self.index(nm)
                for t in range(1, self.T):
                    cur, prev = ci * self.T + t, ci * self.T + t - 1
                    a = np.zeros(self.n)
                    a[cur], a[prev] = 1.0, -(1.0 + rate)
                    self.rows.append((a, -np.inf, 0.0, f"constraints[{i}]"))
                    b = np.zeros(self.n)
                    b[cur], b[prev] = 1.0, -(1.0 - rate)
                    self.rows.append((b, 0.0, np.inf, f"constraints[{i}]"))
        elif kind == "linear":
            a = np.zeros(self.n)
            for term in con["terms"]:
                a += float(term["coef"]) * self.group([term["channel"]], term.get("periods"))
            rhs = float(con["rhs"])
            op = con["op"]
            lo_, hi_ = {"<=": (-np.inf, rhs), ">=": (rhs, np.inf), "==": (rhs, rhs)}[op]
            self.rows.append((a, lo_, hi_, f"constraints[{i}]"))
        elif kind == "min_roi":
            self.min_roi.append(float(con["value"]))
        else:
            raise SystemExit(f"unknown constraint kind {kind}")

    # -- model ------------------------------------------------------------------------

    def adstocked(self, x):
        X = x.reshape(self.C, self.T)
        return self.np.einsum("ctk,ck->ct", self.W, X)

    def curve(self, A):
        """f, f', f'' of every channel's curve at the adstocked spend A (C x T)."""
        np = self.np
        A = np.maximum(A, 0.0)
        F = np.zeros_like(A)
        D1 = np.zeros_like(A)
        D2 = np.zeros_like(A)
        for ci, kind in enumerate(self.kind):
            a = A[ci]
            b = self.beta[ci]
            if kind == "linear":
                F[ci], D1[ci] = b * a, b
            elif kind == "hill":
                k, s = self.k[ci], self.s[ci]
                ad = np.maximum(a, 1e-12 * k)
                t = (ad / k) ** s
                u = 1.0 + t
                F[ci] = np.where(a > 0, b * t / u, 0.0)
                D1[ci] = b * s * t / (ad * u * u)
                D2[ci] = b * s * t * ((s - 1.0) - (s + 1.0) * t) / (ad * ad * u ** 3)
            elif kind == "exponential":
                k = self.k[ci]
                e = np.exp(-a / k)
                F[ci] = -b * np.expm1(-a / k)
                D1[ci] = b / k * e
                D2[ci] = -b / (k * k) * e
            elif kind == "logistic":
                lam = self.lam[ci]
                th = np.tanh(0.5 * lam * a)
                sech2 = 1.0 - th * th
                F[ci] = b * th
                D1[ci] = 0.5 * b * lam * sech2
                D2[ci] = -0.5 * b * lam * lam * th * sech2
            elif kind == "log":
                k = self.k[ci]
                F[ci] = b * np.log1p(a / k)
                D1[ci] = b / (k + a)
                D2[ci] = -b / (k + a) ** 2
            elif kind == "power":
                al = self.alpha[ci]
                ad = np.maximum(a, 1e-12)
                F[ci] = b * a ** al
                D1[ci] = b * al * ad ** (al - 1.0)
                D2[ci] = b * al * (al - 1.0) * ad ** (al - 2.0)
            else:
                raise SystemExit(f"unknown curve kind {kind}")
        return F, D1, D2

    def response(self, x):
        F, _, _ = self.curve(self.adstocked(x))
        return float((F * self.d).sum())

    def response_grad(self, x):
        F, D1, _ = self.curve(self.adstocked(x))
        G = D1 * self.d  # dR/da, C x T
        grad = self.np.einsum("ctk,ct->ck", self.W, G).reshape(self.n)
        return float((F * self.d).sum()), grad

    def response_hessp(self, x, v):
        _, _, D2 = self.curve(self.adstocked(x))
        Av = self.adstocked(v)
        return self.np.einsum("ctk,ct->ck", self.W, D2 * self.d * Av).reshape(self.n)

    def fixed_costs(self, x):
        X = x.reshape(self.C, self.T)
        return sum(
            fc for ci, fc in enumerate(self.fixed_cost) if fc is not None and X[ci].sum() > 0
        )

    def objective_value(self, x):
        if self.objective == "min_spend":
            return float(x.sum())
        r = self.response(x) - (self.fixed_costs(x) if self.objective == "response" else 0.0)
        if self.objective == "profit":
            return self.margin * self.response(x) - float(x.sum()) - self.fixed_costs(x)
        return r

    def maximize(self):
        return self.objective != "min_spend"

    def nonlinear(self):
        return bool(self.min_roi) or self.objective == "min_spend"

    def violation(self, x):
        np = self.np
        v = max(0.0, float(np.max(self.lb - x, initial=0.0)), float(np.max(x - self.ub, initial=0.0)))
        if len(self.rows):
            ax = self.A @ x
            v = max(v, float(np.max(self.row_lo - ax, initial=0.0)), float(np.max(ax - self.row_hi, initial=0.0)))
        if self.nonlinear():
            r = self.response(x)
            for val in self.min_roi:
                v = max(v, val * x.sum() - r)
            if self.objective == "min_spend":
                v = max(v, float(self.target) - r)
        return v

    def nonconcave(self):
        return [
            self.channels[ci]
            for ci, kind in enumerate(self.kind)
            if kind == "hill" and self.s[ci] > 1.0
        ]

    def start(self):
        """The even split of the budget (of the cap for min_spend), within the bounds."""
        return project_box_budget(
            self.np.full(self.n, self.budget / self.n), self.lb, self.ub, self.budget, True
        )


def project_box_budget(y, lb, ub, budget, exact):
    """Euclidean projection onto {lb <= x <= ub, sum x = budget} (or <= budget), by
    bisection on the multiplier."""
    import numpy as np

    x = np.clip(y, lb, ub)
    if not exact and x.sum() <= budget:
        return x
    lo, hi = float(np.min(y - ub)), float(np.max(y - lb))
    ubf = np.where(np.isfinite(ub), ub, budget)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.clip(y - mid, lb, ubf).sum() > budget:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * max(1.0, abs(mid)):
            break
    return np.clip(y - 0.5 * (lo + hi), lb, ubf)


# ---- solvers --------------------------------------------------------------------------


class Counter:
    def __init__(self, deadline):
        self.evaluations = 0
        self.gradients = 0
        self.iterations = 0
        self.model_time = 0.0
        self.deadline = deadline
        self.last = None

    def check_time(self):
        if time.perf_counter() > self.deadline:
            raise OutOfTime()


def scaled_functions(p, counter, B):
    """Objective, constraints and their derivatives in u = x / B, with the objective divided
    by a reference response so that every number is of order one."""
    np = p.np
    ref = max(abs(p.response(p.start())), 1.0)
    sign = -1.0 if p.maximize() else 1.0

    def fun(u):
        counter.check_time()
        t = time.perf_counter()
        x = B * u
        counter.last = u.copy()
        counter.evaluations += 1
        if p.objective == "min_spend":
            v = u.sum()
        else:
            r = p.response(x)
            v = sign * (p.margin * r - x.sum() if p.objective == "profit" else r) / ref
        counter.model_time += time.perf_counter() - t
        return v

    def jac(u):
        t = time.perf_counter()
        x = B * u
        counter.gradients += 1
        if p.objective == "min_spend":
            g = np.ones(p.n)
        else:
            _, gr = p.response_grad(x)
            g = sign * B * (p.margin * gr - 1.0 if p.objective == "profit" else gr) / ref
        counter.model_time += time.perf_counter() - t
        return g

    def hessp_obj(u, v):
        if p.objective == "min_spend":
            return np.zeros(p.n)
        m = p.margin if p.objective == "profit" else 1.0
        return sign * m * B * B * p.response_hessp(B * u, v) / ref

    # Nonlinear rows g(u) >= 0: min_roi and the min_spend target.
    def nl(u):
        x = B * u
        r = p.response(x)
        out = [(r - val * x.sum()) / ref for val in p.min_roi]
        if p.objective == "min_spend":
            out.append((r - float(p.target)) / ref)
        return np.array(out)

    def nl_jac(u):
        x = B * u
        _, gr = p.response_grad(x)
        rows = [B * (gr - val) / ref for val in p.min_roi]
        if p.objective == "min_spend":
            rows.append(B * gr / ref)
        return np.array(rows)

    def nl_jac_sparse(u):
        from scipy.sparse import csr_matrix

        return csr_matrix(nl_jac(u))

    def nl_hessp(u, v, w):
        """sum_i w_i * Hessian of nonlinear row i, times v."""
        h = B * B * p.response_hessp(B * u, v) / ref
        return float(np.sum(w)) * h

    return fun, jac, hessp_obj, nl, nl_jac, nl_hessp, ref, nl_jac_sparse


def spend_scale(p):
    """The average spend per variable: as the unit of spend, it keeps interior-point and
    conic solvers well scaled whatever the problem's size."""
    return p.budget / p.n


def linear_rows_scaled(p, B):
    """Rows A u in [lo, hi] in u = x / B."""
    return p.A, p.row_lo / B, p.row_hi / B


def solve_slsqp(p, time_limit, seed, x0=None):
    import numpy as np
    from scipy.optimize import minimize

    counter = Counter(time.perf_counter() + time_limit)
    # SLSQP did best with spend in units of the whole budget (of the scalings tried).
    S = p.budget
    fun, jac, _, nl, nl_jac, _, _, _ = scaled_functions(p, counter, S)
    A, lo, hi = linear_rows_scaled(p, S)
    cons = []
    eq = np.isfinite(lo) & np.isfinite(hi) & (lo == hi)
    if eq.any():
        cons.append({"type": "eq", "fun": lambda u, A=A[eq], b=lo[eq]: A @ u - b, "jac": lambda u, A=A[eq]: A})
    lo_m = np.isfinite(lo) & ~eq
    if lo_m.any():
        cons.append({"type": "ineq", "fun": lambda u, A=A[lo_m], b=lo[lo_m]: A @ u - b, "jac": lambda u, A=A[lo_m]: A})
    hi_m = np.isfinite(hi) & ~eq
    if hi_m.any():
        cons.append({"type": "ineq", "fun": lambda u, A=A[hi_m], b=hi[hi_m]: b - A @ u, "jac": lambda u, A=A[hi_m]: -A})
    if p.nonlinear():
        cons.append({"type": "ineq", "fun": nl, "jac": nl_jac})
    bounds = list(zip(p.lb / S, np.where(np.isfinite(p.ub), p.ub / S, None)))
    u0 = (p.start() if x0 is None else project_box_budget(np.asarray(x0, dtype=float), p.lb, p.ub, p.budget, p.budget_mode == "exact")) / S

    def cb(*_):
        counter.iterations += 1

    status = "converged"
    try:
        res = minimize(
            fun, u0, jac=jac, method="SLSQP", bounds=bounds, constraints=cons,
            callback=cb, options={"maxiter": 2000, "ftol": 1e-12},
        )
        u = res.x
        if not res.success:
            status = "max_iterations" if res.status == 9 else "stopped_early"
        message = str(res.message)
    except OutOfTime:
        u, status, message = counter.last, "time_limit", "time limit"
    return S * u, status, counter, message


def solve_trust_constr(p, time_limit, seed):
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, NonlinearConstraint, minimize
    from scipy.sparse import csr_matrix
    from scipy.sparse.linalg import LinearOperator

    counter = Counter(time.perf_counter() + time_limit)
    S = spend_scale(p)
    fun, jac, hessp_obj, nl, _, nl_hessp, _, nl_jac = scaled_functions(p, counter, S)
    A, lo, hi = linear_rows_scaled(p, S)
    n = p.n
    cons = [LinearConstraint(csr_matrix(A), lo, hi)] if len(lo) else []
    if p.nonlinear():
        m = len(p.min_roi) + (1 if p.objective == "min_spend" else 0)
        cons.append(
            NonlinearConstraint(
                nl, 0.0, np.inf, jac=nl_jac,
                hess=lambda u, w: LinearOperator((n, n), matvec=lambda v: nl_hessp(u, v, w)),
            )
        )
    ub = np.where(np.isfinite(p.ub), p.ub / S, np.inf)
    u0 = p.start() / S
    state = {"status": "converged"}

    def cb(xk, st):
        counter.iterations += 1
        counter.last = np.array(xk)
        if time.perf_counter() > counter.deadline:
            state["status"] = "time_limit"
            return True
        return False

    try:
        res = minimize(
            fun, u0, jac=jac, hessp=lambda u, v: hessp_obj(u, v), method="trust-constr",
            bounds=Bounds(p.lb / S, ub, keep_feasible=False), constraints=cons,
            callback=cb, options={"maxiter": 5000, "gtol": 1e-10, "xtol": 1e-12, "verbose": 0},
        )
    except OutOfTime:
        # The limit passed inside an evaluation: keep the last iterate.
        last = counter.last if counter.last is not None else u0
        return S * last, "time_limit", counter, "time limit"
    status = state["status"]
    if status == "converged" and not res.success:
        status = "max_iterations" if res.status == 0 else "stopped_early"
    return S * res.x, status, counter, str(res.message)


class CubeMap:
    """Maps the unit cube onto the bounds and budget (exact projection); other linear rules
    are penalized during the search and enforced at the end by a Euclidean projection."""

    def __init__(self, p):
        import numpy as np

        self.p = p
        self.np = np
        self.hi = np.where(np.isfinite(p.ub), p.ub, p.budget)
        # Rows other than the budget.
        keep = [i for i, r in enumerate(p.rows) if r[3] != "budget"]
        self.A = p.A[keep]
        self.lo = p.row_lo[keep]
        self.hi_rows = p.row_hi[keep]
        self.exact = p.budget_mode == "exact"

    def point(self, z):
        p = self.p
        y = p.lb + self.np.asarray(z) * (self.hi - p.lb)
        return project_box_budget(y, p.lb, p.ub, p.budget, self.exact)

    def penalty(self, x):
        if not len(self.lo):
            return 0.0
        ax = self.A @ x
        v = self.np.maximum(self.lo - ax, 0.0) + self.np.maximum(ax - self.hi_rows, 0.0)
        return float(v.sum()) / self.p.budget

    def repair(self, x):
        """The nearest allocation meeting every linear rule (SLSQP on ||x' - x||^2)."""
        np = self.np
        p = self.p
        if self.penalty(x) == 0.0:
            return x
        from scipy.optimize import minimize

        B = spend_scale(p)
        A, lo, hi = linear_rows_scaled(p, B)
        cons = []
        eq = np.isfinite(lo) & np.isfinite(hi) & (lo == hi)
        if eq.any():
            cons.append({"type": "eq", "fun": lambda u, A=A[eq], b=lo[eq]: A @ u - b, "jac": lambda u, A=A[eq]: A})
        lo_m = np.isfinite(lo) & ~eq
        if lo_m.any():
            cons.append({"type": "ineq", "fun": lambda u, A=A[lo_m], b=lo[lo_m]: A @ u - b, "jac": lambda u, A=A[lo_m]: A})
        hi_m = np.isfinite(hi) & ~eq
        if hi_m.any():
            cons.append({"type": "ineq", "fun": lambda u, A=A[hi_m], b=hi[hi_m]: b - A @ u, "jac": lambda u, A=A[hi_m]: -A})
        u0 = x / B
        res = minimize(
            lambda u: 0.5 * float(((u - u0) ** 2).sum()), u0, jac=lambda u: u - u0,
            method="SLSQP", constraints=cons,
            bounds=list(zip(p.lb / B, np.where(np.isfinite(p.ub), p.ub / B, None))),
            options={"maxiter": 500, "ftol": 1e-15},
        )
        return B * res.x


def blackbox_score(p, cube, counter, ref):
    sign = 1.0 if p.maximize() else -1.0

    def score(z):
        """To minimize: -objective / ref + 100 * relative violation of the rules."""
        counter.check_time()
        t = time.perf_counter()
        x = cube.point(z)
        counter.evaluations += 1
        v = -sign * p.objective_value(x) / ref + 100.0 * cube.penalty(x)
        counter.model_time += time.perf_counter() - t
        return v

    return score


def refuse_blackbox(p):
    if p.nonlinear():
        raise Refused("min_roi / min_spend: these black-box peers handle linear rules only")


def solve_optuna(p, time_limit, seed, sampler_name):
    import numpy as np
    import optuna

    refuse_blackbox(p)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    counter = Counter(time.perf_counter() + time_limit)
    cube = CubeMap(p)
    ref = max(abs(p.objective_value(p.start())), 1.0)
    score = blackbox_score(p, cube, counter, ref)
    if sampler_name == "tpe":
        sampler = optuna.samplers.TPESampler(seed=seed)
        trials = 300
    else:
        sampler = optuna.samplers.CmaEsSampler(seed=seed)
        trials = 1000 + 50 * p.n
    study = optuna.create_study(sampler=sampler, direction="minimize")

    def objective(trial):
        z = np.array([trial.suggest_float(f"z{i}", 0.0, 1.0) for i in range(p.n)])
        return score(z)

    status = "max_evaluations"
    remaining = max(0.0, counter.deadline - time.perf_counter())
    # Optuna enforces the limit itself (between trials); no trial is cut short.
    counter.deadline = math.inf
    study.optimize(objective, n_trials=trials, timeout=remaining)
    done = [t for t in study.trials if t.value is not None]
    if len(done) < trials:
        status = "time_limit"
    counter.iterations = len(study.trials)
    best = study.best_trial
    z = np.array([best.params[f"z{i}"] for i in range(p.n)])
    x = cube.repair(cube.point(z))
    return x, status, counter, f"{len(done)} trials"


def solve_cmaes(p, time_limit, seed):
    import numpy as np
    from cmaes import CMA

    refuse_blackbox(p)
    counter = Counter(time.perf_counter() + time_limit)
    cube = CubeMap(p)
    ref = max(abs(p.objective_value(p.start())), 1.0)
    score = blackbox_score(p, cube, counter, ref)
    bounds = np.tile([0.0, 1.0], (p.n, 1))
    opt = CMA(mean=np.full(p.n, 0.5), sigma=0.3, bounds=bounds, seed=seed)
    budget = 1000 + 100 * p.n
    best_z, best_v = None, np.inf
    status = "max_evaluations"
    try:
        while counter.evaluations < budget:
            sols = []
            for _ in range(opt.population_size):
                z = opt.ask()
                v = score(z)
                sols.append((z, v))
                if v < best_v:
                    best_z, best_v = z, v
            opt.tell(sols)
            counter.iterations += 1
            if opt.should_stop():
                status = "converged"
                break
    except OutOfTime:
        status = "time_limit"
    if best_z is None:
        best_z = np.full(p.n, 0.5)
    x = cube.repair(cube.point(best_z))
    return x, status, counter, f"{counter.evaluations} evaluations"


def cvxpy_model(p, budget=None):
    """The problem as a disciplined convex program: (problem, u, B) with spend x = B * u.
    With `budget` (a cp.Parameter in spend units) the budget row's right-hand side is that
    parameter, so that the program can be re-solved for another budget without being
    built again."""
    import cvxpy as cp
    import numpy as np
    from scipy.sparse import block_diag

    if p.integer:
        raise Refused("integer rules: not a convex program")
    for ci, kind in enumerate(p.kind):
        if kind == "hill" and p.s[ci] != 1.0:
            raise Refused(
                f"hill curve with s = {p.s[ci]} (channel {p.channels[ci]}): not expressible in disciplined convex programming"
            )
        if kind == "logistic":
            raise Refused(
                f"logistic curve (channel {p.channels[ci]}): not expressible in disciplined convex programming"
            )
    # Spend in units of the average spend per variable, so that the conic solver sees
    # numbers of order one whatever the problem's size.
    B = p.budget / p.n
    u = cp.Variable(p.n)
    W = block_diag([p.W[ci] for ci in range(p.C)], format="csr")
    a = W @ u  # adstocked spend in budget units
    ref = max(abs(p.response(p.start())), 1.0)
    terms = []
    for ci, kind in enumerate(p.kind):
        sl = slice(ci * p.T, (ci + 1) * p.T)
        d = p.d * p.beta[ci] / ref
        ac = a[sl]
        if kind == "linear":
            terms.append(d @ (B * ac))
        elif kind == "hill":  # beta a / (a + k) = beta - beta k / (a + k)
            kk = p.k[ci] / B
            terms.append(d.sum() - (d * kk) @ cp.inv_pos(ac + kk))
        elif kind == "exponential":
            kk = p.k[ci] / B
            terms.append(d.sum() - d @ cp.exp(-ac / kk))
        elif kind == "log":
            kk = p.k[ci] / B
            terms.append(d @ cp.log(1 + ac / kk))
        elif kind == "power":
            al = p.alpha[ci]
            terms.append((d * B ** al) @ cp.power(ac, al, approx=False))
    R = cp.sum(cp.hstack(terms)) if len(terms) > 1 else terms[0]
    A, lo, hi = p.A, p.row_lo / B, p.row_hi / B
    cons = [u >= p.lb / B]
    fin = np.isfinite(p.ub)
    if fin.any():
        cons.append(u[fin] <= p.ub[fin] / B)
    for i in range(len(lo)):
        if budget is not None and p.rows[i][3] == "budget":
            if lo[i] == hi[i]:
                cons.append(cp.sum(u) == budget / B)
            else:
                cons.append(cp.sum(u) <= budget / B)
            continue
        row = A[i]
        nz = np.nonzero(row)[0]
        expr = row[nz] @ u[nz]
        if np.isfinite(lo[i]) and lo[i] == hi[i]:
            cons.append(expr == lo[i])
        else:
            if np.isfinite(lo[i]):
                cons.append(expr >= lo[i])
            if np.isfinite(hi[i]):
                cons.append(expr <= hi[i])
    for val in p.min_roi:
        cons.append(R >= val * B / ref * cp.sum(u))
    if p.objective == "min_spend":
        cons.append(R >= float(p.target) / ref)
        obj = cp.Minimize(cp.sum(u))
    elif p.objective == "profit":
        obj = cp.Maximize(p.margin * R - B / ref * cp.sum(u))
    else:
        obj = cp.Maximize(R)
    return cp.Problem(obj, cons), u, B


def solve_cvxpy(p, time_limit, seed):
    import cvxpy as cp
    import numpy as np

    counter = Counter(time.perf_counter() + time_limit)
    prob, u, B = cvxpy_model(p)
    prob.solve(solver=cp.CLARABEL, time_limit=max(time_limit, 0.1))
    counter.iterations = prob.solver_stats.num_iters or 0
    status = {
        "optimal": "optimal",
        "optimal_inaccurate": "converged",
    }.get(prob.status, prob.status)
    if u.value is None:
        raise RuntimeError(f"Clarabel returned no solution (status {prob.status})")
    x = np.maximum(B * np.asarray(u.value).ravel(), p.lb)
    return x, status, counter, prob.status


def solve_highs(p, time_limit, seed):
    """MILP: the response of every (channel, period) bounded by the chords of its concave
    curve through 128 breakpoints (an inner approximation, so the true response of the
    returned allocation is at least what the MILP sees and min_roi / targets stay met);
    integer units, activation binaries for min_active, fixed_cost, max_active_channels."""
    import highspy
    import numpy as np

    if not p.integer:
        raise Refused("continuous problem: the HiGHS peer runs the integer ones")
    if p.nonconcave():
        raise Refused(f"S-curves on {', '.join(p.nonconcave())}: need SOS2 breakpoints")
    counter = Counter(time.perf_counter() + time_limit)
    C, T, n = p.C, p.T, p.n
    B = p.budget
    ref = max(abs(p.response(p.start())), 1.0)
    # Columns: x (n, in units of the budget), a (n), r (n, response / ref), y (C binaries).
    nx, na, nr = 0, n, 2 * n
    ny = 3 * n
    ncols = 3 * n + C
    lb = np.zeros(ncols)
    ub = np.full(ncols, highspy.kHighsInf)
    lb[:n] = p.lb / B
    ub[:n] = np.where(np.isfinite(p.ub), p.ub / B, 1.0)
    lb[nr:nr + n] = -highspy.kHighsInf
    ub[ny:] = 1.0
    cost = np.zeros(ncols)
    sign = 1.0
    if p.objective == "min_spend":
        cost[:n] = 1.0
    else:
        m = p.margin if p.objective == "profit" else 1.0
        for ci in range(C):
            for t in range(T):
                cost[nr + ci * T + t] = m * p.d[t]
        if p.objective == "profit":
            cost[:n] -= B / ref
        for ci, fc in enumerate(p.fixed_cost):
            if fc is not None:
                cost[ny + ci] = -fc / ref
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(max(time_limit, 0.1)))
    h.setOptionValue("random_seed", int(seed) % 2147483647)
    h.addVars(ncols, lb, ub)
    h.changeColsCost(ncols, np.arange(ncols, dtype=np.int32), cost)
    h.changeObjectiveSense(highspy.ObjSense.kMinimize if p.objective == "min_spend" else highspy.ObjSense.kMaximize)
    integrality = []
    int_cols = []
    # Spend units: x = unit * n, n integer (extra columns).
    units = []
    for ci, unit in enumerate(p.spend_unit):
        if unit is not None:
            for t in range(T):
                units.append((ci * T + t, float(unit) / B))
    if units:
        base = ncols
        h.addVars(len(units), np.zeros(len(units)), np.array([ub[j] / s for j, s in units]))
        for i, (j, s) in enumerate(units):
            h.addRow(0.0, 0.0, 2, np.array([j, base + i], dtype=np.int32), np.array([1.0, -s]))
            int_cols.append(base + i)
        ncols += len(units)
    int_cols.extend(range(ny, ny + C))
    h.changeColsIntegrality(
        len(int_cols), np.array(int_cols, dtype=np.int32),
        np.array([highspy.HighsVarType.kInteger] * len(int_cols), dtype=np.uint8),
    )

    def row(lo, hi, idx, val):
        h.addRow(lo, hi, len(idx), np.array(idx, dtype=np.int32), np.array(val, dtype=float))

    # Adstock: a = W x.
    for ci in range(C):
        for t in range(T):
            idx = [na + ci * T + t]
            val = [-1.0]
            for k in range(T):
                w = p.W[ci, t, k]
                if w != 0.0:
                    idx.append(ci * T + k)
                    val.append(w)
            row(0.0, 0.0, idx, val)
    # Linear rules, in budget units.
    A, lo, hi = p.A, p.row_lo / B, p.row_hi / B
    for i in range(len(lo)):
        nz = np.nonzero(A[i])[0]
        row(lo[i] if np.isfinite(lo[i]) else -highspy.kHighsInf,
            hi[i] if np.isfinite(hi[i]) else highspy.kHighsInf, list(nz), list(A[i][nz]))
    # Activation: total <= cap * y, total >= min_active * y; fixed costs and max_active
    # need y too.
    for ci in range(C):
        tot = list(range(ci * T, (ci + 1) * T))
        cap = min(float(ub[:n][ci * T:(ci + 1) * T].sum()), 1.0)
        row(-highspy.kHighsInf, 0.0, tot + [ny + ci], [1.0] * T + [-cap])
        if p.min_active[ci] is not None:
            row(0.0, highspy.kHighsInf, tot + [ny + ci], [1.0] * T + [-p.min_active[ci] / B])
    if p.max_active is not None:
        row(-highspy.kHighsInf, float(p.max_active), list(range(ny, ny + C)), [1.0] * C)
    # Chords: r <= f(a_k)/ref + slope_k (a - a_k) on [0, a_max], 128 breakpoints, denser
    # near zero where curves bend most.
    pts = 128
    for ci in range(C):
        amax = min(float(ub[ci * T:(ci + 1) * T].max()), 1.0) * B
        grid = amax * (np.linspace(0.0, 1.0, pts) ** 2)
        F, _, _ = p.curve(np.tile(grid, (C, 1)))
        f = F[ci] / ref
        for t in range(T):
            j = ci * T + t
            for k in range(pts - 1):
                slope = (f[k + 1] - f[k]) / ((grid[k + 1] - grid[k]) / B)
                # r - slope * a <= f_k - slope * a_k   (a in budget units)
                row(-highspy.kHighsInf, f[k] - slope * grid[k] / B,
                    [nr + j, na + j], [1.0, -slope])
    # Nonlinear rules, on the approximated response (inner, so they hold for the truth).
    resp_idx = [nr + ci * T + t for ci in range(C) for t in range(T)]
    resp_val = [p.d[t] for ci in range(C) for t in range(T)]
    for val in p.min_roi:
        row(0.0, highspy.kHighsInf, resp_idx + list(range(n)), resp_val + [-val * B / ref] * n)
    if p.objective == "min_spend":
        row(float(p.target) / ref, highspy.kHighsInf, resp_idx, resp_val)
    h.run()
    ms = h.getModelStatus()
    sol = h.getSolution()
    if not sol.value_valid:
        raise RuntimeError(f"HiGHS found no solution ({h.modelStatusToString(ms)})")
    col = np.array(sol.col_value)
    u = col[:n]
    # Snap spend units exactly and drop rounding noise on inactive channels.
    for i, (j, s) in enumerate(units):
        u[j] = round(col[3 * n + C + i]) * s
    y = np.round(col[ny:ny + C])
    for ci in range(C):
        if y[ci] == 0:
            u[ci * T:(ci + 1) * T] = 0.0
    info = h.getInfo()
    counter.iterations = int(getattr(info, "mip_node_count", 0))
    status = {
        "Optimal": "optimal",
        "Time limit reached": "time_limit",
    }.get(h.modelStatusToString(ms), h.modelStatusToString(ms))
    return B * u, status, counter, h.modelStatusToString(ms)


SOLVE = {
    "scipy-slsqp": solve_slsqp,
    "scipy-trust-constr": solve_trust_constr,
    "optuna-tpe": lambda p, tl, s: solve_optuna(p, tl, s, "tpe"),
    "optuna-cmaes": lambda p, tl, s: solve_optuna(p, tl, s, "cmaes"),
    "cmaes": solve_cmaes,
    "cvxpy-clarabel": solve_cvxpy,
    "highs": solve_highs,
}


def peak_memory_mb():
    try:
        import resource

        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return kib / 1024.0 if sys.platform != "darwin" else kib / (1024.0 * 1024.0)
    except ImportError:
        return 0.0


def result_json(p, solver, x, status, counter, wall_times, message):
    import numpy as np

    x = np.asarray(x, dtype=float)
    x = np.where(np.abs(x) < 1e-12 * max(p.budget, 1.0), 0.0, np.maximum(x, 0.0))
    X = x.reshape(p.C, p.T)
    wall_sorted = sorted(wall_times)
    median = wall_sorted[len(wall_sorted) // 2] if len(wall_sorted) % 2 else 0.5 * (
        wall_sorted[len(wall_sorted) // 2 - 1] + wall_sorted[len(wall_sorted) // 2]
    )
    return {
        "problem": p.name,
        "optimizer": solver,
        "status": status,
        "objective": p.objective_value(x),
        "bound": None,
        "allocation": {c: [float(v) for v in X[ci]] for ci, c in enumerate(p.channels)},
        "totals": {c: float(X[ci].sum()) for ci, c in enumerate(p.channels)},
        "total_spend": float(x.sum()),
        "max_violation": p.violation(x),
        "metrics": {
            "wall_time_s": median,
            "evaluations": counter.evaluations,
            "gradient_evaluations": counter.gradients,
            "iterations": counter.iterations,
            "model_time_s": counter.model_time,
            "constraint_time_s": 0.0,
            "peak_memory_mb": peak_memory_mb(),
        },
        "peer": {"wall_times_s": wall_times, "message": message, "refused": None, "error": None},
    }


def write(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, path)


def cmd_check(_args):
    out = {"python": platform.python_version(), "solvers": {}}
    for s in SOLVERS:
        miss = missing_packages(s)
        out["solvers"][s] = {"available": not miss, "missing": miss}
    print(json.dumps(out))


def cmd_solve(args):
    import warnings

    # Solver chatter (accuracy notes, approximations) would drown the progress output;
    # the outcome is judged by Atlas's re-evaluation anyway.
    warnings.filterwarnings("ignore")
    doc = read_problem(args.problem)
    solvers = [s for s in args.solvers.split(",") if s] if args.solvers else list(SOLVERS)
    os.makedirs(args.out_dir, exist_ok=True)
    failures = 0
    for solver in solvers:
        path = os.path.join(args.out_dir, f"{solver}.json")
        if solver not in SOLVERS:
            print(f"unknown solver {solver}; solvers: {', '.join(SOLVERS)}", file=sys.stderr)
            failures += 1
            continue
        miss = missing_packages(solver)
        if miss:
            write(path, {"optimizer": solver, "peer": {"error": f"missing Python packages: {' '.join(miss)} (pip install {' '.join(miss)})"}})
            continue
        try:
            p0 = Problem(doc)
            if p0.n > MAX_VARIABLES[solver]:
                raise Refused(f"{p0.n} variables > {MAX_VARIABLES[solver]} for this method")
            if p0.integer and solver != "highs":
                raise Refused("integer rules (spend_unit, min_active, fixed_cost, max_active_channels)")
            for module in MODULES[solver]:
                importlib.import_module(module)
            wall, first = [], None
            for run in range(args.runs):
                t = time.perf_counter()
                p = Problem(doc)
                x, status, counter, message = SOLVE[solver](p, args.time_limit, args.seed + run)
                wall.append(time.perf_counter() - t)
                if first is None:
                    first = (p, x, status, counter, message)
            p, x, status, counter, message = first
            write(path, result_json(p, solver, x, status, counter, wall, message))
        except Refused as e:
            write(path, {"optimizer": solver, "peer": {"refused": str(e)}})
        except Exception as e:  # a peer's failure is a result row, not a crash
            write(path, {"optimizer": solver, "peer": {"error": f"{type(e).__name__}: {e}"}})
    return 1 if failures else 0


def sweep_points(doc, factors):
    start, stop, n = factors.split(":")
    start, stop, n = float(start), float(stop), int(n)
    base = float(doc["budget"])
    return [base * (start + (stop - start) * i / (n - 1)) for i in range(n)] if n > 1 else [base * start]


def point_problem(doc, budget):
    d = dict(doc)
    d["budget"] = budget
    return Problem(d)


def sweep_slsqp(doc, budgets, time_limit):
    """SLSQP in a loop over the budgets, each solve started from the previous plan
    rescaled to the new budget (the warm start a user of SciPy would write)."""
    xs, wall, statuses = [], 0.0, []
    prev = None
    for b in budgets:
        p = point_problem(doc, b)
        x0 = None if prev is None else prev[0] * (b / prev[1])
        t = time.perf_counter()
        x, status, _, _ = solve_slsqp(p, time_limit, 0, x0=x0)
        wall += time.perf_counter() - t
        xs.append(x)
        statuses.append(status)
        prev = (x, b)
    return xs, wall, statuses


def sweep_cvxpy(doc, budgets, time_limit):
    """CVXPY with the budget as a Parameter: the program is built and canonicalized once
    (included in the time), then re-solved for each budget with warm_start."""
    import cvxpy as cp
    import numpy as np

    t = time.perf_counter()
    # Built at the largest budget: the bounds it caps by the budget are then the loosest,
    # and the budget row holds each point to its own budget.
    p = point_problem(doc, max(budgets))
    param = cp.Parameter(nonneg=True, value=budgets[0])
    prob, u, B = cvxpy_model(p, budget=param)
    wall = time.perf_counter() - t
    xs, statuses = [], []
    for b in budgets:
        t = time.perf_counter()
        param.value = b
        prob.solve(solver=cp.CLARABEL, warm_start=True, time_limit=max(time_limit, 0.1))
        wall += time.perf_counter() - t
        if u.value is None:
            raise RuntimeError(f"Clarabel returned no solution at budget {b} (status {prob.status})")
        xs.append(np.maximum(B * np.asarray(u.value).ravel(), p.lb))
        statuses.append({"optimal": "optimal", "optimal_inaccurate": "converged"}.get(prob.status, prob.status))
    return xs, wall, statuses


SWEEPS = {"scipy-slsqp": sweep_slsqp, "cvxpy-clarabel": sweep_cvxpy}


def cmd_sweep(args):
    import warnings

    warnings.filterwarnings("ignore")
    doc = read_problem(args.problem)
    budgets = sweep_points(doc, args.factors)
    solvers = [s for s in args.solvers.split(",") if s] if args.solvers else list(SWEEPS)
    out = {"problem": doc["name"], "budgets": budgets, "solvers": {}}
    for solver in solvers:
        if solver not in SWEEPS:
            out["solvers"][solver] = {"error": f"no sweep for {solver}; sweeps: {', '.join(SWEEPS)}"}
            continue
        miss = missing_packages(solver)
        if miss:
            out["solvers"][solver] = {"error": f"missing Python packages: {' '.join(miss)} (pip install {' '.join(miss)})"}
            continue
        try:
            for module in MODULES[solver]:
                importlib.import_module(module)
            xs, wall, statuses = SWEEPS[solver](doc, budgets, args.time_limit)
            points = []
            for b, x, st in zip(budgets, xs, statuses):
                p = point_problem(doc, b)
                points.append({"budget": b, "status": st, "objective": p.objective_value(x), "max_violation": p.violation(x)})
            out["solvers"][solver] = {"wall_time_s": wall, "points": points}
        except Refused as e:
            out["solvers"][solver] = {"refused": str(e)}
        except Exception as e:  # a peer's failure is a result, not a crash
            out["solvers"][solver] = {"error": f"{type(e).__name__}: {e}"}
    write(args.out, out)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="which solvers can run")
    s = sub.add_parser("solve", help="solve one problem file with the peers")
    s.add_argument("problem")
    s.add_argument("--out-dir", required=True)
    s.add_argument("--solvers", default="")
    s.add_argument("--time-limit", type=float, default=60.0)
    s.add_argument("--runs", type=int, default=1)
    s.add_argument("--seed", type=int, default=0)
    w = sub.add_parser("sweep", help="a budget response curve with each peer that has a sweep")
    w.add_argument("problem")
    w.add_argument("--factors", required=True, help="START:STOP:N, factors of the problem's budget")
    w.add_argument("--out", required=True)
    w.add_argument("--solvers", default="")
    w.add_argument("--time-limit", type=float, default=60.0)
    args = ap.parse_args()
    if args.cmd == "check":
        cmd_check(args)
        return 0
    if args.cmd == "sweep":
        return cmd_sweep(args)
    return cmd_solve(args)


if __name__ == "__main__":
    sys.exit(main())
