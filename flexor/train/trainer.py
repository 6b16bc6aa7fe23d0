"""The training loop: deterministic on CPU, ``torchrun`` DDP when ``WORLD_SIZE`` > 1.

Determinism: one seed drives ``torch.manual_seed`` (initialization), the shuffling generator
and augmentation; ``torch.use_deterministic_algorithms(True)`` and a fixed thread count (default
1) make two CPU runs with the same arguments give bit-identical weights, hence byte-identical
containers.

Multi-GPU: launch with PyTorch's own launcher, e.g. ``torchrun --nproc_per_node 4 -m
flexor.train --recipe cifar10-resnet20 --device cuda ...``; each process trains on its
``DistributedSampler`` shard inside ``DistributedDataParallel`` and rank 0 evaluates and writes
the container.
"""

import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from ..container import FLATTEN
from ..datasets import load_dataset
from ..errors import InputError
from ..inference import evaluate
from ..integer import derive_program
from .models import DEFAULT_CONFIG_SEED, build_model, predict
from .recipes import learning_rate, s_tanh

__all__ = ["train", "TrainResult"]


class TrainResult:
    """What :func:`train` returns: the trained ``model``, its ``container`` (None on ranks other
    than 0), the test ``predictions`` and ``accuracy``, and the per-epoch ``history`` (loss,
    learning rate, S_tanh and ``step_min``: the smallest raw step of every activation quantizer
    over the epoch's updates)."""

    def __init__(self, model, container, predictions, accuracy, history):
        self.model = model
        self.container = container
        self.predictions = predictions
        self.accuracy = accuracy
        self.history = history


def _augment(x, generator):
    """Random 32x32 crop of the image padded by 4, and a horizontal flip with probability 1/2."""
    n, _, height, width = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), generator=generator)
    dx = torch.randint(0, 9, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    crops = torch.stack([padded[i, :, dy[i]:dy[i] + height, dx[i]:dx[i] + width]
                         for i in range(n)])
    return torch.where(flip[:, None, None, None], crops.flip(3), crops)


def _distributed_setup(device):
    """Join the ``torchrun`` process group when there is one; returns (rank, world, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    import torch.distributed as dist
    cuda = device.startswith("cuda")
    dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(device)
    return dist.get_rank(), world, device


def _has_integer_program(container):
    """Every layer encrypted, every hidden activation quantized, raw 8-bit pixels in."""
    return (container.metadata["dataset"].get("name") == "fashion-mnist" and
            all(layer.precision == "xor" for layer in container.layers) and
            any(op["op"] == "quantize" for op in container.topology["ops"]))


def train(recipe, *, scheme="flexor", seed=0, nin=None, q=1, config_seed=DEFAULT_CONFIG_SEED,
          fp_ends=True, width=None, activation_bits=None, flatten=FLATTEN, tile=None,
          data_root=None, device="cpu", threads=1, max_steps=None, progress=True,
          command=None, split=None):
    """Train one network and export it.

    Parameters
    ----------
    recipe : Recipe
    scheme : str
        ``fp``, ``bwn`` or ``flexor``.
    seed : int
        Seed of initialization, shuffling and augmentation.
    nin : sequence of int, optional
        FleXOR ``nin`` (one, or one per quantized layer); default ``recipe.nin``.
    q, config_seed, fp_ends, flatten, tile, activation_bits
        As in :func:`~flexor.train.models.build_model`.
    width : int, optional
        Hidden width of the ``mlp`` (default: the recipe's ``extra["width"]`` or 128).
    data_root : str, optional
        Folder with data sets that are not bundled (CIFAR-10).
    device : str
        ``cpu`` or ``cuda``.
    threads : int
        CPU threads for torch (1 keeps results independent of the machine's core count).
    max_steps : int, optional
        Stop after this many optimizer steps (smoke tests of long recipes).
    progress : bool
        Show a progress bar (on rank 0, when stderr is a terminal).
    command : str, optional
        The command line recorded in the container's metadata.
    split : Split, optional
        Data to use instead of loading ``recipe.dataset`` (tests).
    """
    nin = tuple(recipe.nin if nin is None else nin)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    if device.startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    rank, world, device = _distributed_setup(device)
    model_options = {key: recipe.extra[key] for key in ("inputs", "depth", "width")
                     if key in recipe.extra}
    if width is not None:
        model_options["width"] = width
    net = build_model(recipe.model, scheme=scheme, nin=nin, nout=recipe.nout,
                      ntap=recipe.ntap, config_seed=config_seed, q=q, fp_ends=fp_ends,
                      flatten=flatten, tile=tile, activation_bits=activation_bits,
                      model_options=model_options).to(device)
    split = split if split is not None else load_dataset(recipe.dataset, root=data_root)
    model = net
    dataset = TensorDataset(torch.from_numpy(split.x_train), torch.from_numpy(split.y_train))
    generator = torch.Generator().manual_seed(seed)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel
        from torch.utils.data.distributed import DistributedSampler
        model = DistributedDataParallel(net, device_ids=[device] if "cuda" in device else None)
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, seed=seed)
    else:
        sampler = RandomSampler(dataset, generator=generator)
    loader = DataLoader(dataset, batch_size=recipe.batch_size, sampler=sampler)
    if recipe.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr,
                                     weight_decay=recipe.weight_decay)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                    weight_decay=recipe.weight_decay)
    from tqdm import tqdm
    bar = tqdm(range(recipe.epochs), desc=f"{recipe.model} {scheme}", unit="epoch",
               disable=None if progress and rank == 0 else True, leave=False)
    history, steps = [], 0
    quantizers = dict(net.quantizers.items())
    for epoch in bar:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(recipe, epoch)
        net.set_s_tanh(s_tanh(recipe, epoch))
        if world > 1:
            sampler.set_epoch(epoch)
        model.train()
        total, count = 0.0, 0
        # The smallest raw activation step of the epoch: a step driven towards 0 by the
        # optimizer is the failure mode of learned steps under Adam (docs/results.md).
        step_min = {name: math.inf for name in quantizers}
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            if recipe.augment:
                x = _augment(x.cpu(), generator).to(device)
            loss = F.cross_entropy(model(x), y)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise InputError(f"training diverged: the loss is {value} at epoch {epoch}, "
                                 f"step {steps} (learning rate {learning_rate(recipe, epoch)}; "
                                 f"try a smaller --lr)")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            for name, quantizer in quantizers.items():
                step_min[name] = min(step_min[name], float(quantizer.scale.detach()))
            total += value * len(y)
            count += len(y)
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
        history.append({"epoch": epoch, "loss": total / count,
                        "lr": learning_rate(recipe, epoch), "s_tanh": s_tanh(recipe, epoch),
                        "step_min": step_min})
        bar.set_postfix(loss=f"{total / count:.4f}")
        if max_steps is not None and steps >= max_steps:
            break
    bar.close()
    x_test = torch.from_numpy(split.x_test).to(device)
    predictions = predict(net, x_test).cpu().numpy()
    correct = int((predictions == split.y_test).sum())
    accuracy = correct / len(split.y_test)
    container = None
    if rank == 0:
        metadata = {
            "dataset": split.spec, "model": recipe.model, "scheme": scheme, "seed": seed,
            "nin": list(nin), "q": q, "config_seed": config_seed, "fp_ends": fp_ends,
            "recipe": recipe.to_dict(), "epochs_run": len(history), "steps": steps,
            "accuracy": accuracy, "correct": correct, "test_samples": len(split.y_test),
            "command": command, "torch": torch.__version__, "numpy": np.__version__,
        }
        # Keys of the options added with format version 2, recorded only when used, so that
        # earlier commands still give byte-identical containers.
        for key, value, default in (("width", width, None),
                                    ("activation_bits", activation_bits, None),
                                    ("flatten", flatten, FLATTEN), ("tile", tile, None)):
            if value != default:
                metadata[key] = value
        container = net.export(metadata)
        # Record what the exported file gives, not only what torch measured: the golden model
        # (and the hardware) must reproduce the recorded accuracy from the container alone.
        golden = evaluate(container, data=(split.x_test, split.y_test))
        if not np.array_equal(golden.predictions, predictions):
            raise ValueError(f"the exported network classifies "
                             f"{int((golden.predictions != predictions).sum())} of "
                             f"{len(predictions)} test samples unlike the trained one (weights "
                             f"beyond float32 precision?); no container written")
        if _has_integer_program(container):
            container.integer = derive_program(container)
            container = type(container).from_bytes(container.to_bytes())  # checks it
        container.metadata["bits_per_weight"] = {
            "layers": {layer.name: layer.bits_per_weight for layer in container.layers},
            "quantized": container.bits_per_weight("xor"),
            "all": container.bits_per_weight(None),
        }
    return TrainResult(net, container, predictions, accuracy, history)
