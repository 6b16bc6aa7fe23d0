"""``python -m sim``: the trained weights streamed through the generated decryptor RTL in cocotb;
``python -m sim --infer``: test images through the generated inference engine, every logit checked.

Generates the decryptor for the container's configurations, streams every bit-plane of every
layer through the Verilog (Icarus or Verilator), checks every decrypted bit and every ``last``
against the golden model as it goes, then classifies the test set with the weights that came
out of the RTL and prints that accuracy next to the golden one.
"""

import contextlib
import sys
import warnings

from amaranth.hdl import UnusedElaboratable

from flexor.cli import CliError, CliParser, nonnegative_int, positive_int, refusals, run_cli
from flexor.container import DIGITS_WEIGHTS, FMNIST_WEIGHTS, Container
from flexor.network import StreamedNetwork
from flexor.stream import check_stream_parameters
from hdl.engine import InferenceEngine

from .decoder import probability
from .infer import run_inference
from .runner import SIMULATORS, TestbenchFailed
from .weights import run_weights



def image_count(text):
    """``--count``: a positive integer or ``all``."""
    return None if text == "all" else positive_int(text)


def build_parser():
    parser = CliParser(prog="python -m sim", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", metavar="FILE",
                        help="encrypted-weight container (default: the shipped "
                             "weights/digits_mlp_0p8.npz, with --infer weights/fmnist_mlp.npz)")
    parser.add_argument("--infer", action="store_true",
                        help="run test images through the inference engine instead (Verilog "
                             "harness at the simulator's speed, every logit checked against "
                             "the integer model; default simulator verilator)")
    parser.add_argument("--count", type=image_count, default=100,
                        help="with --infer: test images to run, or 'all' (default: 100)")
    parser.add_argument("--simulator", choices=SIMULATORS,
                        help="Verilog simulator (default: icarus; with --infer verilator)")
    parser.add_argument("--width", type=positive_int, default=32,
                        help="memory word width: 8, 16, 32 or 64 (default: 32)")
    parser.add_argument("--lanes", type=positive_int, default=1,
                        help="chunks decrypted per output beat (default: 1)")
    parser.add_argument("--stall", type=probability, default=0.0,
                        help="chance per cycle that each stream's valid or ready is withheld "
                             "(default: 0.0)")
    parser.add_argument("--seed", type=nonnegative_int, default=0,
                        help="seed of the stall pattern (default: 0)")
    parser.add_argument("--waves", action="store_true",
                        help="write a waveform (Icarus: FST, Verilator: VCD) into the build dir")
    parser.add_argument("--build-dir", default="build/sim",
                        help="where the Verilog, simulator build and waves go "
                             "(default: build/sim)")
    return parser


def print_summary(args, run):
    print(f"decryptor: width {args.width}, lanes {args.lanes}, {args.simulator}, "
          f"stall {args.stall}, seed {args.seed}")
    print(f"streamed   {run.layers} layers = {run.stream_layers} bit-planes, {run.chunks} chunks, "
          f"{run.words} words in, {run.beats} beats out")
    print(f"checked    {run.bits_checked} decrypted bits and {run.beats} tuser/tlast against the "
          f"golden model: all equal")
    print(f"cycles     {run.cycles} (rate limit {run.ideal_cycles}, plus the pipeline latency): "
          f"{run.beats / run.cycles:.3f} beats/cycle, limit {run.beats / run.ideal_cycles:.3f}")
    print(f"simulator  {run.cycles / run.seconds:,.0f} cycles/s ({run.seconds:.1f} s)")
    recorded = "" if run.recorded_correct is None else \
        f", recorded at training {run.recorded_correct}/{run.test_samples}"
    print(f"accuracy   RTL weights {100 * run.rtl_correct / run.test_samples:.2f}% "
          f"({run.rtl_correct}/{run.test_samples}), golden "
          f"{100 * run.golden_correct / run.test_samples:.2f}% "
          f"({run.golden_correct}/{run.test_samples}){recorded}; predictions "
          f"{'identical' if run.predictions_equal else 'DIFFER'}")


def print_inference(args, run):
    print(f"engine     {args.weights}: width {args.width}, lanes {args.lanes}, "
          f"{args.simulator}, stall {args.stall}, seed {args.seed}")
    print(f"checked    {run.images} images: every logit and class equal to the integer model")
    print(f"accuracy   RTL {100 * run.rtl_correct / run.images:.2f}% ({run.rtl_correct}/"
          f"{run.images}), integer {100 * run.integer_correct / run.images:.2f}%, float "
          f"{100 * run.float_correct / run.images:.2f}% ({run.float_correct}/{run.images})")
    print(f"cycles     {run.cycles_per_image} per image (bound {run.cycle_bound}; "
          f"{run.beats_per_image} beats + {run.layers} x {run.layer_overhead} overhead = "
          f"{run.beats_per_image + run.layers * run.layer_overhead}), {run.cycles} in all")
    print(f"simulator  {run.cycles / run.seconds:,.0f} cycles/s, {run.images / run.seconds:,.1f} "
          f"images/s ({run.seconds:.1f} s, build {run.build_seconds:.1f} s)")


@contextlib.contextmanager
def _checked_run(args):
    """Check the parameters (:func:`check_parameters`), then run the block with a failed
    testbench or an unusable path (e.g. a --build-dir that is a file) as one error line; user
    errors (a missing simulator, a bad container) are one already."""
    check_parameters(args)
    try:
        yield
    except TestbenchFailed as error:
        raise CliError(str(error)) from None
    except OSError as error:
        raise CliError(f"cannot use {error.filename}: {error.strerror}") from None


def check_parameters(args):
    """Refuse a width or lane count that the container's configurations (with ``--infer``, its
    engine) cannot use, as one line and before any build."""
    container = Container.load(args.weights)
    network = StreamedNetwork.from_container(container) if args.infer else None
    with warnings.catch_warnings(), refusals():
        # Built only to be refused or dropped: never elaborated, and not worth a warning.
        warnings.simplefilter("ignore", UnusedElaboratable)
        if args.infer:
            InferenceEngine(network=network, width=args.width, lanes=args.lanes)
        else:
            check_stream_parameters(container.configs, args.width, args.lanes)


def infer_main(args):
    args.weights = args.weights or str(FMNIST_WEIGHTS)
    args.simulator = args.simulator or "verilator"
    if args.waves:
        raise CliError("--waves applies to the decryptor run, not --infer")
    with _checked_run(args):
        run = run_inference(args.weights, args.build_dir, count=args.count, width=args.width,
                            lanes=args.lanes, simulator=args.simulator, stall=args.stall,
                            seed=args.seed)
    print_inference(args, run)
    if run.rtl_correct != run.integer_correct:
        print("FAIL: the RTL's accuracy differs from the integer model's", file=sys.stderr)
        return 1
    print("PASS")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.infer:
        return infer_main(args)
    args.weights = args.weights or str(DIGITS_WEIGHTS)
    args.simulator = args.simulator or "icarus"
    with _checked_run(args):
        run = run_weights(args.weights, args.build_dir, width=args.width, lanes=args.lanes,
                          simulator=args.simulator, stall=args.stall, seed=args.seed,
                          waves=args.waves)
    print_summary(args, run)
    same = run.rtl_correct == run.golden_correct and run.predictions_equal and \
        run.recorded_correct in (None, run.golden_correct)
    if not same:
        print("FAIL: the RTL's weights do not classify like the golden model's", file=sys.stderr)
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli("python -m sim", main))
