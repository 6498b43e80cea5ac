"""Argument checks shared by every module of `estimators`: one wording, Keras' ("Invalid value for
argument `steps`. Received: steps='5'. Expected a positive integer.")."""

from __future__ import annotations

import numbers
from typing import Any

__all__ = ["check_non_negative_int", "check_positive_int", "check_positive_number", "invalid_argument"]


def invalid_argument(name: str, value: Any, expected: str) -> ValueError:
    """The error for argument `name` holding `value`, which should be `expected` (a phrase)."""
    return ValueError(f"Invalid value for argument `{name}`. Received: {name}={value!r}. Expected {expected}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_positive_int(name: str, value: Any, allow_none: bool = False) -> int | None:
    """`value` as an int when it is an integer >= 1 (None passes with `allow_none`).

    Strings ("5"), floats (2.5, and 2.0 too), booleans and values below 1 are refused.

    Raises:
        ValueError: "Invalid value for argument `name`. Received: name=... Expected a positive integer."
    """
    if value is None and allow_none:
        return None
    if not _is_int(value) or value < 1:
        raise invalid_argument(name, value, "a positive integer" + (" or None" if allow_none else ""))
    return int(value)


def check_non_negative_int(name: str, value: Any, allow_none: bool = False) -> int | None:
    """`value` as an int when it is an integer >= 0 (0 usually means "off")."""
    if value is None and allow_none:
        return None
    if not _is_int(value) or value < 0:
        raise invalid_argument(name, value, "a non-negative integer" + (" or None" if allow_none else ""))
    return int(value)


def check_positive_number(name: str, value: Any, allow_none: bool = False) -> float | None:
    """`value` when it is a real number > 0 (an int or a float; not a string or a bool)."""
    if value is None and allow_none:
        return None
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value > 0:
        raise invalid_argument(name, value, "a positive number" + (" or None" if allow_none else ""))
    return value
