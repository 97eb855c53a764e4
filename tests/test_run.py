"""A single run with checkpoints: resume after an interruption gives the uninterrupted result."""

import pytest

from lrpilot.experiments.run import CHECKPOINT_FILE, RunConfig, read_metrics, run_training


class Stop(Exception):
    pass


def times_removed(history):
    return [m.to_dict() | {"seconds": 0} for m in history]


@pytest.mark.parametrize("controller", ["rule:threshold=0.2", "bold", "cosine"])
def test_interrupted_run_resumes_identically(tmp_path, controller):
    config = RunConfig(task="digits-mlp", controller=controller, seed=2, epochs=4, device="cpu")
    full = run_training(config, tmp_path / "full")

    def stop_after_two(metrics):
        if metrics.epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        run_training(config, tmp_path / "cut", on_epoch=stop_after_two)
    assert (tmp_path / "cut" / CHECKPOINT_FILE).exists()
    resumed = run_training(config, tmp_path / "cut")
    assert times_removed(resumed.history) == times_removed(full.history)
    assert resumed.final["test_acc"] == full.final["test_acc"]
    assert resumed.final["final_lr"] == full.final["final_lr"]
    history, final = read_metrics(tmp_path / "cut" / "metrics.jsonl")
    assert len(history) == 4 and final["epochs_run"] == 4


def test_a_directory_of_another_configuration_is_refused(tmp_path):
    run_training(RunConfig(task="digits-mlp", epochs=1, device="cpu"), tmp_path)
    with pytest.raises(ValueError, match="different configuration"):
        run_training(RunConfig(task="digits-mlp", epochs=2, device="cpu"), tmp_path)


def test_divergence_ends_the_run_as_a_result(tmp_path):
    result = run_training(RunConfig(task="digits-mlp", lr=1e4, optimizer="sgd", epochs=5, device="cpu"), tmp_path)
    assert result.final["diverged"] and result.final["diverged_epoch"] == len(result.history)
    assert result.final["test_acc"] is None
    assert "NaN" not in (tmp_path / "metrics.jsonl").read_text()
