"""``python -m boards``: list the supported boards, build the self-test bitstream, flash it."""

import json
import subprocess
import sys
from pathlib import Path

from flexor.cli import CliError, CliParser, positive_int, run_cli, write_files_atomically

from .build import (
    TOOLCHAINS,
    ToolMissing,
    bitstream_path,
    build_bitstream,
    parse_build_reports,
    program_board,
)
from .image import WeightImage, container_layers, word_width
from .platforms import BOARDS, board_by_name
from .report import parse_report
from .simulate import simulate_selftest

PROG = "python -m boards"
#: The trained container shipped with the project.
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "digits_mlp_0p8.npz"


def build_parser():
    parser = CliParser(prog=PROG, description="Build and flash the FleXOR decryptor self-test: "
                       "the encrypted weights in on-chip memory, decrypted by hdl.Decryptor, "
                       "checked against the golden CRC; verdict on the LEDs and the UART.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("list", help="supported boards with device, clock and block RAM")
    build = commands.add_parser("build", help="bitstream plus resource and Fmax report")
    program = commands.add_parser("program", help="flash a built bitstream")
    simulate = commands.add_parser("simulate", help="run the board's logic in Amaranth's "
                                   "simulator and print what its UART sends")
    for sub in (build, program):
        sub.add_argument("--board", required=True, choices=list(BOARDS), metavar="NAME",
                         help=f"one of: {', '.join(BOARDS)}")
        sub.add_argument("--build-dir", metavar="DIR",
                         help="build directory (default: build/<board>)")
    for sub in (build, simulate):
        sub.add_argument("--weights", metavar="FILE", default=str(DEFAULT_WEIGHTS),
                         help="encrypted-weight container (default: the shipped "
                              f"weights/{DEFAULT_WEIGHTS.name})")
        sub.add_argument("--lanes", type=positive_int, default=1,
                         help="chunks decrypted per cycle (default: 1)")
    build.add_argument("--toolchain", choices=list(TOOLCHAINS), default="yowasp",
                       help="yowasp: the YoWASP tools from PyPI (default); system: Yosys and "
                            "nextpnr from PATH or YOSYS, NEXTPNR_ICE40, ... variables")
    build.add_argument("-v", "--verbose", action="store_true", help="show the tools' output")
    return parser


def list_boards():
    print(f"{'board':<12} {'device':<11} {'clock':>7} {'block RAM':>22}")
    for board in BOARDS.values():
        memory = f"{board.ram_bits} bits ({board.ram_blocks} x {board.ram_block_bits})"
        print(f"{board.name:<12} {board.device:<11} {board.clock_hz / 1e6:>4g} MHz "
              f"{memory:>22}")


def load_image(path, lanes):
    """The :class:`WeightImage` of a container file."""
    from flexor.container import Container  # only the build needs the container format

    configs, layers = container_layers(Container.load(path))
    return WeightImage.build(configs, layers, width=word_width(configs, lanes))


def build_report(board, image, *, lanes, weights, toolchain, build_dir):
    """The JSON report of a finished build: what was built, what it used, how fast it runs."""
    figures = parse_build_reports(board, build_dir)
    return {
        "board": board.name, "device": board.device, "toolchain": toolchain,
        "weights": str(weights), "layers": len(image.descriptors), "chunks": image.chunks,
        "nout": image.nout, "lanes": lanes, "word_width": image.width,
        "words": len(image.words), "weight_bits": image.bits, "golden_crc": f"{image.crc:08x}",
        **figures,
        "clock_mhz": board.clock_hz / 1e6,
        # The decryptor's peak rate; it holds when the memory keeps up (lanes*nin <= width).
        "weights_per_second": figures["fmax_mhz"] * 1e6 * lanes * image.nout,
        "bitstream": str(bitstream_path(board, build_dir)),
    }


def print_report(report):
    rows = [
        ("board", f"{report['board']} ({report['device']}, {report['clock_mhz']:g} MHz clock)"),
        ("weights", f"{report['weights']}: {report['layers']} planes, {report['chunks']} chunks, "
                    f"{report['words']} words of {report['word_width']} bits"),
        ("logic cells", "{} / {}".format(*report["logic_cells"])),
        ("LUTs", report["luts"]),
        ("flip-flops", report["flip_flops"]),
        ("RAM blocks", "{} / {}".format(*report["ram_blocks"])),
        ("Fmax", f"{report['fmax_mhz']:.2f} MHz post-route"),
        ("weights/s", f"{report['weights_per_second'] / 1e6:.0f} M (Fmax x {report['lanes']} "
                      f"lanes x Nout {report['nout']})"),
        ("bitstream", report["bitstream"]),
    ]
    for name, value in rows:
        print(f"{name:<12} {value}")


def simulate(weights, lanes):
    """Print the simulated UART line and the golden CRC; status 1 unless the run passed."""
    image = load_image(weights, lanes)
    result = simulate_selftest(image, lanes=lanes)
    print(result.text, end="")
    report = parse_report(result.text)
    print(f"golden CRC {image.crc:08x}, {image.chunks} chunks: the simulated board "
          f"{'matches' if report['crc'] == image.crc else 'DIFFERS'}")
    return 0 if report["passed"] and report["crc"] == image.crc else 1


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "list":
        list_boards()
        return 0
    if args.command == "simulate":
        return simulate(args.weights, args.lanes)
    board = board_by_name(args.board)
    build_dir = Path(args.build_dir or Path("build") / board.name)
    try:
        if args.command == "program":
            program_board(board, build_dir)
            print(f"programmed {board.name} with {bitstream_path(board, build_dir)}")
            return 0
        image = load_image(args.weights, args.lanes)
        image.check_fits(board)
        build_dir.mkdir(parents=True, exist_ok=True)
        build_bitstream(board, image, lanes=args.lanes, build_dir=build_dir,
                        toolchain=args.toolchain, quiet=not args.verbose)
    except (ToolMissing, RuntimeError) as error:
        raise CliError(str(error)) from None
    except subprocess.CalledProcessError as error:
        raise CliError(f"the build failed ({error.cmd[-1]} exited with status "
                       f"{error.returncode}); the tools' logs are in {build_dir}, -v shows "
                       f"their output") from None
    except OSError as error:
        raise CliError(f"cannot use {error.filename}: {error.strerror}") from None
    report = build_report(board, image, lanes=args.lanes, weights=args.weights,
                          toolchain=args.toolchain, build_dir=build_dir)
    report_path = build_dir / "report.json"
    write_files_atomically({str(report_path): json.dumps(report, indent=2) + "\n"})
    print_report(report)
    print(f"{'report':<12} {report_path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(PROG, main))
