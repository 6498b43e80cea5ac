"""The feeders' public API: what `feeders.__all__` exports is importable, public and documented."""

from __future__ import annotations

import ast
import importlib
import inspect

import numpy as np
import pytest

import feeders


def _attribute_docstring(module_name: str, name: str) -> str | None:
    """The string literal right after `name = ...` in a module (how a type alias is documented)."""
    tree = ast.parse(inspect.getsource(importlib.import_module(module_name)))
    body = tree.body
    for node, following in zip(body, body[1:], strict=False):
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                return following.value.value
    return None


def _own_docstring(name: str) -> str | None:
    obj = getattr(feeders, name)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        return obj.__doc__ if inspect.isfunction(obj) else vars(obj).get("__doc__")
    home = next(m for m in vars(feeders).values() if inspect.ismodule(m) and getattr(m, name, None) is obj)
    return _attribute_docstring(home.__name__, name)


def test_all_lists_each_name_once():
    assert len(set(feeders.__all__)) == len(feeders.__all__)


@pytest.mark.parametrize("name", feeders.__all__)
def test_every_exported_name_is_importable_public_and_documented(name):
    assert not name.startswith("_")
    namespace: dict = {}
    exec(f"from feeders import {name}", namespace)  # noqa: S102  (the import statement itself is the check)
    assert namespace[name] is getattr(feeders, name)
    doc = _own_docstring(name)
    assert doc and doc.strip(), f"feeders.{name} has no docstring of its own"


@pytest.mark.parametrize("name", [n for n in feeders.__all__ if inspect.isclass(getattr(feeders, n))])
def test_every_public_method_and_property_of_an_exported_class_is_documented(name):
    cls = getattr(feeders, name)
    for attr, value in vars(cls).items():
        if attr.startswith("_"):
            continue
        target = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
        if callable(target):
            assert target.__doc__, f"feeders.{name}.{attr} has no docstring"


def test_the_package_docstring_names_every_export():
    for name in feeders.__all__:
        assert f"`{name}`" in feeders.__doc__


def test_the_row_helpers_count_and_slice_arrays_and_dicts_alike():
    x = np.arange(12).reshape(6, 2)
    assert feeders.n_rows(x) == 6 and feeders.n_rows({"a": x, "b": x[:, 0]}) == 6
    np.testing.assert_array_equal(feeders.slice_rows(x, 2, 4), x[2:4])
    sliced = feeders.slice_rows({"a": x, "b": x[:, 0]}, 2, 4)
    np.testing.assert_array_equal(sliced["b"], [4, 6])


def test_signature_of_describes_arrays_dicts_and_none():
    assert feeders.signature_of(None) is None
    assert feeders.signature_of(np.zeros((5, 3), np.float32)) == feeders.TensorSignature("float32", (3,))
    sig = feeders.signature_of({"ids": np.zeros(5, np.int64)})
    assert sig == {"ids": feeders.TensorSignature("int64", ())}
