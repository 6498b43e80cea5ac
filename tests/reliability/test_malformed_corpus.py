"""50 malformed inputs and configs through skflow's public entry points (`skflow run`, `skflow predict`,
`Estimator`, a canned estimator, `FileDataFeeder`): each one a clear error naming the problem, no
TensorFlow frame in what the user sees, and no model directory changed. The corpus and how an outcome
is classified: `tests/reliability/malformed_corpus.py` (also run by `benchmarks/reliability.py`)."""

from __future__ import annotations

import pytest

from tests.reliability.malformed_corpus import CASES, build_context, run_case


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    """Two trained model dirs (custom and canned) and the data files, shared by every case."""
    return build_context(tmp_path_factory.mktemp("corpus"))


def test_the_corpus_has_50_cases_across_the_entry_points():
    assert len(CASES) == 50 and len({case.name for case in CASES}) == 50
    entries = {case.entry for case in CASES}
    assert {"skflow run", "skflow predict", "Estimator.fit", "Estimator.predict", "DNNClassifier.fit"} <= entries


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_a_malformed_input_gets_a_clear_error_without_a_tf_trace_and_changes_no_model_dir(context, case):
    outcome = run_case(case, context)
    assert not outcome.tf_trace, outcome.message
    assert not outcome.changed, f"{case.name} changed a model directory ({outcome.error}: {outcome.message})"
    assert outcome.clear, f"{outcome.error}: {outcome.message!r} does not match {case.expect!r}"
