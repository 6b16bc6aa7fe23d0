"""``python -m gen``: write the Verilog of a FleXOR XOR-gate decoder and its ``.json`` sidecar."""

import json
import re
import sys
import warnings

from flexor import XorConfig
from flexor.cli import CliError, CliParser, positive_int, nonnegative_int, run_cli
from flexor.cli import write_files_atomically
from flexor.xor_config import DENSE

from .equivalence import check_decoder_file, prove_decoder
from .verilog import DEFAULT_TOP, decoder_files, sidecar_path


def ntap_value(text):
    """``--ntap``: a positive integer or ``dense``."""
    return DENSE if text == DENSE else positive_int(text)


def build_parser():
    parser = CliParser(
        prog="python -m gen",
        description="Generate synthesizable Verilog for a FleXOR XOR-gate decoder (Nin encrypted "
                    "bits -> Nout weight bits) and a JSON sidecar describing it.")
    parser.add_argument("--nin", type=positive_int,
                        help="encrypted bits per chunk (required unless --matrix is given)")
    parser.add_argument("--nout", type=positive_int,
                        help="decrypted weight bits per chunk (required unless --matrix is given)")
    parser.add_argument("--ntap", type=ntap_value, default=2,
                        help="ones per matrix row, 1..nin, or 'dense' for Bernoulli(1/2) rows "
                             "(default: 2)")
    parser.add_argument("--seed", type=nonnegative_int, default=0,
                        help="seed of the random matrix (default: 0)")
    parser.add_argument("--matrix", metavar="FILE",
                        help="take the matrix from FILE (a JSON matrix or an earlier sidecar) "
                             "instead of generating it; --nin/--nout, if given, must agree")
    parser.add_argument("--top", default=DEFAULT_TOP,
                        help=f"Verilog module name (default: {DEFAULT_TOP})")
    parser.add_argument("--registered", action="store_true",
                        help="emit the streaming variant: one register stage with clk, rst and "
                             "valid/ready handshakes (default: combinational)")
    parser.add_argument("-o", "--output", metavar="FILE.v",
                        help="Verilog output; the sidecar goes beside it as FILE.json")
    parser.add_argument("--prove", action="store_true",
                        help="prove with Yosys that the Verilog computes y = M x mod 2 before "
                             "writing it; print 'proven' or a counterexample (exit 1)")
    parser.add_argument("--check", metavar="FILE.v",
                        help="instead of generating, prove an existing FILE.v against the "
                             "matrix in its FILE.json sidecar")
    return parser


def decoder_config(args):
    """The XOR configuration the arguments ask for."""
    if args.matrix is not None:
        config = XorConfig.load(args.matrix)
        for name in ("nin", "nout"):
            given = getattr(args, name)
            if given is not None and given != getattr(config, name):
                raise CliError(f"--{name} {given} disagrees with the {getattr(config, name)} of "
                               f"--matrix {args.matrix}")
        return config
    for name in ("nin", "nout"):
        if getattr(args, name) is None:
            raise CliError(f"--{name} is required unless --matrix is given")
    if args.ntap != DENSE and args.ntap > args.nin:
        raise CliError(f"--ntap {args.ntap} must be <= --nin {args.nin}")
    return XorConfig.random(args.nin, args.nout, args.ntap, args.seed)


def report_proof(proof):
    """Print a :class:`~gen.equivalence.Proof` as one line; return the exit status."""
    if proof.proven:
        print(f"proven: {proof.claim} ({proof.seconds:.1f} s)")
        return 0
    print(f"{proof.verdict}: {proof.counterexample or proof.detail} [claim: {proof.claim}]")
    return 1


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.check is not None:
        if args.output is not None or args.prove:
            raise CliError("--check proves an existing file: it takes no -o or --prove")
        return report_proof(check_decoder_file(args.check))
    if args.output is None:
        raise CliError("the following arguments are required: -o/--output (or --check)")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.top):
        raise CliError(f"--top must be a Verilog identifier, not {args.top!r}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = decoder_config(args)
    for warning in caught:
        print(f"python -m gen: warning: {warning.message}", file=sys.stderr)
    files = decoder_files(config, args.output, top=args.top, registered=args.registered)
    if args.prove:
        # Prove before writing, so an unproven decoder never lands on disk.
        proof = prove_decoder(files[args.output], json.loads(files[sidecar_path(args.output)]))
        if not proof.proven:
            return report_proof(proof)
    write_files_atomically(files)
    print(f"wrote {' and '.join(files)}: {config.nin} -> {config.nout}, ntap {config.ntap}, "
          f"rank {config.rank}" + (", registered" if args.registered else ""))
    return report_proof(proof) if args.prove else 0


if __name__ == "__main__":
    sys.exit(run_cli("python -m gen", main))
