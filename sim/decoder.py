"""``python -m sim.decoder decoder.v``: check a generated XOR decoder in cocotb against its sidecar
matrix."""

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

from flexor.cli import CliError, CliParser, nonnegative_int, positive_int, run_cli
from flexor.sidecar import Sidecar, sidecar_path

from .runner import SIMULATORS, TestbenchFailed, prepare_build_dir, run_testbench

__all__ = ["check_decoder", "MAX_VECTORS"]

#: Most input vectors one run checks: the test bench holds them all in memory, and every
#: network of up to 20 inputs is checked exhaustively at this count.
MAX_VECTORS = 2 ** 20


def vector_count(text):
    """``--vectors``: an integer 1 .. :data:`MAX_VECTORS`."""
    value = positive_int(text)
    if value > MAX_VECTORS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_VECTORS}, not {text!r}")
    return value


def check_decoder(verilog, *, simulator="icarus", vectors=4096, seed=0, stall=0.3,
                  build_dir=None, waves=False):
    """Simulate ``verilog`` with :mod:`sim.tb_decoder`; return ``(inputs checked, bits checked)``.

    Exhaustive when ``2**nin <= vectors``. Raises :class:`~sim.runner.TestbenchFailed` with the
    first mismatch.
    """
    path = Path(sidecar_path(str(verilog)))
    try:
        sidecar = Sidecar.load(path)
        top, nin, nout = sidecar["top"], sidecar["nin"], sidecar["nout"]
    except (ValueError, KeyError, TypeError) as error:
        raise CliError(f"cannot read sidecar {path}: {error}") from None
    if not isinstance(top, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", top):
        raise CliError(f"sidecar {path}: 'top' must be a Verilog identifier, not "
                       f"{top!r}")
    for name, value in (("nin", nin), ("nout", nout)):
        if type(value) is not int or value < 1:
            raise CliError(f"sidecar {path}: {name!r} must be a positive integer, not "
                           f"{value!r}")
    if not Path(verilog).is_file():
        raise CliError(f"{verilog}: no such file")
    if not 1 <= vectors <= MAX_VECTORS:
        raise CliError(f"vectors must be 1..{MAX_VECTORS}, not {vectors!r}")
    if build_dir is not None:
        build_dir = prepare_build_dir(build_dir)
    with tempfile.TemporaryDirectory(prefix="flexor-sim-") as scratch:
        run_testbench(sources=[verilog], top=top, test_module="sim.tb_decoder",
                      build_dir=build_dir or Path(scratch) / simulator, simulator=simulator,
                      waves=waves,
                      env={"FLEXOR_SIDECAR": str(path.resolve()),
                           "FLEXOR_VECTORS": str(vectors), "FLEXOR_SEED": str(seed),
                           "FLEXOR_STALL": str(stall)})
    checked = min(vectors, 2 ** nin)
    return checked, checked * nout


def probability(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise CliError(f"--stall must be a probability in [0, 1), not {text!r}")
    return value


def main(argv=None):
    parser = CliParser(prog="python -m sim.decoder",
                       description="Check a Verilog XOR decoder written by `python -m gen` against "
                                   "the matrix in its sidecar, in a cocotb simulation.")
    parser.add_argument("verilog", help="the generated .v file (its .json sidecar beside it)")
    parser.add_argument("--simulator", choices=SIMULATORS, default="icarus",
                        help="simulator to run (default: icarus)")
    parser.add_argument("--vectors", type=vector_count, default=65536,
                        help=f"input vectors, at most {MAX_VECTORS}; exhaustive when 2**nin is "
                             f"no more (default: 65536)")
    parser.add_argument("--seed", type=nonnegative_int, default=0,
                        help="seed of random vectors and stalls (default: 0)")
    parser.add_argument("--stall", type=probability, default=0.3,
                        help="registered variant: chance that valid or ready is withheld in a "
                             "cycle (default: 0.3)")
    parser.add_argument("--build-dir", help="keep the simulator's build and log here")
    parser.add_argument("--waves", action="store_true", help="dump a waveform in the build dir")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        inputs, bits = check_decoder(args.verilog, simulator=args.simulator,
                                     vectors=args.vectors, seed=args.seed, stall=args.stall,
                                     build_dir=args.build_dir, waves=args.waves)
    except TestbenchFailed as error:  # a missing simulator is a user error already
        raise CliError(str(error)) from None
    print(f"{args.verilog}: PASS on {args.simulator}: {inputs} inputs, {bits} output bits equal "
          f"M x mod 2 ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli("python -m sim.decoder", main))
