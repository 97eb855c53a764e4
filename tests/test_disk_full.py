"""A study whose disk fills up stops with one clear error and keeps every finished run.

The fault is injected by a plugin module (imported by the study in the main process and
in every worker, like a user's custom task) that makes lrpilot's atomic writer raise
``OSError(ENOSPC)`` once a flag file exists; the flag is raised as the third run starts.
"""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

import lrpilot.atomic as atomic
from lrpilot.cli import main
from lrpilot.experiments.run import read_metrics

PLUGIN = textwrap.dedent('''
    """Test plugin: the disk "fills up" when the third run of the study writes its first file."""
    import errno, os
    import lrpilot.atomic as atomic

    _write = atomic.write_atomic
    FLAG = os.environ["LRPILOT_TEST_DISK_FLAG"]

    def write_atomic(path, write):
        path = str(path)
        if "__s2" in path and "runs" in path:  # seed 2's runs come third: the disk is full from then on
            open(FLAG, "w").close()
        if os.path.exists(FLAG):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return _write(path, write)

    atomic.write_atomic = write_atomic
''')

ORIGINAL_WRITE = atomic.write_atomic
ARGS = ["compare", "--task", "digits-mlp", "--controller", "rule", "--seeds", "4", "--epochs", "2", "--workers", "1",
        "--device", "cpu", "--no-progress", "--import", "lrpilot_test_diskfull"]


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    (tmp_path / "lrpilot_test_diskfull.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers inherit sys.path
    flag = tmp_path / "disk-full.flag"
    monkeypatch.setenv("LRPILOT_TEST_DISK_FLAG", str(flag))
    monkeypatch.setattr(atomic, "write_atomic", atomic.write_atomic)  # undone at the end: the plugin patches it
    monkeypatch.delitem(sys.modules, "lrpilot_test_diskfull", raising=False)
    return flag


def finished(out):
    done = {}
    for path in sorted((out / "runs").glob("*/metrics.jsonl")):
        parsed = read_metrics(path)
        if parsed and parsed[1] is not None:
            done[path.parent.name] = path.read_bytes()
    return done


def test_a_full_disk_stops_the_study_and_keeps_finished_runs(tmp_path, full_disk, capsys):
    out = tmp_path / "study"
    code = main([*ARGS, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "disk full" in err and "2 finished runs are kept" in err and "run the same command again" in err
    kept = finished(out)
    assert sorted(kept) == ["digits-mlp__rule__lrdefault__s0", "digits-mlp__rule__lrdefault__s1"]
    assert not list(out.rglob("*.tmp"))  # no half-written file left behind
    assert not (out / "runs" / "digits-mlp__rule__lrdefault__s3").exists()  # the study stopped: nothing started after

    full_disk.unlink()  # space is freed: the same command finishes the study without redoing the kept runs
    (tmp_path / "lrpilot_test_diskfull.py").write_text("")  # for the new workers
    atomic.write_atomic = ORIGINAL_WRITE  # and for this process, which imported the plugin already
    assert main([*ARGS, "--out", str(out)]) == 0
    after = finished(out)
    assert len(after) == 4 and all(after[name] == text for name, text in kept.items())
    assert json.loads((out / "study.json").read_text())["study"]["seeds"] == 4
