"""FleXOR training: the XOR surrogate, schedules, torch-versus-NumPy predictions, the CLI."""

import os
import pickle
import shlex
import shutil
import subprocess
import sys
import warnings
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from container_factory import pixel_split  # noqa: E402
from flexor.cli import run_cli  # noqa: E402
from flexor.container import Container  # noqa: E402
from flexor.datasets import load_digits  # noqa: E402
from flexor.golden import decrypt_reference  # noqa: E402
from flexor.inference import evaluate, layer_weights  # noqa: E402
from flexor.integer import IntegerProgram, evaluate_integer  # noqa: E402
from flexor.train import (RECIPES, BinaryLinear, Recipe, from_container, predict,  # noqa: E402
                          train, xor_decrypt)
from flexor.train.__main__ import main as train_main  # noqa: E402
from flexor.train.recipes import learning_rate, s_tanh  # noqa: E402
from retrain import retrain_recorded  # noqa: E402

SHIPPED = "weights/digits_mlp_0p8.npz"
PROG = "python -m flexor.train"


def _mixed_matrix(seed, nout=10, nin=8):
    rng = np.random.default_rng(seed)
    matrix = np.zeros((nout, nin), dtype=np.uint8)
    for row in matrix:
        row[rng.choice(nin, size=rng.integers(1, 5), replace=False)] = 1
    return matrix


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_xor_decrypt_forward_is_the_exact_xor_of_sign_bits(seed):
    matrix = _mixed_matrix(seed)
    x = torch.from_numpy(np.random.default_rng(seed).normal(size=(3, 50, 8)).astype(np.float32))
    x[0, 0, :4] = 0.0                                     # sign(0) is +1, bit 1
    y = xor_decrypt(x, torch.tensor(matrix, dtype=torch.float32), 10.0)
    bits = (x.numpy() >= 0).astype(np.uint8)
    expected = 2.0 * decrypt_reference(matrix, bits) - 1.0
    np.testing.assert_array_equal(y.numpy(), expected, err_msg=f"seed {seed}")


@pytest.mark.parametrize("seed", [0, 1])
def test_xor_decrypt_backward_is_the_papers_tanh_surrogate(seed):
    matrix = _mixed_matrix(seed + 10)
    s = 7.5
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=0.3, size=(6, 8))
    g = rng.normal(size=(6, 10))
    xt = torch.tensor(x, requires_grad=True)
    y = xor_decrypt(xt, torch.tensor(matrix, dtype=torch.float64), s)
    (y * torch.tensor(g)).sum().backward()
    sign = np.where(x >= 0, 1.0, -1.0)
    expected = np.zeros_like(x)
    for c in range(6):
        for r in range(10):
            taps = list(np.flatnonzero(matrix[r]))
            for i in taps:
                others = np.prod([sign[c, j] for j in taps if j != i])
                dy_dx = s * (-1) ** (len(taps) - 1) * (1 - np.tanh(s * x[c, i]) ** 2) * others
                expected[c, i] += g[c, r] * dy_dx
    np.testing.assert_allclose(xt.grad.numpy(), expected, rtol=1e-12, atol=1e-12,
                               err_msg=f"seed {seed}")


def test_binary_layer_is_channel_mean_times_sign():
    torch.manual_seed(0)
    layer = BinaryLinear(6, 4, nout=10)
    w = layer.real.detach().numpy()
    expected = np.abs(w).mean(axis=1, keepdims=True) * np.where(w >= 0, 1.0, -1.0)
    np.testing.assert_allclose(layer.weight().detach().numpy(), expected, rtol=1e-6)


def test_schedules_warm_up_then_decay_and_double():
    recipe = Recipe(dataset="digits", model="mlp", epochs=30, batch_size=8, optimizer="sgd",
                    lr=0.1, warmup_epochs=4, milestones=(10, 20), gamma=0.5,
                    s_tanh_start=5.0, s_tanh=10.0)
    lrs = [learning_rate(recipe, e) for e in (0, 1, 3, 4, 9, 10, 19, 20, 29)]
    assert lrs == pytest.approx([0.025, 0.05, 0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    slopes = [s_tanh(recipe, e) for e in (0, 3, 4, 9, 10, 20)]
    assert slopes == pytest.approx([6.25, 10.0, 10.0, 10.0, 20.0, 40.0])


def _quick(recipe_name="digits-mlp", epochs=3, **options):
    recipe = replace(RECIPES[recipe_name], epochs=epochs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                   # Ntap 2: rank nin - 1, by design
        return train(recipe, progress=False, **options)


@pytest.mark.parametrize("options", [
    {"scheme": "flexor", "nin": (8,)},
    {"scheme": "flexor", "nin": (10, 8, 6, 4), "q": 2, "fp_ends": False, "seed": 3},
    {"scheme": "bwn"},
    {"scheme": "fp"},
], ids=["flexor", "mixed-q2-all-quantized", "bwn", "fp"])
def test_numpy_predictions_equal_torch_predictions(options):
    result = _quick(**options)
    golden = evaluate(Container.from_bytes(result.container.to_bytes()))
    assert np.array_equal(golden.predictions, result.predictions), options
    assert golden.correct == result.container.metadata["correct"]
    assert result.accuracy > 0.8, (options, result.accuracy)


def test_cnn_numpy_predictions_equal_torch_predictions():
    result = _quick("digits-cnn", epochs=2, nin=(6,))
    container = result.container
    assert [layer.kind for layer in container.layers] == ["conv2d"] * 3 + ["linear"]
    assert np.array_equal(evaluate(container).predictions, result.predictions)


def test_mixed_precision_bits_per_layer():
    container = _quick(epochs=1, nin=(8, 4)).container
    bits = container.metadata["bits_per_weight"]["layers"]
    assert bits["fc1"] == 1639 * 8 / 16384 and bits["fc2"] == 1639 * 4 / 16384
    assert sorted((c.nin, c.nout, c.ntap, c.seed) for c in container.configs) == \
        [(4, 10, 2, 2), (8, 10, 2, 2)]


def test_training_is_deterministic():
    first = _quick(epochs=2, seed=5).container.to_bytes()
    assert _quick(epochs=2, seed=5).container.to_bytes() == first
    assert _quick(epochs=2, seed=6).container.to_bytes() != first


def test_history_records_the_smallest_activation_step_of_each_epoch(monkeypatch):
    """``step_min`` is the smallest raw step an optimizer update left (watched here from the
    optimizer's side: the steps are the only one-element parameters of this MLP)."""
    seen, adam_step = [], torch.optim.Adam.step

    def watched(self, *args, **kwargs):
        result = adam_step(self, *args, **kwargs)
        seen.append([float(p) for group in self.param_groups for p in group["params"]
                     if p.numel() == 1])
        return result
    monkeypatch.setattr(torch.optim.Adam, "step", watched)
    history = _quick(epochs=2, activation_bits=2).history
    steps = len(seen) // 2                                # two epochs of equal length
    for epoch, record in enumerate(history):
        epoch_values = np.array(seen[epoch * steps:(epoch + 1) * steps])
        assert sorted(record["step_min"].values()) == sorted(epoch_values.min(axis=0)), epoch
    assert _quick(epochs=1).history[0]["step_min"] == {}  # float ReLUs: no step


def test_export_refuses_a_container_the_golden_model_disagrees_with(monkeypatch):
    """A container is written only if the golden model reproduces torch's predictions, so the
    recorded accuracy is what the file gives (a broken export is the mutant here)."""
    from flexor.train import trainer

    def one_flipped(container, data=None, **options):
        result = evaluate(container, data=data, **options)
        result.predictions[0] = (result.predictions[0] + 1) % 10
        return result
    monkeypatch.setattr(trainer, "evaluate", one_flipped)
    with pytest.raises(ValueError, match="classifies 1 of 449 test samples unlike the trained"):
        _quick(epochs=1)


def test_shipped_container_runs_identically_in_torch():
    container = Container.load(SHIPPED)
    split = load_digits(container.metadata["dataset"])
    torch_predictions = predict(from_container(container), torch.from_numpy(split.x_test))
    golden = evaluate(container)
    assert np.array_equal(torch_predictions.numpy(), golden.predictions)
    assert golden.correct == container.metadata["correct"]


@pytest.mark.parametrize("options", [
    {"scheme": "flexor", "nin": (6,), "q": 2, "tile": 4, "activation_bits": 2},
    {"scheme": "flexor", "nin": (8,), "tile": 3, "activation_bits": 1},
    {"scheme": "bwn", "tile": 4, "activation_bits": 4},
], ids=["flexor-q2-tile4", "flexor-tile3-1bit", "bwn-tile4"])
def test_tiled_training_export_round_trip(options):
    """Train all-encrypted in the tiled order, export, reload: the container's weights are the
    trained ones, torch and NumPy classify alike, and the integer program runs those bits."""
    recipe = replace(RECIPES["fashion-mnist-mlp"], epochs=2, milestones=(1,),
                     extra={"inputs": 784, "depth": 1, "width": 12})
    split = pixel_split(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(recipe, fp_ends=False, flatten="tiled", split=split, progress=False,
                       **options)
    container = Container.from_bytes(result.container.to_bytes())
    assert container.version == 2 and container.metadata["flatten"] == "tiled"
    assert {(layer.flatten, layer.tile) for layer in container.layers} == \
        {("tiled", options["tile"])}
    for index, module in enumerate(result.model.weights):
        trained = module.weight().detach().double().numpy()
        np.testing.assert_allclose(layer_weights(container, index), trained, rtol=1e-6,
                                   err_msg=f"layer {index}")
    golden = evaluate(container, data=(split.x_test, split.y_test))
    assert np.array_equal(golden.predictions, result.predictions)
    reloaded = predict(from_container(container), torch.from_numpy(split.x_test)).numpy()
    assert np.array_equal(reloaded, result.predictions)
    program = IntegerProgram.from_container(container)
    for index, layer in enumerate(program.layers):
        if layer.q == 1:         # one plane: the weight's sign is the stored bit times alpha's
            signs = np.sign(layer_weights(container, index)) * \
                np.sign(container.layers[index].alpha[0])[:, None]
            assert np.array_equal(2 * layer.weights[0].astype(int) - 1, signs)
    exact = evaluate_integer(container, data=(split.x_test, split.y_test))
    assert (exact.predictions == golden.predictions).mean() >= 0.98


def _tiny_cifar(root, seed=0):
    """A fake cifar-10-batches-py folder: 5 training batches of 4 images, a test batch of 6."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        count = 6 if name == "test_batch" else 4
        batch = {b"data": rng.integers(0, 256, size=(count, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, size=count)]}
        with open(folder / name, "wb") as file:
            pickle.dump(batch, file)
    return root


def test_cifar10_resnet20_recipe_runs_a_few_steps(tmp_path):
    recipe = replace(RECIPES["cifar10-resnet20"], batch_size=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(recipe, data_root=str(_tiny_cifar(tmp_path)), max_steps=2,
                       progress=False)
    container = result.container
    assert container.metadata["steps"] == 2 and container.metadata["recipe"]["epochs"] == 500
    assert [(c.nin, c.nout, c.ntap) for c in container.configs] == [(16, 20, 2)]
    assert len(container.layers) == 20 and container.layers[0].precision == "full"
    assert container.layers[-1].precision == "full"
    assert 0.8 <= container.bits_per_weight("xor") < 0.81
    assert np.array_equal(evaluate(container, data_root=str(tmp_path)).predictions,
                          result.predictions)


@pytest.mark.parametrize("args, message", [
    (["--nin", "8,4,2"], "nin needs 1 value or one per quantized layer (2), not 3"),
    (["--nin", "65"], "argument --nin: must be <= 64"),
    (["--nin", "0"], "argument --nin: must be a positive integer, not '0'"),
    (["--model", "resnet20"], "no recipe 'digits-resnet20'"),
    (["-o", "/nonexistent/dir/w.npz"], "output directory '/nonexistent/dir' does not exist"),
    (["--flatten", "tiled"], "--flatten tiled needs --tile T"),
    (["--tile", "4"], "--tile applies only to --flatten tiled"),
    (["--flatten", "tiled", "--tile", "1025"], "--tile must be at most 1024, not 1025"),
    (["--model", "cnn", "--width", "8"], "--width applies to the mlp, not 'cnn'"),
    (["--activation-bits", "3"], "argument --activation-bits: invalid choice: 3"),
    (["--dataset", "fashion-mnist", "--data-root", "/nonexistent"],
     "install the Debian package dataset-fashion-mnist, or point --data-root DIR"),
])
def test_cli_errors_are_one_line_and_write_nothing(tmp_path, capsys, args, message):
    output = tmp_path / "w.npz"
    assert run_cli(PROG, train_main, ["--quiet", "-o", str(output), *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith(f"{PROG}: error: ") and message in captured.err
    assert not output.exists()


def test_cli_writes_a_container_that_records_its_command(tmp_path):
    output = tmp_path / "w.npz"
    run = subprocess.run([sys.executable, "-m", "flexor.train", "--quiet", "--epochs", "1",
                          "--nin", "6", "-o", str(output)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    container = Container.load(output)
    assert f"test accuracy {100 * container.metadata['accuracy']:.2f}%" in run.stdout
    assert container.metadata["command"] == \
        f"{PROG} --quiet --epochs 1 --nin 6 -o {shlex.quote(str(output))}"
    assert [(c.nin, c.nout) for c in container.configs] == [(6, 10)]


#: How far a retrain of the shipped command may land from the recorded accuracy, in accuracy
#: (0.025: 2.5 percentage points, 11 of the 449 test images). Bytes are not comparable across
#: machines: floating-point kernels differ between CPUs and ATEN_CPU_CAPABILITY choices, and
#: training amplifies the last bit. Measured on one machine (recorded: 97.77 %): 97.55 %
#: (ATEN_CPU_CAPABILITY=default), 97.77 % (avx2), 99.33 % (avx512, the default there); other
#: seeds 1-5 there 97.10 % to 98.44 %. See docs/results.md.
RETRAIN_TOLERANCE = 0.025


@pytest.mark.slow
def test_recorded_command_retrains_to_the_recorded_accuracy(tmp_path):
    shipped, retrained = retrain_recorded(tmp_path, SHIPPED)
    assert retrained.metadata["command"] == shipped.metadata["command"]
    assert retrained.configs == shipped.configs
    difference = retrained.metadata["accuracy"] - shipped.metadata["accuracy"]
    assert abs(difference) <= RETRAIN_TOLERANCE, \
        f"retrained {retrained.metadata['accuracy']:.4f}, recorded {shipped.metadata['accuracy']:.4f}"
    # Whatever this machine's kernels trained, the golden model measures what training measured.
    assert evaluate(retrained).correct == retrained.metadata["correct"]


def test_same_command_twice_gives_the_same_bytes(tmp_path):
    """Two processes running one command on one machine write identical files."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    outputs = []
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        run = subprocess.run([sys.executable, "-m", "flexor.train", "--quiet", "--epochs", "2",
                              "--seed", "4", "-o", "w.npz"], cwd=tmp_path / name,
                             capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": root})
        assert run.returncode == 0, run.stderr
        outputs.append((tmp_path / name / "w.npz").read_bytes())
    assert outputs[0] == outputs[1]


@pytest.mark.slow
def test_torchrun_ddp_on_cpu(tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun is not installed next to this Python")
    output = tmp_path / "ddp.npz"
    run = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m",
                          "flexor.train", "--quiet", "--epochs", "2", "-o", str(output)],
                         capture_output=True, text=True, cwd=os.getcwd())
    assert run.returncode == 0, run.stderr[-2000:]
    container = Container.load(output)
    assert np.array_equal(evaluate(container).predictions.shape, (449,))
    assert container.metadata["accuracy"] > 0.8
