"""Argument checks shared by every feeder, with one wording (Keras'):

    Invalid value for argument `batch_size`. Received: batch_size=-3. Expected a positive integer.

As strict as `sklearn.utils.check_scalar(value, name, numbers.Integral, min_val=1)`: booleans,
strings ("5"), floats (2.0 included) and values below 1 are all rejected.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


def _invalid(name: str, value: Any, expected: str) -> ValueError:
    return ValueError(f"Invalid value for argument `{name}`. Received: {name}={value!r}. Expected {expected}.")


def check_positive_int(name: str, value: Any, allow_none: bool = False) -> int | None:
    """`value` as an int when it is an integer >= 1 (None passes through when `allow_none`).

    Raises:
        ValueError: "Invalid value for argument `NAME`. Received: NAME=VALUE. Expected a positive
            integer." (" or None." when `allow_none`).
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise _invalid(name, value, "a positive integer or None" if allow_none else "a positive integer")
    return int(value)


def check_epochs(epochs: Any) -> int | None:
    """`epochs`: a positive integer, or None for endless repetition."""
    return check_positive_int("epochs", epochs, allow_none=True)


def check_positive_number(name: str, value: Any, allow_none: bool = False) -> float | None:
    """`value`, unchanged, when it is a finite real number > 0 (None passes through when `allow_none`)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise _invalid(name, value, "a positive number or None" if allow_none else "a positive number")
    return value


def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> Any:
    """`value` when it is one of `choices` (compared with ==, so strings match by content)."""
    if not any(value is c or (type(value) is type(c) and value == c) for c in choices):
        expected = ", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
        raise _invalid(name, value, expected)
    return value


def check_impute(impute: Any) -> str | None:
    """The imputation strategy: None (no imputation) or "mean"; False means None and True means "mean"."""
    if impute is None or impute is False:
        return None
    if impute is True or impute == "mean":
        return "mean"
    raise _invalid("impute", impute, "None, False, True or 'mean'")
