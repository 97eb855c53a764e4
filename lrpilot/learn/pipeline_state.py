"""Resumable state of the population path of ``lrpilot train-controller`` (``--bc-from`` / ``--population``).

Everything lives in ``OUT/population-state/``, is written atomically (:mod:`lrpilot.atomic`: a
``kill -9`` leaves the old file or the new one, never half of one) and loads with
``torch.load(..., weights_only=True)``; nothing here is ever unpickled:

* ``run.json``: the settings that decide the result, written before any work. A new run refuses
  an ``--out`` that has one (continue it with ``--resume``, or choose another ``--out``), and
  ``--resume`` refuses different settings, except a lower ``finetune_timesteps``: that ends PPO at
  the new total (at once, if its last progress checkpoint is past it) and exports what it has, the
  actor the validation set preferred so far (:attr:`PopulationCheckpoint.shortened_from`).
* ``teacher-data.pt``: the teacher's (observation, action) pairs, written when collection ends.
* ``bc.pt``: behaviour cloning after every epoch: network, Adam state, the shuffling generator,
  torch's global RNG and the epoch (see :func:`~lrpilot.learn.imitation.behaviour_clone`).
* ``daggerN-data.pt``, ``daggerN-bc.pt``: DAgger round N's student rollouts and cloning, as above.
* ``finetune-progress.pt``: PPO's progress every ``checkpoint_every`` steps (policy, optimizer,
  counters, validation curve and best actor, RNGs; :mod:`lrpilot.learn.population_ppo`), removed
  when fine-tuning ends.
* ``finetune.pt``: the PPO fine-tuned actor, written when fine-tuning ends.
* ``elapsed.json``: the wall seconds the run's processes have spent, as of the last save
  (:attr:`PopulationCheckpoint.seconds`), so that a resumed run's ``training_seconds`` counts them all.

A run killed at any moment and continued with ``--resume`` continues where it stopped. Before PPO it
exports the same weights, bit for bit on the CPU, as an uninterrupted run: an interrupted collection
is redone from its start (deterministic for a seed and a number of workers), behaviour cloning
continues after its last finished epoch. PPO continues from its last progress checkpoint with new
episodes (the population's member runs are not saved), so from there on the run is not bit-identical
to an uninterrupted one; at most ``checkpoint_every`` steps are redone.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from lrpilot.atomic import torch_save_atomic, write_json_atomic

__all__ = ["STATE_DIR", "STAGES", "PopulationCheckpoint"]

STATE_DIR = "population-state"
STAGES = ("teacher-data", "bc", "finetune-progress", "finetune")
"""Saved stages, in order; each is ``STAGE.pt`` in the state directory."""
FORMAT = 1


class PopulationCheckpoint:
    """The state directory of one population run: ``settings`` checked, stages saved and loaded.

    Args:
        out: the run's ``--out``; the state goes to ``out/population-state``.
        settings: JSON-ready settings that decide the result (teacher, seed, sizes...).
        resume: continue the run whose state is there (its settings must equal ``settings``);
            False: start a new run, refused when ``out`` already holds one.
    """

    def __init__(self, out: str | Path, settings: Mapping[str, Any], resume: bool) -> None:
        self.dir = Path(out) / STATE_DIR
        self.settings = {"format": FORMAT, **settings}
        self.shortened_from: int | None = None
        """With ``--resume`` and a lower ``finetune_timesteps`` than the run was started with: that number."""
        self._began = time.perf_counter()
        self._earlier = 0.0
        """Wall seconds that earlier processes of this run spent (0 for a new run)."""
        run = self.dir / "run.json"
        for stale in self.dir.glob(".*.tmp"):  # left by a write that a kill interrupted
            stale.unlink(missing_ok=True)
        if not resume:
            if run.exists():
                raise ValueError(f"{out} holds the state of an earlier population run ({run}); add --resume to "
                                 "continue it, or choose another --out")
            write_json_atomic(run, self.settings)
            return
        if not run.exists():
            raise ValueError(f"--resume: no population run state ({run}) to continue; run without --resume")
        saved = json.loads(run.read_text())
        mine = json.loads(json.dumps(self.settings))  # tuples -> lists, as read back
        diff = sorted(k for k in saved.keys() | mine.keys() if saved.get(k) != mine.get(k))
        if diff == ["finetune_timesteps"] and 0 < mine["finetune_timesteps"] < saved["finetune_timesteps"]:
            self.shortened_from, diff = int(saved["finetune_timesteps"]), []
        if diff:
            raise ValueError(f"--resume: {self.dir} was written with different {', '.join(diff)} "
                             f"({', '.join(f'{k}={saved.get(k)!r}' for k in diff)}); use those or another --out")
        elapsed = self.dir / "elapsed.json"
        if elapsed.exists():
            self._earlier = float(json.loads(elapsed.read_text())["seconds"])

    @property
    def seconds(self) -> float:
        """Wall seconds this run has spent: its earlier processes' (up to their last save) and this one's."""
        return self._earlier + time.perf_counter() - self._began

    def record_seconds(self) -> float:
        """Write :attr:`seconds` to ``elapsed.json`` (done by every :meth:`save`) and return what was written, to the
        millisecond: a resumed run starts from it, so what it reports later is never less than what this reports."""
        seconds = round(self.seconds, 3)
        write_json_atomic(self.dir / "elapsed.json", {"seconds": seconds})
        return seconds

    def path(self, stage: str) -> Path:
        if stage not in STAGES and not re.fullmatch(r"dagger[1-9]\d*-(data|bc)", stage):
            raise ValueError(f"stage must be one of {', '.join(STAGES)} or daggerN-data/-bc, got {stage!r}")
        return self.dir / f"{stage}.pt"

    def load(self, stage: str) -> dict[str, Any] | None:
        """The saved state of ``stage`` (tensors and plain values only), or None when not saved yet."""
        import torch

        path = self.path(stage)
        return torch.load(path, weights_only=True) if path.exists() else None

    def save(self, stage: str, state: Mapping[str, Any]) -> None:
        """Write ``stage``'s state atomically, and the seconds spent so far."""
        torch_save_atomic(self.path(stage), dict(state))
        self.record_seconds()

    def saver(self, stage: str) -> Callable[[Mapping[str, Any]], None]:
        """``state -> None`` writing ``stage`` (for ``behaviour_clone(on_epoch=...)``)."""
        return lambda state: self.save(stage, state)
