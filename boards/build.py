"""Build a board's bitstream with open tools, read the tools' reports, and flash the board.

Amaranth picks each tool through an environment variable named after it (``YOSYS``,
``NEXTPNR_ICE40``, ``ICEPACK``, ``NEXTPNR_ECP5``, ``ECPPACK``). The ``yowasp`` toolchain points
them at the YoWASP WebAssembly builds from PyPI (the ``fpga`` extra), so a pip install is
enough; ``system`` leaves the environment alone and uses whatever is on ``PATH`` or in those
variables. Builds run in the build directory with relative paths, which the YoWASP sandbox
requires (it sees only the current directory).

The report comes from the tools' own logs: nextpnr's device utilisation and its *last*
"Max frequency" line (the post-route figure; the first one is pre-placement), and the cell
counts of Yosys' final ``stat``.
"""

import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

from amaranth.build.run import LocalBuildProducts

from flexor.errors import InputError, ToolMissing

from .platforms import FAMILIES

__all__ = ["TOOLCHAINS", "build_bitstream", "parse_build_reports",
           "program_board", "bitstream_path", "DESIGN_NAME"]


def _tool_variable(tool):
    """Amaranth's environment variable for a tool (``nextpnr-ice40`` -> ``NEXTPNR_ICE40``)."""
    return tool.upper().replace("-", "_")


#: Environment each toolchain gives the build scripts: YoWASP names every tool ``yowasp-<tool>``.
TOOLCHAINS = {
    "yowasp": {_tool_variable(tool): f"yowasp-{tool}"
               for family in FAMILIES.values() for tool in family.tools},
    "system": {},
}

#: Name of the top-level design, and so of every build product (``top.bin``, ``top.tim``, ...).
DESIGN_NAME = "top"


def _resolve(tool, env):
    """The command that runs ``tool`` under ``env``, or :class:`ToolMissing`."""
    command = env.get(_tool_variable(tool), tool)
    if shutil.which(command, path=env.get("PATH")) is None:
        raise ToolMissing(f"{tool} not found (looked for {command!r}; set "
                          f"{_tool_variable(tool)} or install it)")
    return command


def build_environment(board, toolchain):
    """The environment of a build of ``board`` with ``toolchain``, after checking the tools."""
    if toolchain not in TOOLCHAINS:
        raise ValueError(f"toolchain must be one of {', '.join(TOOLCHAINS)}, not {toolchain!r}")
    env = dict(os.environ)
    env.update(TOOLCHAINS[toolchain])
    if toolchain == "yowasp":
        # pip puts the YoWASP launchers beside this Python, which need not be on PATH
        # (`.venv/bin/python -m boards` without activating the venv).
        env["PATH"] = os.pathsep.join(filter(None, [sysconfig.get_path("scripts"),
                                                    env.get("PATH")]))
    hint = ("install the YoWASP tools with `pip install -e '.[fpga]'`" if toolchain == "yowasp"
            else "install Yosys and nextpnr, or use --toolchain yowasp")
    for tool in board.family.tools:
        try:
            _resolve(tool, env)
        except ToolMissing as error:
            raise ToolMissing(f"{error}: {hint}") from None
    return env


def build_bitstream(board, top, *, build_dir, toolchain="yowasp", quiet=True):
    """Elaborate ``top`` (a board top of :mod:`boards.top` or :mod:`boards.classify`) for
    ``board`` and run synthesis, place and route.

    The caller checks first that the design's memories fit the board. Returns the build
    directory as a ``Path``; raises ``subprocess.CalledProcessError`` when a tool fails (its
    log is in the directory).
    """
    env = build_environment(board, toolchain)
    platform = board.make_platform()
    plan = platform.prepare(top, DESIGN_NAME)
    build_dir = Path(build_dir)
    stdout = subprocess.DEVNULL if quiet else None
    # What execute_local does, with the tools' chatter silenced; the logs stay in build_dir.
    plan.extract(build_dir)
    subprocess.run(["sh", f"{plan.script}.sh"], cwd=build_dir, env=env, stdout=stdout,
                   check=True)
    return build_dir


_UTILISATION = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s", re.MULTILINE)
_FMAX = re.compile(r"Max frequency for clock '[^']*': ([0-9.]+) MHz")
# Yosys >= 0.4x prints "<count> <cell>", older releases "<cell> <count>".
_CELL = re.compile(r"^\s+(?:(\d+)\s+([$\w]+)|([$\w]+)\s+(\d+))\s*$", re.MULTILINE)

def parse_build_reports(board, build_dir):
    """Resource use and post-route Fmax of a finished build, from ``top.tim`` and ``top.rpt``.

    Returns a dict with ``logic_cells``, ``ram_blocks``, ``spram``, ``dsp`` (each ``[used,
    available]``; ``[0, 0]`` where the device has none), ``luts``, ``flip_flops``, ``fmax_mhz``
    and ``timing_met`` (nextpnr's verdict at the constrained clock). Raises ``ValueError``
    naming the file when a figure is missing.
    """
    build_dir = Path(build_dir)
    names = board.family.cells
    nextpnr_log = build_dir / f"{DESIGN_NAME}.tim"
    yosys_log = build_dir / f"{DESIGN_NAME}.rpt"
    nextpnr, yosys = (_read(path) for path in (nextpnr_log, yosys_log))
    utilisation = {name: [int(used), int(total)] for name, used, total
                   in _UTILISATION.findall(nextpnr)}
    frequencies = _FMAX.findall(nextpnr)
    # The final `stat` is the last "Printing statistics." section of the Yosys log.
    final_stat = yosys[yosys.rfind("Printing statistics."):]
    cells = {}
    for count, name, old_name, old_count in _CELL.findall(final_stat):
        cells.setdefault(name or old_name, int(count or old_count))
    missing = [what for what, present in (
        (f"{names['logic']} utilisation", names["logic"] in utilisation),
        (f"{names['ram']} utilisation", names["ram"] in utilisation),
        ("a Max frequency line", frequencies)) if not present]
    if missing:
        raise InputError(f"{nextpnr_log}: no {' and no '.join(missing)}")
    if "Printing statistics." not in yosys:
        raise InputError(f"{yosys_log}: no cell statistics")
    last_fmax = nextpnr[nextpnr.rfind("Max frequency for clock"):].splitlines()[0]
    return {
        "logic_cells": utilisation[names["logic"]],
        "luts": cells.get(names["lut"], 0),
        "flip_flops": sum(count for name, count in cells.items()
                          if name.startswith(names["ff_prefix"])),
        "ram_blocks": utilisation[names["ram"]],
        "spram": utilisation.get(names["spram"], [0, 0]),
        "dsp": utilisation.get(names["dsp"], [0, 0]),
        "fmax_mhz": float(frequencies[-1]),
        "timing_met": "(PASS at" in last_fmax,
    }


def _read(path):
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (did the build finish?)") from None


def bitstream_path(board, build_dir):
    """Where a build of ``board`` in ``build_dir`` leaves its bitstream."""
    return Path(build_dir) / f"{DESIGN_NAME}{board.family.bitstream_suffix}"


def program_board(board, build_dir):
    """Flash the bitstream built in ``build_dir`` through the platform's ``toolchain_program``.

    Raises :class:`~flexor.errors.InputError` when there is no bitstream,
    :class:`~flexor.errors.ToolMissing` when the programmer
    is not installed, and ``RuntimeError`` when it fails (no board attached, most often).
    """
    bitstream = bitstream_path(board, build_dir)
    if not bitstream.is_file():
        raise InputError(f"no bitstream {bitstream}: run `python -m boards build --board "
                         f"{board.name}` first")
    variable, default, install = board.family.programmer
    command = os.environ.get(variable, default)
    if shutil.which(command) is None:
        raise ToolMissing(f"programmer {command!r} not found: install it "
                          f"(`{install}`) or set {variable}")
    platform = board.make_platform()
    try:
        platform.toolchain_program(LocalBuildProducts(str(build_dir)), DESIGN_NAME)
    except subprocess.CalledProcessError as error:
        raise RuntimeError(f"{command} exited with status {error.returncode}: is the "
                           f"{board.name} connected over USB and accessible to this user?") \
            from None
