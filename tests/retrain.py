"""Run a shipped container's recorded training command again, for the retrain tests."""

import os
import shlex
import shutil
import subprocess
import sys

from flexor.container import Container


def retrain_recorded(tmp_path, path):
    """Run the recorded command of the container at ``path`` in ``tmp_path`` on a copy of the
    sources; return ``(shipped, retrained)`` containers."""
    shipped = Container.load(path)
    args = shlex.split(shipped.metadata["command"])[3:]   # drop "python -m flexor.train"
    target = tmp_path / "weights" / os.path.basename(args[args.index("-o") + 1])
    target.parent.mkdir()
    shutil.copytree("flexor", tmp_path / "flexor")
    run = subprocess.run([sys.executable, "-m", "flexor.train", *args], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return shipped, Container.load(target)
