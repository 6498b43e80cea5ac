"""Reading a pipeline config's text and reporting what is wrong with it, one line per field.

- `yaml_load`: `yaml.safe_load` that reads `1e-4` as the float people mean (PyYAML reads YAML 1.1).
- `format_errors`: a pydantic `ValidationError` as `field.path: message (received: value)` lines.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

__all__ = ["format_errors", "yaml_load"]

# PyYAML reads YAML 1.1, where a float needs a dot: `learning_rate: 1e-4` would be the string "1e-4".
# People write 1e-4 (YAML 1.2 and JSON read it as a number), so the config's loader does too.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def yaml_load(text: str) -> Any:
    """`yaml.safe_load` that also reads exponent numbers without a dot (`1e-4`) as floats.

    Raises:
        yaml.YAMLError: the text is not YAML.
    """
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789."))
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "SqlSource"}


def format_errors(exc: ValidationError) -> str:
    """One line per problem: `field.path: message (received: value)`."""
    errors = exc.errors()
    located = [(".".join(str(p) for p in e["loc"] if str(p) not in _TYPE_TAGS), e) for e in errors]
    # A dict given for a `str | SqlSource` field also fails the `str` branch: that error is noise.
    fields_with_detail = {loc for loc, e in located if e["type"] != "string_type"}
    lines = []
    for loc, error in located:
        if error["type"] == "string_type" and any(f.startswith(loc + ".") for f in fields_with_detail):
            continue
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field (a typo? the fields of each section are listed in flows/config.py)"
        received = error.get("input")
        quiet = error["type"] in ("missing", "value_error") or isinstance(received, (dict, list))
        shown = "" if quiet else f" (received {received!r})"
        named = bool(loc) and message.startswith((loc, loc.split(".")[-1]))
        prefix = "" if named or (not loc and error["type"] == "value_error") else f"{loc or 'config'}: "
        lines.append(f"  {prefix}{message}{shown}")
    return "\n".join(dict.fromkeys(lines))
