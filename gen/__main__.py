"""``python -m gen``: write the Verilog of a FleXOR XOR-gate decoder and its ``.json`` sidecar."""

import argparse
import re
import sys
from typing import NamedTuple

from flexor import XorConfig
from flexor.cli import (
    CliError,
    CliParser,
    nonnegative_int,
    output_file,
    positive_int,
    refusals,
    run_cli,
    write_files_atomically,
)
from flexor.container import Container
from flexor.network import StreamedNetwork
from flexor.sidecar import Sidecar
from flexor.xor_config import DENSE

from .decryptor import DEFAULT_DECRYPTOR_TOP, decryptor_files
from .engine import DEFAULT_ENGINE_TOP, engine_files
from .equivalence import check_decoder_file, prove_generated
from .verilog import DEFAULT_TOP, decoder_files, sidecar_path

#: Largest --nin / --nout of a bare decoder: beyond it generation time and memory grow out of
#: proportion to any use (the decryptor's own limit, 64, is checked where it is built).
MAX_DECODER_BITS = 1024


class Top(NamedTuple):
    """A Verilog top that ``python -m gen --<name>`` writes instead of the bare decoder."""

    #: ``--help`` text of its flag.
    help: str
    #: Module name when ``--top`` is not given.
    default_top: str
    #: ``main(args)``: checks what only it reads, writes the files, returns the exit status.
    main: object
    #: Flags of the tops it contains (named when both are given).
    holds: tuple = ()


#: The tops besides the bare decoder, by flag, in ``--help`` order; :func:`top` adds one.
TOPS = {}


def top(name, **fields):
    """Register the decorated ``main(args)`` as the generator of the ``--name`` top."""
    def register(main):
        TOPS[name] = Top(main=main, **fields)
        return main
    return register


def decoder_bits(text):
    """``--nin``/``--nout``: an integer 1 .. :data:`MAX_DECODER_BITS`."""
    value = positive_int(text)
    if value > MAX_DECODER_BITS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_DECODER_BITS}, not {text!r}")
    return value


def ntap_value(text):
    """``--ntap``: a positive integer or ``dense``."""
    return DENSE if text == DENSE else positive_int(text)


def build_parser():
    parser = CliParser(
        prog="python -m gen",
        description="Generate synthesizable Verilog for a FleXOR XOR-gate decoder (Nin encrypted "
                    "bits -> Nout weight bits) and a JSON sidecar describing it.")
    parser.add_argument("--nin", type=decoder_bits, action=ConfigSpec,
                        help="encrypted bits per chunk, 1..1024 (required unless --matrix is "
                             "given); with --decryptor, repeat for one configuration each")
    parser.add_argument("--nout", type=decoder_bits,
                        help="decrypted weight bits per chunk, 1..1024 (required unless "
                             "--matrix is given)")
    parser.add_argument("--ntap", type=ntap_value, default=2,
                        help="ones per matrix row, 1..nin, or 'dense' for Bernoulli(1/2) rows "
                             "(default: 2)")
    parser.add_argument("--seed", type=nonnegative_int, default=0,
                        help="seed of the random matrix (default: 0)")
    parser.add_argument("--matrix", metavar="FILE", action=ConfigSpec,
                        help="take the matrix from FILE (a JSON matrix or an earlier sidecar) "
                             "instead of generating it; --nin/--nout, if given, must agree")
    parser.add_argument("--top",
                        help=f"Verilog module name (default: {DEFAULT_TOP}, with --decryptor "
                             f"{DEFAULT_DECRYPTOR_TOP})")
    parser.add_argument("--registered", action="store_true",
                        help="emit the streaming variant: one register stage with clk, rst and "
                             "valid/ready handshakes (default: combinational)")
    decryptor = parser.add_argument_group(
        "weight-streaming decryptor (see docs/stream-protocol.md)")
    for name, kind in TOPS.items():
        decryptor.add_argument(f"--{name}", action="store_true", help=kind.help)
    decryptor.add_argument("--weights", metavar="CONTAINER",
                           help="take the configuration table from an encrypted-weight "
                                "container (instead of --nin/--matrix)")
    decryptor.add_argument("--width", type=positive_int,
                           help="memory word width: 8, 16, 32 or 64 (default: 32)")
    decryptor.add_argument("--lanes", type=positive_int,
                           help="chunks decrypted per output beat (default: 1)")
    decryptor.add_argument("--pipeline", action="store_true",
                           help="the pipelined decryptor: same ports, protocol and rate, a "
                                "clock close to the XOR network's, more latency and area")
    parser.set_defaults(config_specs=[])
    parser.add_argument("-o", "--output", metavar="FILE.v", type=output_file,
                        help="Verilog output; the sidecar goes beside it as FILE.json")
    parser.add_argument("--minimize", action="store_true",
                        help="share subexpressions between rows (Paar's algorithm) where that "
                             "saves LUTs; the XOR2 count is printed and in the sidecar")
    parser.add_argument("--prove", action="store_true",
                        help="prove with Yosys that the Verilog computes y = M x mod 2 before "
                             "writing it; print 'proven' or a counterexample (exit 1)")
    parser.add_argument("--check", metavar="FILE.v",
                        help="instead of generating, prove an existing FILE.v against the "
                             "matrix in its FILE.json sidecar")
    return parser


class ConfigSpec(argparse.Action):
    """Store the value as usual and also append ``(option, value)`` to ``config_specs``, so the
    decryptor sees every ``--nin``/``--matrix`` in command-line order."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.config_specs = namespace.config_specs + [(self.dest, values)]


def decryptor_configs(args):
    """The decryptor's configuration table: the container's (``--weights``), or one entry per
    ``--nin``/``--matrix`` in command-line order."""
    if args.weights is not None:
        if args.config_specs:
            raise CliError("--weights gives the configurations: drop --nin/--matrix")
        configs = Container.load(args.weights).configs
        if args.nout is not None and configs[0].nout != args.nout:
            raise CliError(f"--nout {args.nout} disagrees with the {configs[0].nout} of "
                           f"--weights {args.weights}")
        return configs
    if not args.config_specs:
        raise CliError("--nin, --matrix or --weights is required")
    configs = []
    for position, (option, value) in enumerate(args.config_specs):
        if option == "matrix":
            config = XorConfig.load(value)
            if args.nout is not None and config.nout != args.nout:
                raise CliError(f"--nout {args.nout} disagrees with the {config.nout} of "
                               f"--matrix {value}")
        else:
            if args.nout is None:
                raise CliError("--nout is required with --nin")
            if args.ntap != DENSE and args.ntap > value:
                raise CliError(f"--ntap {args.ntap} must be <= --nin {value}")
            config = XorConfig.random(value, args.nout, args.ntap, args.seed + position)
        configs.append(config)
    return configs


def decoder_config(args):
    """The XOR configuration the arguments ask for."""
    if args.matrix is not None:
        config = XorConfig.load(args.matrix)
        for name in ("nin", "nout"):
            given, value = getattr(args, name), getattr(config, name)
            if given is not None and given != value:
                raise CliError(f"--{name} {given} disagrees with the {value} of "
                               f"--matrix {args.matrix}")
            if value > MAX_DECODER_BITS:
                raise CliError(f"--matrix {args.matrix}: {name} {value} is more than "
                               f"{MAX_DECODER_BITS}, the limit of --{name}")
        return config
    for name in ("nin", "nout"):
        if getattr(args, name) is None:
            raise CliError(f"--{name} is required unless --matrix is given")
    if args.ntap != DENSE and args.ntap > args.nin:
        raise CliError(f"--ntap {args.ntap} must be <= --nin {args.nin}")
    return XorConfig.random(args.nin, args.nout, args.ntap, args.seed)


def input_files(args):
    """Every file the arguments read: outputs must not overwrite them."""
    return [value for option, value in args.config_specs if option == "matrix"] + \
        ([args.weights] if args.weights is not None else [])


def report_proof(proof):
    """Print a :class:`~gen.equivalence.Proof` as one line; return the exit status."""
    if proof.proven:
        print(f"proven: {proof.claim} ({proof.seconds:.1f} s)")
        return 0
    print(f"{proof.verdict}: {proof.counterexample or proof.detail} [claim: {proof.claim}]")
    return 1


def xor2_line(xor2):
    """``xor2 972 (naive 2464)`` and whether the flat form was kept."""
    kept = "" if xor2["shared"] else ", flat form kept: sharing saves no LUTs"
    return f"xor2 {xor2['built']} (naive {xor2['naive']}{kept})"


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.check is not None:
        if args.output is not None or args.prove:
            raise CliError("--check proves an existing file: it takes no -o or --prove")
        return report_proof(check_decoder_file(args.check))
    if args.output is None:
        raise CliError("the following arguments are required: -o/--output (or --check)")
    chosen = [name for name in TOPS if getattr(args, name)]
    if len(chosen) > 1:
        first, second = chosen[:2]
        holder = second if first in TOPS[second].holds else \
            first if second in TOPS[first].holds else None
        raise CliError(f"--{first} and --{second} exclude each other" +
                       (f" (the {holder} holds one)" if holder else ""))
    kind = TOPS[chosen[0]] if chosen else None
    if args.top is None:
        args.top = kind.default_top if kind else DEFAULT_TOP
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.top):
        raise CliError(f"--top must be a Verilog identifier, not {args.top!r}")
    if kind:
        for option in ("registered", "prove"):
            if getattr(args, option):
                raise CliError(f"--{option} applies to the bare decoder, not --{chosen[0]}")
        return kind.main(args)
    for option in ("width", "lanes", "weights"):
        if getattr(args, option) is not None:
            raise CliError(f"--{option} applies only with "
                           f"{' or '.join(f'--{name}' for name in TOPS)}")
    if args.pipeline:
        raise CliError("--pipeline applies only with --decryptor")
    options = [option for option, _ in args.config_specs]
    if len(options) != len(set(options)):
        raise CliError("--nin and --matrix may be repeated only with --decryptor")
    config = decoder_config(args)
    files = decoder_files(config, args.output, top=args.top, registered=args.registered,
                          minimize=args.minimize)
    sidecar = Sidecar.loads(files[sidecar_path(args.output)])
    if args.prove:
        # Prove before writing, so an unproven decoder never lands on disk.
        proof = prove_generated(files[args.output], sidecar)
        if not proof.proven:
            return report_proof(proof)
    write_files_atomically(files, inputs=input_files(args))
    print(f"wrote {' and '.join(files)}: {config.nin} -> {config.nout}, ntap {config.ntap}, "
          f"rank {config.rank}" + (", registered" if args.registered else "")
          + (f", {xor2_line(sidecar['xor2'])}" if args.minimize else ""))
    return report_proof(proof) if args.prove else 0


@top("decryptor", default_top=DEFAULT_DECRYPTOR_TOP,
     help="emit the decryptor with AXI4-Stream ports instead of the bare network; each --nin "
          "(seed + its position) or --matrix, in command-line order, is one configuration")
def decryptor_main(args):
    configs = decryptor_configs(args)
    width = 32 if args.width is None else args.width
    lanes = 1 if args.lanes is None else args.lanes
    with refusals():
        files = decryptor_files(configs, args.output, width=width, lanes=lanes, top=args.top,
                                pipeline=args.pipeline, minimize=args.minimize)
    write_files_atomically(files, inputs=input_files(args))
    print(f"wrote {' and '.join(files)}: decryptor, nin {'/'.join(str(c.nin) for c in configs)}"
          f" -> nout {configs[0].nout}, width {width}, lanes {lanes}"
          + (", pipelined" if args.pipeline else ""))
    if args.minimize:
        for entry in Sidecar.loads(files[sidecar_path(args.output)])["configs"]:
            print(f"config {entry['index']}: {xor2_line(entry['xor2'])} per lane")
    return 0


@top("engine", default_top=DEFAULT_ENGINE_TOP, holds=("decryptor",),
     help="emit the inference engine (decryptor + datapath, docs/engine.md) for the integer "
          "program of --weights")
def engine_main(args):
    if args.weights is None:
        raise CliError("--engine needs --weights CONTAINER")
    if args.config_specs or args.nout is not None:
        raise CliError("--weights gives the configurations: drop --nin/--nout/--matrix")
    network = StreamedNetwork.from_container(Container.load(args.weights))
    width = 32 if args.width is None else args.width
    lanes = 1 if args.lanes is None else args.lanes
    with refusals():
        files = engine_files(network, args.output, width=width, lanes=lanes, top=args.top)
    write_files_atomically(files, inputs=input_files(args))
    shape = "-".join(str(n) for n in [network.program.inputs] +
                     [layer.outputs for layer in network.program.layers])
    print(f"wrote {' and '.join(files)}: engine {shape}, width {width}, lanes {lanes}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli("python -m gen", main))
