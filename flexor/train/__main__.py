"""``python -m flexor.train``: train a network and write its encrypted-weight container.

Examples::

    python -m flexor.train --dataset digits --model mlp --nin 8 --nout 10 -o weights.npz
    python -m flexor.train --scheme bwn -o bwn.npz                # 1 bit/weight baseline
    python -m flexor.train --nin 8,4 -o mixed.npz                 # per-layer nin
    python -m flexor.train --dataset fashion-mnist --width 128 --no-fp-ends --flatten tiled \
        --tile 4 --activation-bits 2 -o fmnist.npz                # the hardware's network
    python -m flexor.train --recipe cifar10-resnet20 --nin 16 --data-root ~/data -o r20.npz
    torchrun --nproc_per_node 4 -m flexor.train --recipe cifar10-resnet20 --device cuda ...
"""

import argparse
import math
import os
import shlex
import sys
from dataclasses import replace

from ..cli import (CliError, CliParser, nonnegative_int, output_file, positive_int, run_cli,
                   write_files_atomically)
from ..container import MAX_NIN
from ..datasets import DATASETS, FASHION_MNIST_ROOT
from ..weight_order import MAX_TILE, ORDERS
from . import MODELS, RECIPES, SCHEMES, train
from .models import DEFAULT_CONFIG_SEED
from .recipes import with_epochs

PROG = "python -m flexor.train"


def nin_list(text):
    """``argparse`` type: ``8`` or ``8,6,4`` (one value per quantized layer)."""
    values = [positive_int(part) for part in text.split(",")]
    for value in values:
        if value > MAX_NIN:
            raise argparse.ArgumentTypeError(f"must be <= {MAX_NIN} (the decryptor's limit), "
                                             f"not {value}")
    return tuple(values)


def torch_seed(text):
    """``argparse`` type: a seed torch's generators take, 0 .. 2**63 - 1."""
    value = nonnegative_int(text)
    if value >= 2 ** 63:
        raise argparse.ArgumentTypeError(f"must be below 2**63, not {text!r}")
    return value


def learning_rate(text):
    """``argparse`` type: a finite positive learning rate."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, not {text!r}")
    return value


def cpu_threads(text):
    """``argparse`` type: 1 .. the machine's CPU count (torch crashes on absurd thread counts)."""
    value = positive_int(text)
    if value > (os.cpu_count() or 1):
        raise argparse.ArgumentTypeError(f"must be at most the {os.cpu_count() or 1} CPUs of this "
                                         f"machine, not {value}")
    return value


def torch_device(text):
    """``argparse`` type: a torch device name that this torch build can use."""
    import torch

    try:
        device = torch.device(text)
    except RuntimeError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a torch device "
                                         f"({str(error).splitlines()[0]})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: this torch build sees no CUDA device")
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{text!r}: only cpu and cuda devices are supported")
    return text


def _parser():
    parser = CliParser(prog=PROG, description="Train a FleXOR (or BWN / full-precision) network "
                       "and export it as an encrypted-weight container.")
    parser.add_argument("--recipe", choices=sorted(RECIPES),
                        help="training recipe (default: DATASET-MODEL)")
    parser.add_argument("--dataset", choices=DATASETS, default="digits")
    parser.add_argument("--model", choices=sorted(MODELS), default="mlp")
    parser.add_argument("--scheme", choices=SCHEMES, default="flexor",
                        help="weights of the quantized layers (default: flexor)")
    parser.add_argument("--nin", type=nin_list,
                        help="encrypted bits per chunk: one value, or a comma list with one "
                        "per quantized layer (default: the recipe's)")
    parser.add_argument("--nout", type=positive_int, help="decrypted bits per chunk")
    parser.add_argument("--ntap", type=positive_int, help="ones per XOR-matrix row")
    parser.add_argument("--q", type=positive_int, default=1, help="bit-planes (default 1)")
    parser.add_argument("--config-seed", type=nonnegative_int, default=DEFAULT_CONFIG_SEED,
                        help="seed of XorConfig.random(nin, nout, ntap, seed) (default "
                        f"{DEFAULT_CONFIG_SEED})")
    parser.add_argument("--fp-ends", action=argparse.BooleanOptionalAction,
                        default=True, help="keep the first and last layer full precision")
    parser.add_argument("--width", type=positive_int,
                        help="hidden width W of the mlp (fashion-mnist default 256)")
    parser.add_argument("--activation-bits", type=int, choices=(8, 4, 2, 1),
                        help="quantization-aware k-bit activations (default: float ReLU)")
    parser.add_argument("--flatten", choices=ORDERS, default="row-major",
                        help="weight order of the encrypted layers (default row-major)")
    parser.add_argument("--tile", type=positive_int,
                        help=f"rows per tile of the tiled order (1..{MAX_TILE})")
    parser.add_argument("--epochs", type=positive_int, help="override the recipe's epochs "
                        "(its learning-rate milestones move to the same fractions)")
    parser.add_argument("--lr", type=learning_rate, help="override the recipe's learning rate")
    parser.add_argument("--batch-size", type=positive_int)
    parser.add_argument("--max-steps", type=positive_int, help="stop after N optimizer steps")
    parser.add_argument("--seed", type=torch_seed, default=0,
                        help="seed of initialization, shuffling and augmentation (default 0)")
    parser.add_argument("--data-root", help="data folder: the Fashion-MNIST IDX files (default "
                        f"{FASHION_MNIST_ROOT}) or cifar-10-batches-py")
    parser.add_argument("--device", type=torch_device, default="cpu",
                        help="torch device: cpu (default) or cuda[:N]")
    parser.add_argument("--threads", type=cpu_threads, default=1,
                        help="torch CPU threads (default 1, for machine-independent results)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("-o", "--output", type=output_file, required=True,
                        help="container file to write (.npz)")
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    directory = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(directory):  # fail before training, not after
        raise CliError(f"output directory {os.path.dirname(args.output) or '.'!r} does "
                       f"not exist")
    if os.path.isdir(args.output):
        raise CliError(f"output {args.output!r} is a directory, not a file")
    name = args.recipe or f"{args.dataset}-{args.model}"
    if name not in RECIPES:
        raise CliError(f"no recipe {name!r} (known: {', '.join(sorted(RECIPES))})")
    recipe = RECIPES[name]
    if args.width is not None and recipe.model != "mlp":
        raise CliError(f"--width applies to the mlp, not {recipe.model!r}")
    if args.flatten == "tiled" and args.tile is None:
        raise CliError("--flatten tiled needs --tile T")
    if args.tile is not None and args.flatten != "tiled":
        raise CliError("--tile applies only to --flatten tiled")
    if args.tile is not None and args.tile > MAX_TILE:
        raise CliError(f"--tile must be at most {MAX_TILE}, not {args.tile}")
    if args.epochs is not None:
        recipe = with_epochs(recipe, args.epochs)
    overrides = {key: getattr(args, key) for key in ("nout", "ntap", "lr", "batch_size")
                 if getattr(args, key) is not None}
    recipe = replace(recipe, **overrides)
    result = train(recipe, scheme=args.scheme, seed=args.seed, nin=args.nin, q=args.q,
                   config_seed=args.config_seed, fp_ends=args.fp_ends, width=args.width,
                   activation_bits=args.activation_bits, flatten=args.flatten, tile=args.tile,
                   data_root=args.data_root, device=args.device, threads=args.threads,
                   max_steps=args.max_steps, progress=not args.quiet,
                   command=f"{PROG} {shlex.join(argv)}")
    container = result.container
    if container is None:  # a torchrun rank other than 0
        return 0
    write_files_atomically({args.output: container.to_bytes()})
    meta = container.metadata
    bits = meta["bits_per_weight"]["quantized"]
    print(f"wrote {args.output}: {recipe.dataset} {recipe.model} {args.scheme}, test accuracy "
          f"{100 * meta['accuracy']:.2f}% ({meta['correct']}/{meta['test_samples']}), "
          f"{'n/a' if bits is None else f'{bits:.2f}'} bits/weight on quantized layers, "
          f"sha256 {container.sha256[:16]}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(PROG, main))
