"""Type stubs of the native module atlas_mmm._native (the Rust crate atlas-py).

Use the documented API of ``atlas_mmm`` (which wraps these functions) rather than this
module directly."""

from typing import Any, Dict, List, Optional, Sequence, Union

__version__: str

class Problem:
    """A budget-allocation problem of the file contract (``docs/problem-format.md``).

    Immutable: ``with_budget`` returns a new problem."""

    @staticmethod
    def from_file(path: str) -> "Problem":
        """Reads a problem file (``.toml``, ``.json``, ``.yaml``/``.yml``); raises
        ``InputError`` naming the file, the field and the reason."""
    @staticmethod
    def from_dict(d: Dict[str, Any]) -> "Problem":
        """A problem from a dict of the file schema; raises ``InputError`` naming the
        field."""
    def to_dict(self) -> Dict[str, Any]:
        """The problem as a dict of the file schema."""
    def with_budget(self, budget: float) -> "Problem":
        """The same problem with another total budget."""
    def validate(self) -> Dict[str, Any]:
        """Checks values and rules as ``atlas validate`` does; raises ``InputError`` or
        ``InfeasibleError``, else returns ``variables``, ``channels``, ``periods``,
        ``features`` and the capable ``optimizers``."""
    @property
    def name(self) -> str: ...
    @property
    def budget(self) -> float: ...
    @property
    def periods(self) -> int: ...
    @property
    def channels(self) -> List[str]: ...
    @property
    def path(self) -> Optional[str]: ...

def optimize(
    problem: Problem,
    optimizer: Optional[str] = None,
    time_limit: Optional[float] = None,
    seed: Optional[int] = None,
    settings: Optional[Dict[str, Any]] = None,
    model: Any = None,
    start: Optional[Sequence[float]] = None,
) -> Dict[str, Any]: ...
def evaluate(problem: Problem, allocation: Dict[str, Sequence[float]]) -> Dict[str, Any]: ...
def sweep(
    problem: Problem,
    budgets: Union[None, str, Sequence[float]] = None,
    scenarios: Optional[Sequence[Dict[str, Any]]] = None,
    optimizer: Optional[str] = None,
    jobs: Optional[int] = None,
    warm_start: bool = True,
    time_limit: Optional[float] = None,
    seed: Optional[int] = None,
    settings: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]: ...
def optimizers() -> List[Dict[str, Any]]: ...
def rust_solve_times(problem: Problem, optimizer: str, repeats: int = 1) -> List[float]:
    """Wall times (s) of solves done entirely in Rust: the benchmarks' reference."""
