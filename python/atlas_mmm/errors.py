"""The exceptions of atlas_mmm.

Every error that comes from the input names where it comes from, as the ``atlas``
command line does: ``str(e)`` is the command line's message (file, field, reason).

- :class:`InputError` (a :class:`ValueError`): bad problem input; ``.field`` is the
  field path (``channels[2].response.k``), ``.path`` the file (or ``None``).
- :class:`ConfigError` (an :class:`InputError`): an unknown optimizer or a bad setting.
- :class:`InfeasibleError` (an :class:`InputError`): the rules admit no allocation;
  ``.rules`` lists the constraints involved.
- :class:`UnsupportedError` (a :class:`ValueError`): the optimizer cannot honour a
  feature of the problem; ``.features`` names them, ``.alternatives`` the optimizers
  that can.
- :class:`SolverError` (a :class:`RuntimeError`): an optimizer failed for a reason that
  is not the input.
"""

from __future__ import annotations

from typing import List, Optional

__all__ = [
    "AtlasError",
    "InputError",
    "ConfigError",
    "InfeasibleError",
    "UnsupportedError",
    "SolverError",
]


class AtlasError(Exception):
    """Base class of every exception raised by atlas_mmm."""


class InputError(AtlasError, ValueError):
    """Bad input: the problem, a setting or an allocation.

    Attributes:
        field: path of the offending field (``channels[2].response.k``); empty when the
            error concerns the document as a whole (a syntax error, say).
        path: the file the input was read from, or ``None``.
        reason: why the value was rejected.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str = "",
        path: Optional[str] = None,
        reason: str = "",
    ) -> None:
        super().__init__(message)
        self.field = field
        self.path = path
        self.reason = reason or message


class ConfigError(InputError):
    """An unknown optimizer or an invalid optimizer setting.

    Attributes:
        optimizer: the optimizer's name.
        field: the setting (``memory``), ``optimizer`` for an unknown name.
    """

    def __init__(
        self,
        message: str,
        *,
        optimizer: str = "",
        field: str = "",
        reason: str = "",
    ) -> None:
        super().__init__(message, field=field, path=None, reason=reason)
        self.optimizer = optimizer


class InfeasibleError(InputError):
    """The problem's rules admit no allocation.

    Attributes:
        rules: the constraints involved, each as ``field (description)``, most
            implicated first.
        path: the problem file, or ``None``.
        reason: what is known about the conflict.
    """

    def __init__(
        self,
        message: str,
        *,
        rules: Optional[List[str]] = None,
        path: Optional[str] = None,
        reason: str = "",
    ) -> None:
        rules = list(rules or [])
        field = rules[0].split(" ", 1)[0] if rules else ""
        super().__init__(message, field=field, path=path, reason=reason)
        self.rules = rules


class UnsupportedError(AtlasError, ValueError):
    """The optimizer cannot honour some feature of the problem, so it refuses it.

    Attributes:
        optimizer: the optimizer that refused.
        features: the features it cannot honour, each with where it occurs.
        alternatives: registered optimizers that can solve the problem.
    """

    def __init__(
        self,
        message: str,
        *,
        optimizer: str = "",
        features: Optional[List[str]] = None,
        alternatives: Optional[List[str]] = None,
    ) -> None:
        super().__init__(message)
        self.optimizer = optimizer
        self.features = list(features or [])
        self.alternatives = list(alternatives or [])


class SolverError(AtlasError, RuntimeError):
    """An optimizer failed for a reason that is not the input."""
