"""``python -m boards``: list the supported boards, build the self-test or the classify
bitstream, flash it, and classify images on a board from the host."""

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

from amaranth.hdl import UnusedElaboratable

from flexor.cli import (CliError, CliParser, nonnegative_int, positive_int, refusals, run_cli,
                        write_files_atomically)
from flexor.container import DIGITS_WEIGHTS, FMNIST_WEIGHTS, Container
from flexor.errors import UserError
from flexor.stream import check_stream_parameters

from .build import (
    TOOLCHAINS,
    bitstream_path,
    build_environment,
    build_bitstream,
    parse_build_reports,
    program_board,
)
from .image import WeightImage, container_layers, word_width
from .platforms import BOARDS, board_by_name
from .report import parse_report
from .simulate import simulate_selftest
from .classify import (DEFAULT_BAUD, ClassifyTop, check_classify_fits, classify_image,
                       engine_options, memory_budget, single_port_budget, streamed_network)
from .host import BoardError, BoardLink, ProgressBar, classify_images
from .protocol import answer_length, request_length
from .top import BoardTop

PROG = "python -m boards"
#: The trained container the self-test decrypts by default.
DEFAULT_WEIGHTS = DIGITS_WEIGHTS
#: The shipped Fashion-MNIST container the classify application runs by default.
DEFAULT_CLASSIFY_WEIGHTS = FMNIST_WEIGHTS
APPS = ("selftest", "classify")


def build_parser():
    parser = CliParser(prog=PROG, description="Build and flash the FleXOR board applications: "
                       "the decryptor self-test (encrypted weights in on-chip memory, decrypted "
                       "by hdl.Decryptor, checked against the golden CRC) and classify (images "
                       "over the UART, classified by hdl.InferenceEngine from those weights).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("list", help="supported boards with device, clock and block RAM")
    build = commands.add_parser("build", help="bitstream plus resource and Fmax report")
    program = commands.add_parser("program", help="flash a built bitstream")
    simulate = commands.add_parser("simulate", help="selftest: run its logic in Amaranth's "
                                   "simulator and print what its UART sends; classify: run its "
                                   "logic in Verilator behind a pseudo-terminal")
    classify = commands.add_parser("classify", help="send test images to a board running the "
                                   "classify application and check its answers")
    for sub in (build, program, classify):
        sub.add_argument("--board", required=True, choices=list(BOARDS), metavar="NAME",
                         help=f"one of: {', '.join(BOARDS)}")
    simulate.add_argument("--board", choices=list(BOARDS), metavar="NAME",
                          default="icebreaker", help="classify: the board whose memory plan "
                          "the engine uses (default: icebreaker)")
    for sub in (build, program, simulate):
        sub.add_argument("--app", choices=APPS, default="selftest",
                         help="selftest (default) or classify")
        sub.add_argument("--build-dir", metavar="DIR",
                         help="build directory (default: build/<board>, "
                              "build/<board>-classify)")
    for sub in (build, simulate, classify):
        sub.add_argument("--weights", metavar="FILE",
                         help=f"encrypted-weight container (default: weights/"
                              f"{DEFAULT_WEIGHTS.name} for the self-test, weights/"
                              f"{DEFAULT_CLASSIFY_WEIGHTS.name} for classify)")
    for sub in (build, simulate):
        sub.add_argument("--lanes", type=positive_int, default=1,
                         help="chunks decrypted per cycle (default: 1)")
    for sub in (build, classify):
        sub.add_argument("--baud", type=positive_int, default=None,
                         help=f"classify protocol rate (default {DEFAULT_BAUD})")
    classify.add_argument("--port", required=True, help="serial port of the board "
                          "(/dev/ttyUSB1, a pty, or a pyserial URL)")
    classify.add_argument("--count", type=positive_int, default=100,
                          help="test images to send, from the first (default: 100)")
    simulate.add_argument("--count", type=positive_int,
                          help="classify: send this many test images through the simulated "
                               "board with the host tool and exit with its status (default: "
                               "print the pty's path and serve until interrupted)")
    classify.add_argument("--timeout", type=float, default=2.0,
                          help="seconds to wait for one answer (default: 2)")
    classify.add_argument("--retries", type=nonnegative_int, default=3,
                          help="times a request is sent again before giving up (default: 3)")
    classify.add_argument("--data-root", metavar="DIR",
                          help="folder of the Fashion-MNIST IDX files (default: Debian's)")
    classify.add_argument("-o", "--output", metavar="FILE",
                          help="also write the figures as JSON")
    build.add_argument("--toolchain", choices=list(TOOLCHAINS), default="yowasp",
                       help="yowasp: the YoWASP tools from PyPI (default); system: Yosys and "
                            "nextpnr from PATH or YOSYS, NEXTPNR_ICE40, ... variables")
    build.add_argument("-v", "--verbose", action="store_true", help="show the tools' output")
    return parser


def list_boards():
    print(f"{'board':<12} {'device':<11} {'clock':>7} {'block RAM':>26}  SPRAM")
    for board in BOARDS.values():
        memory = f"{board.ram_bits} bits ({board.ram_blocks} x {board.ram_block_bits})"
        single = f"{board.spram_blocks} x 16K x 16" if board.spram_blocks else "-"
        print(f"{board.name:<12} {board.device:<11} {board.clock_hz / 1e6:>4g} MHz "
              f"{memory:>26}  {single}")


def load_image(path, lanes):
    """The :class:`WeightImage` of a container file."""
    configs, layers = container_layers(Container.load(path))
    with refusals():    # a lane count the decryptor refuses, before it is built
        configs, width, _ = check_stream_parameters(configs, word_width(configs, lanes), lanes)
    return WeightImage.build(configs, layers, width=width)


def load_network(path):
    """The :class:`flexor.network.StreamedNetwork` of a container file (classify)."""
    return streamed_network(Container.load(path))


def build_report(board, image, *, lanes, weights, toolchain, build_dir):
    """The JSON report of a finished self-test build: what was built, what it used, how fast
    it runs."""
    figures = parse_build_reports(board, build_dir)
    return {
        "app": "selftest", "board": board.name, "device": board.device,
        "toolchain": toolchain, "weights": str(weights), "layers": len(image.descriptors),
        "chunks": image.chunks, "nout": image.nout, "lanes": lanes, "word_width": image.width,
        "words": len(image.words), "weight_bits": image.bits, "golden_crc": f"{image.crc:08x}",
        **figures,
        "clock_mhz": board.clock_hz / 1e6,
        # The decryptor's peak rate; it holds when the memory keeps up (lanes*nin <= width).
        "weights_per_second": figures["fmax_mhz"] * 1e6 * lanes * image.nout,
        "bitstream": str(bitstream_path(board, build_dir)),
    }


def classify_report(board, top, *, weights, toolchain, build_dir, baud):
    """The JSON report of a finished classify build, with the memory budget and the image rate
    that the engine's cycle bound and the UART allow at the board clock."""
    figures = parse_build_reports(board, build_dir)
    app = top.app
    program, image, engine = app.network.program, app.image, app.engine
    cycles = image_cycles(app)
    line_bits = 10 * (request_length(program.inputs) + answer_length(program.classes) + 4)
    return {
        "app": "classify", "board": board.name, "device": board.device,
        "toolchain": toolchain, "weights": str(weights),
        "network": "-".join(str(n) for n in [program.inputs] +
                            [layer.outputs for layer in program.layers]),
        "lanes": app.lanes, "word_width": image.width, "words": len(image.words),
        "chunks": image.chunks, "encrypted_weight_bits": sum(
            layer.chunks * app.network.configs[layer.config].nin
            for layer in app.network.layers),
        "one_bit_per_weight_bits": sum(layer.inputs * layer.outputs
                                       for layer in program.layers),
        "device_block_ram_bits": board.ram_bits,
        "memory_budget": {name: {"width": width, "depth": depth, "blocks": blocks}
                          for name, (width, depth, blocks)
                          in memory_budget(board, image, engine).items()},
        "single_port_budget": {name: {"width": width, "depth": depth, "blocks": blocks}
                               for name, (width, depth, blocks)
                               in single_port_budget(engine).items()},
        "constant_logic_rows": engine.constant_logic_rows,
        **figures,
        "clock_mhz": board.clock_hz / 1e6, "baud": baud,
        "cycles_per_image": cycles,
        "images_per_second_engine": board.clock_hz / cycles,
        # A request and its answer on the line, 10 bits a byte, unescaped, plus 4 END bytes.
        "images_per_second_uart": baud / line_bits,
        "bitstream": str(bitstream_path(board, build_dir)),
    }


def image_cycles(app):
    """The engine's cycles per image when nothing stalls, at most: one beat per cycle plus its
    stated per-layer overhead."""
    engine = app.engine
    return sum(-(-layer.chunks // app.lanes) + engine.layer_overhead
               for layer in app.network.layers)


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


def print_classify_report(report):
    budget = ", ".join(f"{name} {entry['depth']} x {entry['width']}: {entry['blocks']}"
                       for name, entry in report["memory_budget"].items())
    single = ", ".join(f"{name} {entry['depth']} x {entry['width']}: {entry['blocks']}"
                       for name, entry in report["single_port_budget"].items())
    if report["constant_logic_rows"]:
        budget += f"; {report['constant_logic_rows']} constant rows in logic"
    timing = "met" if report["timing_met"] else "NOT MET"
    rows = [
        ("board", f"{report['board']} ({report['device']}, {report['clock_mhz']:g} MHz clock)"),
        ("network", f"{report['network']} from {report['weights']}, {report['lanes']} lanes"),
        ("weights", f"{report['encrypted_weight_bits']} encrypted bits in {report['words']} "
                    f"words of {report['word_width']} bits; {report['one_bit_per_weight_bits']} "
                    f"at 1 bit/weight; device block RAM {report['device_block_ram_bits']} bits"),
        ("blocks", f"{budget} (estimate)"),
        *([("SPRAM use", f"{single} (16-bit blocks)")] if single else []),
        ("logic cells", "{} / {}".format(*report["logic_cells"])),
        ("LUTs", report["luts"]),
        ("flip-flops", report["flip_flops"]),
        ("RAM blocks", "{} / {}".format(*report["ram_blocks"])),
        ("SPRAM", "{} / {}".format(*report["spram"])),
        ("DSP", "{} / {}".format(*report["dsp"])),
        ("Fmax", f"{report['fmax_mhz']:.2f} MHz post-route; timing {timing} at "
                 f"{report['clock_mhz']:g} MHz"),
        ("images/s", f"{report['images_per_second_engine']:.0f} by the engine "
                     f"({report['cycles_per_image']} cycles at {report['clock_mhz']:g} MHz), "
                     f"{report['images_per_second_uart']:.0f} by the UART at "
                     f"{report['baud']} baud"),
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


def simulate_classify(args):
    """The classify app's logic on Verilator behind a pty: serve it, or run the host on it."""
    from .classify import ClassifyApp
    from .pty_sim import SIMULATION_DIVISOR, SimulatedBoard, build_simulator

    board = board_by_name(args.board)
    network = load_network(args.weights)
    with refusals():    # a lane count the engine refuses
        app = ClassifyApp(network=network, lanes=args.lanes, divisor=SIMULATION_DIVISOR,
                          engine_options=engine_options(board, network))
    try:
        executable = build_simulator(app, args.build_dir or "build/pty-sim")
    except subprocess.CalledProcessError as error:
        raise CliError(f"the Verilator build failed: "
                       f"{error.stderr.decode(errors='replace').strip().splitlines()[-1]}") \
            from None
    with SimulatedBoard(executable) as simulated:
        if args.count is None:
            print(f"simulated classify board on {simulated.path}; in another shell: python -m "
                  f"boards classify --board {args.board} --port {simulated.path}; Ctrl-C ends "
                  f"it", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return 0
        host = argparse.Namespace(board=args.board, port=simulated.path, count=args.count,
                                  weights=args.weights, baud=DEFAULT_BAUD, timeout=10.0,
                                  retries=3, data_root=None, output=None)
        try:
            status = classify(host)
        except BoardError as error:
            raise CliError(str(error)) from None
    stats = simulated.stats
    print(f"simulated    {stats.cycles} cycles; {stats.latency / max(1, stats.answers):.0f} "
          f"cycles from a request's last bit to its answer's first")
    return status


def _prepare_top(args, board):
    """The board top of ``args.app``, after checking that its memories fit ``board`` and that
    the tools are there. The weights are checked before any gateware object exists."""
    if args.app == "selftest":
        image = load_image(args.weights, args.lanes)
        image.check_fits(board)
        build_environment(board, args.toolchain)
        return BoardTop(image=image, lanes=args.lanes, leds=board.leds), image
    network = load_network(args.weights)
    with refusals():    # a lane count the decryptor refuses
        image = classify_image(network, args.lanes)
    image.check_fits(board)
    build_environment(board, args.toolchain)
    with refusals():    # a lane count or baud rate the engine or the UART refuses
        top = ClassifyTop(network=network, lanes=args.lanes, board=board, baud=args.baud)
    check_classify_fits(board, top.app.image, top.app.engine)     # the engine's buffers too
    return top, top.app.image


def build(args):
    board = board_by_name(args.board)
    suffix = "" if args.app == "selftest" else f"-{args.app}"
    build_dir = Path(args.build_dir or Path("build") / f"{board.name}{suffix}")
    try:
        top, image = _prepare_top(args, board)
        build_dir.mkdir(parents=True, exist_ok=True)
        build_bitstream(board, top, build_dir=build_dir, toolchain=args.toolchain,
                        quiet=not args.verbose)
    except Exception as error:
        # A refused or failed build leaves its top unelaborated: expected, not worth a warning.
        warnings.simplefilter("ignore", UnusedElaboratable)
        raise _build_error(error, build_dir) from None
    if args.app == "selftest":
        report = build_report(board, image, lanes=args.lanes, weights=args.weights,
                              toolchain=args.toolchain, build_dir=build_dir)
    else:
        report = classify_report(board, top, weights=args.weights, toolchain=args.toolchain,
                                 build_dir=build_dir, baud=args.baud)
    report_path = build_dir / "report.json"
    write_files_atomically({str(report_path): json.dumps(report, indent=2) + "\n"})
    (print_report if args.app == "selftest" else print_classify_report)(report)
    print(f"{'report':<12} {report_path}")
    return 0


def _build_error(error, build_dir):
    """The one-line error a failed build reports (the error itself when it is one already)."""
    if isinstance(error, subprocess.CalledProcessError):
        return CliError(f"the build failed ({error.cmd[-1]} exited with status "
                        f"{error.returncode}); the tools' logs are in {build_dir}, -v shows "
                        f"their output")
    if isinstance(error, OSError):
        return CliError(f"cannot use {error.filename}: {error.strerror}")
    return error


def classify(args):
    """Send test images to the board, print accuracy, agreement with the integer model and
    speed; status 1 when any answer differs from the integer model."""
    from flexor.datasets import load_dataset, pixels
    from flexor.integer import IntegerProgram

    board = board_by_name(args.board)
    container = Container.load(args.weights)
    program = IntegerProgram.from_container(container)
    split = load_dataset(container.metadata.get("dataset", "digits"), root=args.data_root)
    count = min(args.count, len(split.y_test))
    images, labels = pixels(split.x_test[:count]), split.y_test[:count]
    progress = ProgressBar(count)
    with BoardLink(args.port, baud=args.baud, classes=program.classes, timeout=args.timeout,
                   retries=args.retries) as link:
        try:
            result = classify_images(link, images, labels, program, progress)
        finally:
            progress.close()
    resent = ", ".join(f"{n} after {cause}" for cause, n in result.resent.items() if n)
    print(f"board        {board.name} on {args.port} at {args.baud} baud")
    print(f"images       {result.count} test images of {args.weights}")
    print(f"accuracy     {100 * result.accuracy:.2f} % ({int(result.accuracy * result.count + .5)}"
          f" / {result.count}); integer model {100 * result.model_accuracy:.2f} %")
    print(f"agreement    same class as the integer model on {result.same_class} / "
          f"{result.count}, identical logits on {result.same_logits} / {result.count}")
    print(f"speed        {result.count / result.seconds:.1f} images/s ({result.seconds:.2f} s), "
          f"requests resent: {resent or 'none'}")
    for index in result.mismatches[:5]:
        print(f"MISMATCH     image {index}: board class {result.board_classes[index]} logits "
              f"{result.board_logits[index].tolist()}, integer model class "
              f"{result.model_classes[index]} logits {result.model_logits[index].tolist()}")
    if args.output:
        write_files_atomically({args.output: json.dumps({
            "board": board.name, "port": args.port, "baud": args.baud, "images": result.count,
            "accuracy": result.accuracy, "model_accuracy": result.model_accuracy,
            "same_class": result.same_class, "same_logits": result.same_logits,
            "mismatches": result.mismatches.tolist(), "seconds": result.seconds,
            "images_per_second": result.count / result.seconds, "resent": result.resent},
            indent=2) + "\n"})
    return 0 if result.same_logits == result.count else 1


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "list":
        list_boards()
        return 0
    classifies = args.command == "classify" or getattr(args, "app", None) == "classify"
    if getattr(args, "weights", "") is None:
        args.weights = str(DEFAULT_CLASSIFY_WEIGHTS if classifies else DEFAULT_WEIGHTS)
    if getattr(args, "baud", "") is None:
        args.baud = DEFAULT_BAUD
    if args.command == "simulate" and args.app == "classify":
        return simulate_classify(args)
    if args.command == "simulate":
        return simulate(args.weights, args.lanes)
    if args.command == "classify":
        try:
            return classify(args)
        except BoardError as error:
            raise CliError(str(error)) from None
    if args.command == "program":
        board = board_by_name(args.board)
        suffix = "" if args.app == "selftest" else f"-{args.app}"
        build_dir = Path(args.build_dir or Path("build") / f"{board.name}{suffix}")
        try:
            program_board(board, build_dir)
        except RuntimeError as error:
            if isinstance(error, UserError):    # no programmer: a ToolMissing says so itself
                raise
            # The programmer failed (no board attached, most often).
            raise CliError(str(error)) from None
        print(f"programmed {board.name} with {bitstream_path(board, build_dir)}")
        return 0
    return build(args)


if __name__ == "__main__":
    sys.exit(run_cli(PROG, main))
