"""`fingerprint`: equal content, equal fingerprint; any change, another one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from feeders import fingerprint


def test_copies_have_the_fingerprint_of_the_original_and_a_changed_value_changes_it():
    x, y = np.arange(12, dtype=np.float32).reshape(4, 3), np.array([0, 1, 0, 1])
    assert fingerprint(x, y) == fingerprint(x.copy(), list(y))
    changed = x.copy()
    changed[2, 1] = 99
    assert fingerprint(changed, y) != fingerprint(x, y)
    assert fingerprint(x.astype(np.float64), y) != fingerprint(x, y)  # the dtype is part of it
    assert fingerprint(x, None) != fingerprint(x, y)


def test_frames_dicts_and_sparse_matrices():
    df = pd.DataFrame({"age": [31, 45], "city": ["oslo", "paris"]})
    assert fingerprint(df) == fingerprint(df.copy()) != fingerprint(df.rename(columns={"age": "years"}))
    assert fingerprint({"a": np.zeros(2), "b": np.ones(2)}) == fingerprint({"b": np.ones(2), "a": np.zeros(2)})
    m = sp.random(5, 4, density=0.5, random_state=0, format="csr")
    assert fingerprint(m) == fingerprint(m.tocsc()) and len(fingerprint(m)) == 64


def test_files_and_directories_hash_their_bytes(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.csv").write_text("x,y\n1,2\n")
    (tmp_path / "d" / "b.csv").write_text("x,y\n3,4\n")
    before = fingerprint(str(tmp_path / "d"), "y")
    (tmp_path / "d" / "b.csv").write_text("x,y\n3,5\n")
    assert fingerprint(str(tmp_path / "d"), "y") != before
    assert fingerprint(str(tmp_path / "d" / "a.csv")) == fingerprint(tmp_path / "d" / "a.csv")


def test_iterators_have_no_fingerprint():
    assert fingerprint(iter([np.zeros(3)])) is None
