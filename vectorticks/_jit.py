"""The one Numba policy of vectorticks.

Every kernel is compiled with ``cache=True`` (compiled once per machine, then loaded from
``__pycache__``), ``nogil=True`` (the sender and source threads keep running) and
``error_model="numpy"`` (division by zero gives inf/NaN like NumPy instead of raising).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numba

F = TypeVar("F", bound=Callable[..., Any])


def jit(*signature: Any, **options: Any) -> Callable[[F], F]:
    """``numba.njit`` with the project's options; extra options override them."""
    opts = {"cache": True, "nogil": True, "error_model": "numpy", **options}
    return numba.njit(*signature, **opts)  # type: ignore[no-any-return]
