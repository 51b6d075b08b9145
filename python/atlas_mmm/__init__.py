"""Atlas from Python: the best allocation of a marketing budget across channels and
periods, solved by the Rust optimizers of Atlas.

>>> import atlas_mmm
>>> problem = atlas_mmm.Problem.from_file("examples/problems/retail_q4.toml")
>>> result = atlas_mmm.optimize(problem, "convex")
>>> result.status, result.gap <= 1e-6
('optimal', True)

Problems follow the file contract (``docs/problem-format.md``) as files or dicts;
results are :class:`Result` objects with numpy allocations. Solves release the GIL and
stop on Ctrl-C (``KeyboardInterrupt``, nothing half-done is returned). Models written in
Python (``optimize(problem, model=obj)``) are optimized by the same optimizers.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import numpy as np

from . import _native
from ._native import Problem
from .errors import (
    AtlasError,
    ConfigError,
    InfeasibleError,
    InputError,
    SolverError,
    UnsupportedError,
)

__version__: str = _native.__version__

__all__ = [
    "Problem",
    "Result",
    "SweepResult",
    "optimize",
    "evaluate",
    "sweep",
    "optimizers",
    "AtlasError",
    "InputError",
    "ConfigError",
    "InfeasibleError",
    "UnsupportedError",
    "SolverError",
]


def _plain(value: Any) -> Any:
    """Settings and allocations as plain Python values (numpy arrays and scalars too)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _pandas():
    try:
        import pandas  # noqa: PLC0415 (optional dependency)
    except ImportError as e:  # pragma: no cover - exercised without pandas
        raise ImportError(
            "to_pandas() needs pandas: pip install pandas (or atlas-mmm[pandas])"
        ) from e
    return pandas


class Result:
    """The result of a solve (the contract's result, ``docs/problem-format.md`` §6).

    Attributes:
        problem: the problem's name.
        optimizer: the optimizer that solved it.
        status: how the solve ended: ``optimal`` (proven within tolerance),
            ``converged``, ``max_iterations``, ``max_evaluations``, ``time_limit``,
            ``stopped_early``, ``cancelled``, ``numerical_error`` or ``infeasible``.
        objective: the true objective of the allocation, computed by the model.
        bound: a proven bound on the optimum (upper when maximizing, lower for
            ``min_spend``), or ``None``.
        allocation: spend per channel, one numpy array of ``periods`` values each.
        totals: spend per channel over all periods.
        total_spend: the total spend.
        max_violation: the largest violation of any rule, in spend units.
        metrics: wall time, evaluations, iterations, model and constraint time, memory.
        selected: which optimizer ``auto`` chose and why, or ``None``.
        budget_multiplier: d objective / d budget at the plan, where known.
    """

    __slots__ = (
        "problem",
        "optimizer",
        "status",
        "objective",
        "bound",
        "allocation",
        "totals",
        "total_spend",
        "max_violation",
        "metrics",
        "selected",
        "budget_multiplier",
        "_extra",
    )

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.problem: str = data["problem"]
        self.optimizer: str = data["optimizer"]
        self.status: str = data["status"]
        self.objective: float = float(data["objective"])
        bound = data.get("bound")
        self.bound: Optional[float] = None if bound is None else float(bound)
        self.allocation: Dict[str, np.ndarray] = {
            name: np.asarray(values, dtype=np.float64)
            for name, values in data["allocation"].items()
        }
        self.totals: Dict[str, float] = dict(data["totals"])
        self.total_spend: float = float(data["total_spend"])
        self.max_violation: float = float(data["max_violation"])
        self.metrics: Dict[str, Any] = dict(data["metrics"])
        self.selected: Optional[Dict[str, str]] = data.get("selected")
        self.budget_multiplier: Optional[float] = data.get("budget_multiplier")
        known = set(self.__slots__)
        self._extra = {k: v for k, v in data.items() if k not in known}

    @property
    def gap(self) -> Optional[float]:
        """``|bound - objective| / max(1, |objective|)`` when a bound is proven, else
        ``None``."""
        if self.bound is None:
            return None
        return abs(self.bound - self.objective) / max(1.0, abs(self.objective))

    def to_dict(self) -> Dict[str, Any]:
        """The result as the contract's result JSON object (lists, not arrays)."""
        out: Dict[str, Any] = {
            "problem": self.problem,
            "optimizer": self.optimizer,
            "status": self.status,
            "objective": self.objective,
            "bound": self.bound,
            "allocation": {k: v.tolist() for k, v in self.allocation.items()},
            "totals": dict(self.totals),
            "total_spend": self.total_spend,
            "max_violation": self.max_violation,
            "metrics": dict(self.metrics),
        }
        if self.selected is not None:
            out["selected"] = dict(self.selected)
        if self.budget_multiplier is not None:
            out["budget_multiplier"] = self.budget_multiplier
        out.update(self._extra)
        return out

    def to_json(self, indent: Optional[int] = 2) -> str:
        """The result JSON of the contract (what ``atlas optimize --output`` writes)."""
        return json.dumps(self.to_dict(), indent=indent)

    def to_pandas(self):
        """A tidy ``pandas.DataFrame`` with one row per channel and period: columns
        ``channel``, ``period``, ``spend``. Needs pandas."""
        pd = _pandas()
        rows = [
            (channel, t, float(v))
            for channel, values in self.allocation.items()
            for t, v in enumerate(values)
        ]
        return pd.DataFrame(rows, columns=["channel", "period", "spend"])

    def __repr__(self) -> str:
        bound = "None" if self.bound is None else f"{self.bound:.6g}"
        return (
            f"Result(problem={self.problem!r}, optimizer={self.optimizer!r}, "
            f"status={self.status!r}, objective={self.objective:.6g}, bound={bound})"
        )


class SweepResult:
    """The result of a sweep (``scenarios.md`` §3): one entry per solved scenario, the
    failed ones in ``errors``.

    Attributes:
        base: the base problem's name.
        optimizer: the optimizer every scenario was solved with.
        scenarios: the solved scenarios (dicts with ``name``, ``budget``, ``status``,
            ``objective``, ``bound``, ``total_spend``, ``totals``, ``marginal_return``,
            ``warm_start``, ``cache``, ``wall_time_s``), in the order given.
        results: the full :class:`Result` of each solved scenario, same order.
        errors: the failed scenarios (``name``, ``budget``, ``kind``, ``message``).
        wall_time_s: wall time of the whole sweep.
    """

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)
        self.base: str = data["base"]
        self.optimizer: str = data["optimizer"]
        self.atlas_version: str = data.get("atlas_version", "")
        self.scenarios: List[Dict[str, Any]] = [
            {k: v for k, v in s.items() if k != "result"} for s in data["scenarios"]
        ]
        self.results: List[Result] = [Result(s["result"]) for s in data["scenarios"]]
        self.errors: List[Dict[str, Any]] = list(data["errors"])
        self.wall_time_s: float = float(data["wall_time_s"])

    def to_dict(self) -> Dict[str, Any]:
        """The sweep result JSON object of the contract."""
        return json.loads(json.dumps(self._data))

    def to_json(self, indent: Optional[int] = 2) -> str:
        """The sweep result JSON (what ``atlas sweep --format json`` writes)."""
        return json.dumps(self._data, indent=indent)

    def to_pandas(self):
        """A ``pandas.DataFrame`` with one row per solved scenario: ``name``,
        ``budget``, ``status``, ``objective``, ``bound``, ``total_spend``,
        ``marginal_return``, ``warm_start``, ``cache``, ``wall_time_s`` and one
        ``total:CHANNEL`` column per channel. Needs pandas."""
        pd = _pandas()
        rows = []
        for s in self.scenarios:
            row = {k: v for k, v in s.items() if k != "totals"}
            for channel, total in s["totals"].items():
                row[f"total:{channel}"] = total
            rows.append(row)
        return pd.DataFrame(rows)

    def __len__(self) -> int:
        return len(self.scenarios)

    def __repr__(self) -> str:
        return (
            f"SweepResult(base={self.base!r}, optimizer={self.optimizer!r}, "
            f"scenarios={len(self.scenarios)}, errors={len(self.errors)})"
        )


def optimize(
    problem: Problem,
    optimizer: str = "auto",
    *,
    time_limit: Optional[float] = None,
    seed: Optional[int] = None,
    model: Any = None,
    start: Union[None, Result, Mapping[str, Sequence[float]], Sequence[float]] = None,
    **settings: Any,
) -> Result:
    """Finds the best allocation of ``problem``.

    Args:
        problem: the problem.
        optimizer: a registered optimizer (see :func:`optimizers`); ``"auto"`` picks one
            from the problem's features where this build has ``auto``, else uses the
            command line's default (``lbfgs``).
        time_limit: stop after this many seconds (status ``time_limit``, best plan).
        seed: seed of optimizers that draw random numbers.
        model: a response model written in Python, in place of the problem's curves: an
            object with ``value(x) -> float`` where ``x`` is the flat spend vector
            (``numpy`` array, channel-major: ``x[c * periods + t]``), and optionally
            ``gradient(x) -> array`` (or ``value_and_gradient(x) -> (float, array)``,
            one call for both), ``value_batch(X) -> array`` (``X`` a 2-d array, one
            point per row) and ``hessian_diagonal(x) -> array`` (preconditions gradient
            methods). A true ``concave`` attribute declares it concave. An
            exception it raises ends the solve and is raised here.
        start: a warm start: a previous :class:`Result`, a channel → spend mapping, or
            the flat vector.
        **settings: the optimizer's settings (``multi_start=16``, ``max_iterations=50``:
            see each optimizer's defaults in :func:`optimizers`).

    Returns:
        The :class:`Result`.

    Raises:
        InputError: bad problem or setting (:class:`ConfigError`), infeasible rules
            (:class:`InfeasibleError`).
        UnsupportedError: the optimizer cannot honour a feature of the problem.
        KeyboardInterrupt: Ctrl-C during the solve (the solve is cancelled).
    """
    flat_start: Optional[List[float]] = None
    if start is not None:
        if isinstance(start, Result):
            start = start.allocation
        if isinstance(start, Mapping):
            flat_start = []
            for name in problem.channels:
                if name not in start:
                    raise InputError(
                        f"start.{name}: missing: every channel of the problem needs its spend",
                        field=f"start.{name}",
                    )
                flat_start.extend(float(v) for v in np.asarray(start[name]).ravel())
        else:
            flat_start = [float(v) for v in np.asarray(start, dtype=np.float64).ravel()]
    data = _native.optimize(
        problem,
        optimizer,
        time_limit,
        seed,
        _plain(settings) if settings else None,
        model,
        flat_start,
    )
    return Result(data)


def evaluate(
    problem: Problem,
    allocation: Union[Result, Mapping[str, Sequence[float]]],
) -> Dict[str, Any]:
    """Objective, total spend and rule violations of an allocation (``atlas evaluate``).

    Args:
        problem: the problem.
        allocation: a :class:`Result`, or a mapping channel → spend per period.

    Returns:
        A dict with ``objective``, ``max_violation``, ``feasible``, ``total_spend``,
        ``totals`` (per channel) and ``violations`` (``(rule, amount)`` pairs).

    Raises:
        InputError: an unknown or missing channel, a wrong number of periods, or a
            negative or non-finite spend (``.field`` is ``allocation.CHANNEL[t]``).
    """
    if isinstance(allocation, Result):
        allocation = allocation.allocation
    if not isinstance(allocation, Mapping):
        raise InputError(
            "allocation: a mapping channel -> spend per period is needed",
            field="allocation",
        )
    return _native.evaluate(problem, _plain(allocation))


def sweep(
    problem: Problem,
    budgets: Union[None, str, Iterable[float]] = None,
    *,
    scenarios: Optional[Sequence[Mapping[str, Any]]] = None,
    optimizer: Optional[str] = None,
    jobs: Optional[int] = None,
    warm_start: bool = True,
    time_limit: Optional[float] = None,
    seed: Optional[int] = None,
    **settings: Any,
) -> SweepResult:
    """Solves many variants of ``problem`` in parallel (``atlas sweep``).

    Args:
        problem: the base problem.
        budgets: budget points: a spec (``"0.5x:2x:16"``: 16 budgets from half to twice
            the problem's; ``"1e6,1.5e6"``) or a list of amounts.
        scenarios: named patches of ``scenarios.md`` (``{"name": "more tv",
            "channels": {"tv": {"max": 3e5}}}``, ``budget_factor``,
            ``add_constraints``, ...); with ``budgets``, every scenario at every point.
        optimizer: the optimizer (default: ``auto`` where registered, else ``lbfgs``).
        jobs: parallel solves (default: one per core).
        warm_start: start each solve from a neighbour's plan.
        time_limit: seconds per scenario.
        seed: seed of optimizers that draw random numbers.
        **settings: the optimizer's settings.

    Returns:
        The :class:`SweepResult` (``to_pandas()`` for a table).
    """
    if budgets is not None and not isinstance(budgets, str):
        budgets = [float(b) for b in budgets]
    if scenarios is not None:
        scenarios = [_plain(s) for s in scenarios]
    data = _native.sweep(
        problem,
        budgets,
        scenarios,
        optimizer,
        jobs,
        warm_start,
        time_limit,
        seed,
        _plain(settings) if settings else None,
    )
    return SweepResult(data)


def optimizers() -> List[Dict[str, Any]]:
    """The optimizers of this build: ``name``, ``summary``, ``capabilities`` and
    ``defaults`` (their settings)."""
    return _native.optimizers()

