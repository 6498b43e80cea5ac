"""`make demo`'s job, end to end on a short schedule: trains, evaluates, and resumes."""

from __future__ import annotations

from estimators import demo


def test_demo_trains_evaluates_and_resumes(tmp_path, capsys):
    model_dir = str(tmp_path / "digits")
    first = demo.main(["--model-dir", model_dir, "--steps", "300"])
    assert first["global_step"] == 300 and first["accuracy"] > 0.85
    second = demo.main(["--model-dir", model_dir, "--steps", "100"])
    assert second["global_step"] == 400
    out = capsys.readouterr().out
    assert "Checkpoints:" in out and "model.ckpt-400" in out
