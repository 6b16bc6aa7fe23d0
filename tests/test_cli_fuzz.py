"""Fuzzing the command lines of ``sim``, ``sim.decoder``, ``boards``, ``flexor.train`` and
``flexor.eval``: every argument list works or fails with one ``prog: error: ...`` line.

The property, for every argument list: the entry point (run in-process through its ``main`` and
:func:`flexor.cli.run_cli`, as ``python -m`` runs it) exits 0, or exits 2 with exactly one line
on stderr that starts with ``prog: error:``; no traceback, and no output file or temporary file
left behind by a failed run. Argument lists mix the real options with values that are valid, out
of range, of the wrong type or garbage, paths that are missing, directories, corrupt, truncated
or hostile containers, unknown options and stray words.

The expensive step of each tool is bounded or replaced so that an example takes milliseconds:
``sim`` streams through a stand-in for the cocotb run that returns the golden beats (the Verilog
is still generated); ``sim.decoder`` gets a stand-in simulator; ``boards`` gets stand-ins for the
bitstream build, the Amaranth simulation and the programmer; ``flexor.train`` trains for real but
for one step. A few cases run as real subprocesses at the end.
"""

import contextlib
import copy
import io
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from container_factory import random_container
from flexor.cli import run_cli
from flexor.container import Container, encode_container
from fuzzing import fuzz_settings, note

SHIPPED = Path(__file__).resolve().parent.parent / "weights" / "digits_mlp_0p8.npz"
EXAMPLES = 100
SLOW_FACTOR = 10


# -- files the arguments point at -------------------------------------------------------------

def _write(path, data):
    Path(path).write_bytes(data) if isinstance(data, bytes) else Path(path).write_text(data)
    return str(path)


def _with_metadata(container, **changes):
    header, arrays = container.header(), container.arrays()
    header["metadata"].update(changes)
    return encode_container(header, arrays)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Paths of every kind, made once per module (Hypothesis reuses them across examples)."""
    root = tmp_path_factory.mktemp("cli-fuzz")
    shipped = SHIPPED.read_bytes()
    corrupt = bytearray(shipped)
    corrupt[len(corrupt) // 3] ^= 0x10
    (root / "a-dir").mkdir()
    small = random_container(5)
    paths = {
        "good": str(SHIPPED),
        "corrupt": _write(root / "corrupt.npz", bytes(corrupt)),
        "truncated": _write(root / "truncated.npz", shipped[:len(shipped) // 2]),
        "empty": _write(root / "empty.npz", b""),
        "text": _write(root / "notes.txt", "not a container\n"),
        "dir": str(root / "a-dir"),
        "missing": str(root / "missing.npz"),
        "under-file": str(root / "notes.txt" / "x.npz"),
        # Valid files with hostile content: no data set, odd metadata, no encrypted layer.
        "no-dataset": _write(root / "no-dataset.npz", small.to_bytes()),
        "dataset-name": _write(root / "dataset-name.npz", _with_metadata(
            Container.load(SHIPPED), dataset="digits", model=7)),
        "dataset-cifar": _write(root / "dataset-cifar.npz", _with_metadata(
            Container.load(SHIPPED), dataset={"name": "cifar10"})),
        "dataset-junk": _write(root / "dataset-junk.npz", _with_metadata(
            Container.load(SHIPPED), dataset=[1, 2])),
        "full-only": _write(root / "full-only.npz", _full_precision_only(small).to_bytes()),
    }
    verilog = root / "decoder.v"
    _write(verilog, "module flexor_decoder(); endmodule\n")
    _write(root / "decoder.json", json.dumps({"top": "flexor_decoder", "nin": 8, "nout": 10}))
    _write(root / "nosidecar.v", "module m(); endmodule\n")
    _write(root / "badsidecar.v", "module m(); endmodule\n")
    _write(root / "badsidecar.json", '{"top": ')
    paths.update(verilog=str(verilog), nosidecar=str(root / "nosidecar.v"),
                 badsidecar=str(root / "badsidecar.v"))
    paths["out"] = root / "out"
    paths["out"].mkdir()
    paths["no-dir"] = str(root / "no-such-dir" / "x.npz")
    paths["cwd"] = root / "cwd"
    paths["cwd"].mkdir()
    return paths


def _full_precision_only(container):
    """``container`` with its encrypted layers replaced by float ones (nothing to stream)."""
    layers = []
    for layer in container.layers:
        layer = copy.copy(layer)
        if layer.precision == "xor":
            layer.precision, layer.planes, layer.alpha = "full", [], None
            layer.weight = np.ones(layer.shape, dtype=np.float32)
        layers.append(layer)
    return Container(configs=container.configs, layers=layers, topology=container.topology,
                     tensors=container.tensors, metadata=container.metadata)


# -- argument lists ---------------------------------------------------------------------------

NUMBERS = ["0", "1", "2", "3", "4", "8", "16", "32", "64", "65", "-1", "99999999999999999999",
           "1e3", "0x10", "1.5", "", " 7", "nan", "seven"]
SMALL = ["1", "2", "3", "4", "0", "-1", "65", "99999999999999999999", "1.5", "x", ""]
PROBABILITIES = ["0", "0.3", "0.9", "1", "-0.1", "nan", "inf", "1e-400", "x", ""]
FILE_KINDS = ["good", "corrupt", "truncated", "empty", "text", "dir", "missing", "under-file",
              "no-dataset", "dataset-name", "dataset-cifar", "dataset-junk", "full-only"]
GARBAGE = st.sampled_from(["--", "-", "--nope", "-x", "--help=1", "list", "build", "--weights",
                           "é", "-o", "--seed=3", "--lanes=2"]) | st.text(max_size=6)


def token_strategy(kind, files):
    """Values for one option kind: mostly its own kind of value, sometimes anything."""
    if kind == "number":
        own = st.sampled_from(NUMBERS)
    elif kind == "small":
        own = st.sampled_from(SMALL)
    elif kind == "probability":
        own = st.sampled_from(PROBABILITIES)
    elif kind == "container":
        own = st.sampled_from(FILE_KINDS).map(lambda name: files[name])
    elif kind in ("dir", "output"):
        # Never a path that another example reads (a build may create it): fresh ones instead.
        fresh = st.integers(0, 10 ** 9).map(
            lambda n: str(files["out"] / f"new{n}{'.npz' if kind == 'output' else ''}"))
        own = st.sampled_from(["dir", "text", "under-file", "out", "no-dir"]).map(
            lambda name: str(files[name])) | fresh
    else:
        own = st.sampled_from(kind)
    return own | GARBAGE if isinstance(kind, str) else own


@st.composite
def argument_lists(draw, options, files, positional=None):
    """Up to five option/value pairs (a value sometimes left out) and stray words."""
    argv = []
    if positional is not None and draw(st.integers(0, 3)) > 0:
        argv.append(draw(positional))
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.integers(0, 9)) == 0:
            argv.append(draw(GARBAGE))
            continue
        option = draw(st.sampled_from(sorted(options)))
        argv.append(option)
        kind = options[option]
        if kind is not None and draw(st.integers(0, 11)) > 0:
            argv.append(draw(token_strategy(kind, files)))
    return argv


# -- running one command line -----------------------------------------------------------------

def run(prog, main, argv, cwd):
    """``main(argv)`` as ``python -m`` runs it, in directory ``cwd`` (relative paths drawn from
    garbage words land there); returns ``(status, stdout, stderr)``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            warnings.catch_warnings(), contextlib.chdir(cwd):
        warnings.simplefilter("ignore")  # rank warnings and the like are not errors
        try:
            status = run_cli(prog, main, argv)
        except SystemExit as exit_:  # --help
            status = exit_.code
    return status, out.getvalue(), err.getvalue()


def check_run(prog, main, argv, cwd, outputs=()):
    """Run and check the contract; ``outputs`` must not appear after a failed run.

    Status 1 is the verdict of a check that ran (``sim``: the RTL's weights classify
    differently; ``flexor.eval``: the accuracy differs from the recorded one).
    """
    outputs = [Path(cwd, path) for path in outputs]
    directories = {path.parent for path in outputs}
    before = {path: path.exists() for path in outputs}
    status, out, err = run(prog, main, argv, cwd)
    context = f"{prog} {argv!r}: status {status}, stderr {err!r}"
    assert "Traceback" not in err, context
    if status in (0, None):
        note("works")
    elif status == 1:  # a verdict (sim: RTL differs; eval: accuracy differs from the record)
        assert err.count("\n") <= 1, context
        note("verdict 1")
    else:
        assert status == 2, context
        assert err.count("\n") == 1 and err.endswith("\n"), context
        assert err.startswith(f"{prog}: error: "), context
        for path in outputs:
            assert path.exists() == before[path], f"{context}: {path} left behind"
        note(f"error: {err[len(prog) + 9:][:30]}")
    for directory in directories:
        if directory.is_dir():
            assert not list(directory.glob(".tmp-*")), f"{context}: temporary file left"
    return status, out, err


# -- sim --------------------------------------------------------------------------------------

def golden_check_decryptor(verilog, layers, **_):
    """Stand-in for the cocotb run: the golden beats of the layers, from the sidecar alone."""
    from flexor.stream import as_layer, pack_stream
    from sim.decryptor import load_decryptor_sidecar

    sidecar, configs = load_decryptor_sidecar(verilog)
    packed = pack_stream(configs, [as_layer(configs, layer) for layer in layers],
                         width=sidecar["width"], lanes=sidecar["lanes"])
    return {"beats": len(packed.beats), "words": len(packed.words), "layers": len(layers),
            "cycles": len(packed.beats) + 3, "beat_data": [f"{b.data:x}" for b in packed.beats],
            "seconds": 1.0}


SIM_OPTIONS = {"--weights": "container", "--simulator": ["icarus", "verilator", "ghdl"],
               "--width": "number", "--lanes": "small", "--stall": "probability",
               "--seed": "number", "--build-dir": "dir", "--waves": None, "-h": None}


@st.composite
def sim_arguments(draw, files):
    argv = draw(argument_lists(SIM_OPTIONS, files))
    # Always a fresh build directory unless the example chose one, so nothing is shared.
    return ["--build-dir", str(files["out"] / f"sim{draw(st.integers(0, 10 ** 9))}")] + argv


def _sim_case(files, argv):
    from sim.__main__ import main

    with mock.patch("sim.weights.check_decryptor", golden_check_decryptor):
        check_run("python -m sim", main, argv, files["cwd"])


@pytest.mark.rtl  # generates Verilog with Amaranth for the argument lists that are valid
@fuzz_settings(EXAMPLES // 2)
@given(st.data())
def test_sim_arguments(files, data):
    _sim_case(files, data.draw(sim_arguments(files)))


# -- sim.decoder ------------------------------------------------------------------------------

DECODER_OPTIONS = {"--simulator": ["icarus", "verilator", "x"], "--vectors": "number",
                   "--seed": "number", "--stall": "probability", "--build-dir": "dir",
                   "--waves": None}


@fuzz_settings(EXAMPLES)
@given(st.data())
def test_sim_decoder_arguments(files, data):
    from sim.decoder import main

    positional = st.sampled_from(["verilog", "nosidecar", "badsidecar", "dir", "missing",
                                  "text"]).map(lambda name: files[name])
    argv = data.draw(argument_lists(DECODER_OPTIONS, files, positional))
    with mock.patch("sim.decoder.run_testbench"):
        check_run("python -m sim.decoder", main, argv, files["cwd"])


# -- boards -----------------------------------------------------------------------------------

def golden_selftest(image, *, lanes=1, **_):
    """Stand-in for the Amaranth simulation of the board: a passing UART report."""
    from boards.report import format_report
    from boards.simulate import SimulationResult

    text = format_report(True, image.crc, image.crc, image.chunks, image.chunks + 4)
    return SimulationResult(text, False, True, False, image.chunks + 4)


FIGURES = {"logic_cells": [100, 5280], "ram_blocks": [2, 30], "luts": 90, "flip_flops": 80,
           "fmax_mhz": 50.0}
BOARDS_OPTIONS = {"--board": ["icebreaker", "icestick", "ulx3s-85f", "nope", ""],
                  "--build-dir": "dir", "--weights": "container", "--lanes": "small",
                  "--toolchain": ["yowasp", "system", "x"], "-v": None}
#: Mostly real sub-commands, which must come first for their options to parse.
COMMANDS = ["list", "build", "program", "simulate"] * 3 + ["flash", ""]


def _boards_case(files, argv):
    from boards.__main__ import main

    with mock.patch("boards.__main__.build_bitstream"), \
            mock.patch("boards.__main__.parse_build_reports", return_value=FIGURES), \
            mock.patch("boards.__main__.simulate_selftest", golden_selftest), \
            mock.patch.dict(os.environ, {"ICEPROG": "true", "OPENFPGALOADER": "true"}):
        check_run("python -m boards", main, argv, files["cwd"])


@fuzz_settings(EXAMPLES)
@given(st.data())
def test_boards_arguments(files, data):
    argv = data.draw(argument_lists(BOARDS_OPTIONS, files, st.sampled_from(COMMANDS)))
    _boards_case(files, argv)


# -- flexor.train -----------------------------------------------------------------------------

TRAIN_OPTIONS = {
    "--recipe": ["digits-mlp", "digits-cnn", "cifar10-resnet20", "imagenet"],
    "--dataset": ["digits", "cifar10", "mnist"], "--model": ["mlp", "cnn", "resnet20", "x"],
    "--scheme": ["flexor", "bwn", "fp", "x"], "--nin": ["8", "4,6", "8,8,8", "0", "65", "8,", "a"],
    "--nout": "small", "--ntap": "small", "--q": "small", "--config-seed": "number",
    "--fp-ends": None, "--no-fp-ends": None, "--lr": ["0.01", "0", "-1", "nan", "inf", "x"],
    "--batch-size": "number", "--seed": "number", "--data-root": "dir",
    "--device": ["cpu", "cuda", "cuda:1", "tpu", "x"], "--threads": "small",
    "-o": "output", "--output": "output",
}


@st.composite
def train_arguments(draw, files):
    """Arguments and the output they name (the last ``-o``/``--output`` value wins)."""
    argv = ["-o", str(files["out"] / f"train{draw(st.integers(0, 10 ** 9))}.npz")]
    argv += draw(argument_lists(TRAIN_OPTIONS, files))
    output = [value for option, value in zip(argv, argv[1:]) if option in ("-o", "--output")][-1]
    # The bound: one optimizer step whatever else the example asks for (the last value wins).
    return argv + ["--quiet", "--max-steps", "1", "--epochs", "1"], output


def _train_case(files, argv, output):
    from flexor.train.__main__ import PROG, main

    status, _, _ = check_run(PROG, main, argv, files["cwd"], outputs=[output])
    if status == 0:  # what a successful run wrote is a valid container
        Container.load(Path(files["cwd"], output))


@fuzz_settings(EXAMPLES)
@given(st.data())
def test_train_arguments(files, data):
    _train_case(files, *data.draw(train_arguments(files)))


# -- flexor.eval ------------------------------------------------------------------------------

EVAL_OPTIONS = {"--data-root": "dir", "-h": None}


@fuzz_settings(EXAMPLES // 2)
@given(st.data())
def test_eval_arguments(files, data):
    from flexor.eval import PROG, main

    positional = st.sampled_from(FILE_KINDS).map(lambda name: files[name])
    check_run(PROG, main, data.draw(argument_lists(EVAL_OPTIONS, files, positional)),
              files["cwd"])


# -- the bugs fuzzing found, as plain regression tests ----------------------------------------

@pytest.mark.parametrize("prog, module, argv, message", [
    ("python -m flexor.train", "flexor.train.__main__", ["--device", "cuda", "-o", "{out}/x"],
     "no CUDA device"),
    ("python -m flexor.train", "flexor.train.__main__", ["--device", "x", "-o", "{out}/x"],
     "'x' is not a torch device"),
    ("python -m flexor.train", "flexor.train.__main__", ["--threads", "100000", "-o", "{out}/x"],
     "must be at most the"),
    ("python -m flexor.train", "flexor.train.__main__", ["-o", "{out}"], "is a directory"),
    ("python -m flexor.eval", "flexor.eval", ["{dataset-name}"], None),
    ("python -m sim", "sim.__main__", ["--build-dir", "{text}"], "cannot use"),
    ("python -m sim", "sim.__main__", ["--lanes", "100000"], "lanes must be at most 64"),
    ("python -m boards", "boards.__main__", ["simulate", "--lanes", "100000"],
     "lanes must be at most 64"),
])
def test_found_by_fuzzing(files, prog, module, argv, message):
    """Each of these raised a traceback, crashed torch, or ran for hours before the fix."""
    import importlib

    argv = [arg.format(**{k: v for k, v in files.items()}) for arg in argv]
    main = importlib.import_module(module).main
    with mock.patch("sim.weights.check_decryptor", golden_check_decryptor):
        status, out, err = check_run(prog, main, argv, files["cwd"])
    if message is None:
        assert status in (0, 1) and "digits" in out, (out, err)
    else:
        assert status == 2 and message in err, err


# -- real processes ---------------------------------------------------------------------------

@pytest.mark.parametrize("module, argv", [
    ("sim", ["--width", "12"]),
    ("sim", ["--weights", "{corrupt}"]),
    ("sim.decoder", ["{missing}"]),
    ("boards", ["build", "--board", "nope"]),
    ("boards", ["simulate", "--weights", "{dir}"]),
    ("flexor.train", ["--threads", "100000", "-o", "{out}/t.npz"]),
    ("flexor.eval", ["{truncated}"]),
])
def test_errors_in_a_real_process(files, module, argv):
    argv = [arg.format(**{k: v for k, v in files.items()}) for arg in argv]
    run_ = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent, timeout=120)
    assert run_.returncode == 2 and run_.stdout == "", (run_.returncode, run_.stdout)
    lines = run_.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"python -m {module}: error: "), run_.stderr


# -- slow tier --------------------------------------------------------------------------------

@pytest.mark.slow
@fuzz_settings(EXAMPLES * SLOW_FACTOR)
@given(st.data())
def test_train_arguments_long(files, data):
    _train_case(files, *data.draw(train_arguments(files)))


@pytest.mark.slow
@fuzz_settings(EXAMPLES * SLOW_FACTOR)
@given(st.data())
def test_boards_arguments_long(files, data):
    _boards_case(files, data.draw(argument_lists(BOARDS_OPTIONS, files,
                                                 st.sampled_from(COMMANDS))))
