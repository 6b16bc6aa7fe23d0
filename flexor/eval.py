"""``python -m flexor.eval``: NumPy golden inference of a container, accuracy and cost table.

Loads the container (checksum and consistency checked), decrypts every bit-plane with the golden
model, runs the forward pass on the recorded data set's test split and prints the accuracy next
to the one recorded at training time; when the container holds an integer program
(``docs/integer-program.md``), also the integer model's accuracy on the raw pixels and on how
many test images its class equals the float model's, and the program's widths per layer. Then a
per-layer table: weights, bits/weight, bytes stored, multiply-accumulates per sample, and the
share of MACs and bytes that sit in full-precision layers. Exit status 1 when the float accuracy
differs from the recorded one. No torch.
"""

import sys

from .cli import CliParser, run_cli
from .container import DIGITS_WEIGHTS, SHIPPED_WEIGHTS, Container
from .datasets import FASHION_MNIST_ROOT
from .inference import evaluate, layer_macs
from .integer import IntegerProgram, evaluate_integer

PROG = "python -m flexor.eval"


def _shown(path):
    """How the output names a shipped container (the path from the source tree's root)."""
    return f"{SHIPPED_WEIGHTS.name}/{path.name}"


def _parser():
    parser = CliParser(prog=PROG, description="Evaluate an encrypted-weight container with the "
                       "NumPy golden model.")
    parser.add_argument("container", nargs="?",
                        help=f"container file (default: {_shown(DIGITS_WEIGHTS)})")
    parser.add_argument("--data-root", help="data folder: the Fashion-MNIST IDX files (default "
                        f"{FASHION_MNIST_ROOT}) or cifar-10-batches-py")
    return parser


def cost_table(container):
    """Rows of per-layer costs plus a total row, and the full-precision shares (fractions)."""
    macs = layer_macs(container)
    rows = [{"index": i, "name": layer.name, "kind": layer.kind, "precision": layer.precision,
             "weights": layer.n_weights, "bits_per_weight": layer.bits_per_weight,
             "bytes": layer.stored_bytes, "macs": macs[i]}
            for i, layer in enumerate(container.layers)]
    total = {key: sum(row[key] for row in rows) for key in ("weights", "bytes", "macs")}
    full = [row for row in rows if row["precision"] == "full"]
    shares = {key: sum(row[key] for row in full) / total[key] if total[key] else 0.0
              for key in ("weights", "bytes", "macs")}
    return rows, total, shares


def main(argv=None):
    args = _parser().parse_args(argv)
    container = Container.load(args.container or DIGITS_WEIGHTS)
    result = evaluate(container, data_root=args.data_root)
    meta = container.metadata
    recorded = meta.get("correct")
    verdict = ("no recorded accuracy" if recorded is None else
               "matches the recorded accuracy" if recorded == result.correct else
               f"DIFFERS from the recorded {recorded}/{meta.get('test_samples')}")
    dataset = meta.get("dataset")  # free JSON: a spec object, a bare name, or anything
    dataset = dataset.get("name", "?") if isinstance(dataset, dict) else dataset
    print(f"{args.container or _shown(DIGITS_WEIGHTS)} (sha256 {container.sha256[:16]}): "
          f"{meta.get('model', '?')} on {dataset}, scheme {meta.get('scheme', '?')}")
    print(f"accuracy {100 * result.accuracy:.2f}% ({result.correct}/{len(result.labels)} test "
          f"samples, NumPy golden model): {verdict}")
    if container.integer is not None:
        integer = evaluate_integer(container, data_root=args.data_root)
        same = int((integer.predictions == result.predictions).sum())
        print(f"integer program: accuracy {100 * integer.accuracy:.2f}% ({integer.correct}/"
              f"{len(integer.labels)}, exact int64 model on the raw pixels); same class as the "
              f"float model on {same}/{len(integer.labels)} images "
              f"({100 * same / len(integer.labels):.2f}%)")
        program = IntegerProgram.from_container(container)
        for step, layer in zip(container.integer, program.layers):
            print(f"  layer {container.layers[step.layer].name}: {layer.in_bits}-bit in, "
                  f"{'logits' if layer.out_bits is None else f'{layer.out_bits}-bit out'}, "
                  f"acc {layer.acc_bits} bits, sum {layer.sum_bits} bits, shift {layer.shift}, "
                  f"max |mult| {int(abs(layer.mult).max())}")
    else:
        print("integer program: none in this container")
    rows, total, shares = cost_table(container)
    print()
    print(f"{'#':>2}  {'layer':<8} {'kind':<7} {'precision':<9} {'weights':>9} {'bits/w':>7} "
          f"{'bytes':>9} {'MACs':>10}")
    for row in rows:
        print(f"{row['index']:>2}  {row['name']:<8} {row['kind']:<7} {row['precision']:<9} "
              f"{row['weights']:>9} {row['bits_per_weight']:>7.2f} {row['bytes']:>9} "
              f"{row['macs']:>10}")
    quantized = container.bits_per_weight("xor")
    print(f"{'':>2}  {'total':<8} {'':<7} {'':<9} {total['weights']:>9} "
          f"{container.bits_per_weight(None):>7.2f} {total['bytes']:>9} {total['macs']:>10}")
    print()
    print(f"encrypted layers: {'none' if quantized is None else f'{quantized:.2f} bits/weight'}")
    print(f"full-precision layers hold {100 * shares['macs']:.1f}% of the MACs, "
          f"{100 * shares['bytes']:.1f}% of the bytes stored, "
          f"{100 * shares['weights']:.1f}% of the weights")
    print("(bytes: bits or float32 weights + alpha + bias per layer, batch norm excluded; "
          "MACs per sample)")
    return 0 if recorded in (None, result.correct) else 1


if __name__ == "__main__":
    sys.exit(run_cli(PROG, main))
