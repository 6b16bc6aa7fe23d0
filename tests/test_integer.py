"""The integer program: the NumPy model against a naive loop implementation of the contract
(``docs/integer-program.md``), broken variants caught, refusal of missing or inconsistent
programs, and the derivation's agreement with the float golden model."""

import contextlib
import warnings

import numpy as np
import pytest

from container_factory import naive_weight_bits, pixel_split, random_network
from flexor import integer as integer_module
from flexor.container import Container, ContainerError, encode_container
from flexor.inference import evaluate
from flexor.integer import IntegerLayer, IntegerProgram, derive_program, evaluate_integer
from flexor.weight_order import weights_from_chunks

SEEDS = range(40)


# -- a naive, obviously-correct implementation of the contract ---------------------------------

def naive_classes(container, images):
    """Logits and classes per the contract, in Python integers, one image and one output at a
    time."""
    logits, classes = [], []
    for image in images:
        a = [int(v) for v in image]
        for step in container.integer:
            layer = container.layers[step.layer]
            planes = [naive_weight_bits(layer, container.configs[plane.config], plane)
                      for plane in layer.planes]
            t_all = []
            for o in range(layer.shape[0]):
                total = int(step.offset[o])
                for p, bits in enumerate(planes):
                    acc = sum((2 * bits[o][i] - 1) * a[i] for i in range(len(a)))
                    total += int(step.mult[p, o]) * acc
                t = total // 2 ** step.shift                       # floor, also when negative
                if step.out_bits is not None:
                    t = min(max(t, 0), 2 ** step.out_bits - 1)
                t_all.append(t)
            a = t_all
        best = 0
        for o in range(1, len(a)):
            if a[o] > a[best]:                                      # ties keep the lowest
                best = o
        logits.append(a)
        classes.append(best)
    return logits, classes


# -- random small networks ----------------------------------------------------------------------

@contextlib.contextmanager
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # random matrices often have rank < nin
        yield


def mismatches():
    """Seeds whose NumPy integer model differs from the naive loops (empty when correct)."""
    bad = []
    for seed in SEEDS:
        with quiet():
            container, images = random_network(seed)
        program = IntegerProgram.from_container(container)
        logits, classes = naive_classes(container, images)
        if program.logits(images).tolist() != logits or program.predict(images).tolist() != \
                classes:
            bad.append(seed)
    return bad


def test_integer_model_equals_the_naive_loops_on_random_networks():
    assert mismatches() == []


def _floor_toward_zero(self, activations):
    a = np.asarray(activations).astype(np.int64)
    acc = np.einsum("ni,poi->npo", a, 2 * self.weights.astype(np.int64) - 1)
    total = (acc * self.mult[None]).sum(axis=1) + self.offset[None]
    t = np.sign(total) * (np.abs(total) >> self.shift)          # truncates negative values
    return t if self.out_bits is None else np.clip(t, 0, 2 ** self.out_bits - 1)


def _run_with(clip):
    def run(self, activations):
        a = np.asarray(activations).astype(np.int64)
        acc = np.einsum("ni,poi->npo", a, 2 * self.weights.astype(np.int64) - 1)
        t = ((acc * self.mult[None]).sum(axis=1) + self.offset[None]) >> self.shift
        return t if self.out_bits is None else clip(t, self.out_bits)
    return run


MUTANTS = {
    "rounds toward zero": ("run", _floor_toward_zero),
    "clamps at 2**k": ("run", _run_with(lambda t, k: np.clip(t, 0, 2 ** k))),
    "no ReLU": ("run", _run_with(lambda t, k: np.minimum(t, 2 ** k - 1))),
    "last of the largest logits": (
        "predict", lambda self, x: self.logits(x).shape[1] - 1 -
        self.logits(x)[:, ::-1].argmax(axis=1)),
    "rows of a tile reversed": ("order", None),
}


@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_the_comparison_catches_broken_models(monkeypatch, mutant):
    kind, replacement = MUTANTS[mutant]
    if kind == "run":
        monkeypatch.setattr(IntegerLayer, "run", replacement)
    elif kind == "predict":
        monkeypatch.setattr(IntegerProgram, "predict", replacement)
    else:
        def reversed_rows(chunks, order, out, m, tile=None):
            weights = weights_from_chunks(chunks, order, out, m, tile)
            if order == "tiled":
                rows = np.arange(out).reshape(-1, 1)
                rows = (rows // tile) * tile + (tile - 1 - rows % tile)
                rows = np.where(rows < out, rows, np.arange(out).reshape(-1, 1))
                weights = weights[rows[:, 0]]
            return weights
        monkeypatch.setattr(integer_module, "weights_from_chunks", reversed_rows)
    assert mismatches() != [], mutant


def test_ties_go_to_the_lowest_class():
    with quiet():
        container, images = random_network(3)
    last = container.integer[-1]
    last.mult[:] = 0
    last.offset[:] = 7
    last.offset[0] = -1                        # classes 1.. tie at the largest logit
    program = IntegerProgram.from_container(container)
    assert list(program.predict(images)) == [1] * len(images) == \
        naive_classes(container, images)[1]


# -- refusals -----------------------------------------------------------------------------------

def _parts(container):
    header, arrays = container.header(), dict(container.arrays())
    return header, arrays


def test_a_container_without_an_integer_program_is_refused():
    with quiet():
        container, _ = random_network(0)
    container.integer = None
    with pytest.raises(ContainerError, match="^the container has no integer program"):
        IntegerProgram.from_container(Container.from_bytes(container.to_bytes()))


def _step_records(h):
    return h["integer"]["steps"]


INCONSISTENT = [
    (lambda h, a: _step_records(h).pop() and a.pop("integer2.mult") is not None
     and a.pop("integer2.offset") is not None, "integer program has 2 steps, the topology 3"),
    (lambda h, a: _step_records(h).pop(), "member 'integer2.mult.npy' is not named by the"),
    (lambda h, a: _step_records(h)[0].update(out_bits=_step_records(h)[0]["out_bits"] % 8 + 1),
     "out_bits .* but the quantize op after layer fc0 has"),
    (lambda h, a: _step_records(h)[1].update(in_bits=_step_records(h)[1]["in_bits"] % 8 + 1),
     "in_bits .* but its inputs have"),
    (lambda h, a: _step_records(h)[0].update(in_bits=4), "in_bits 4, but its inputs have 8"),
    (lambda h, a: _step_records(h)[2].update(out_bits=3), "the last step gives the logits"),
    (lambda h, a: _step_records(h)[0].update(shift=49), "shift must be in 0..48"),
    (lambda h, a: _step_records(h)[0].update(layer=1)
     or a.update({"integer0.mult": a["integer1.mult"], "integer0.offset": a["integer1.offset"]}),
     "integer step 0: layer 1, but"),
    (lambda h, a: _step_records(h)[0].update(layer=1),
     r"array integer0.mult must be int16 of shape \(2x4\)"),
    (lambda h, a: _step_records(h)[0].update(in_bits=9), "in_bits must be an integer in 1..8"),
    (lambda h, a: a.update({"integer0.mult": a["integer0.mult"].astype(np.int32)}),
     "array integer0.mult must be int16 of shape"),
    (lambda h, a: a.update({"integer1.mult": a["integer1.mult"][:, :-1]}),
     "array integer1.mult must be int16 of shape"),
    (lambda h, a: a.update({"integer0.mult": np.full_like(a["integer0.mult"], -2 ** 15)}),
     r"outside \+-\(2\*\*15 - 1\)"),
    (lambda h, a: a.update({"integer2.offset": a["integer2.offset"].astype(np.float64)}),
     "array integer2.offset must be int64 of shape"),
    (lambda h, a: a.pop("integer1.offset"), "array integer1.offset is missing"),
    (lambda h, a: h.update(integer={"layers": []}), "integer: unknown key 'layers'"),
    (lambda h, a: h.update(integer=[]), "header: integer must be an object or null"),
    (lambda h, a: h["topology"]["ops"].insert(1, {"op": "relu"}),
     "must be followed by one quantize op"),
    (lambda h, a: h["topology"]["ops"][1].update(bits=9), "bits must be an integer in 1..8"),
    (lambda h, a: a.update({"tensor.act0.scale": -a["tensor.act0.scale"]}),
     "act0.scale must be one positive finite float32"),
    (lambda h, a: h["layers"][0].update(flatten="row-major"), "tile applies only to the tiled"),
    (lambda h, a: h["layers"][0].update(flatten="column-major"), "flatten must be one of"),
    (lambda h, a: h.update(version=1), "header: unknown key 'integer'"),
    (lambda h, a: h.update(version=1, integer=None), "header: unknown key 'integer'"),
    # A version-1 header has neither the integer section nor tiles.
    (lambda h, a: h.update(version=1) or h.pop("integer") and [
        a.pop(name) for name in list(a) if name.startswith("integer")],
     "layer 0: unknown key 'tile'"),
    (lambda h, a: h.update(version=1) or h.pop("integer") and h["layers"][0].pop("tile") and [
        a.pop(name) for name in list(a) if name.startswith("integer")],
     r"layer 0: flatten order 'tiled' is not 'row-major' \(the only one of version 1\)"),
]


@pytest.mark.parametrize("mutate, message", INCONSISTENT)
def test_an_inconsistent_integer_program_is_refused_at_load(mutate, message):
    with quiet():
        container, _ = random_network(5)                 # 3 layers, tiled fc0
    assert [layer.flatten for layer in container.layers][0] == "tiled"
    header, arrays = _parts(container)
    mutate(header, arrays)
    with pytest.raises(ContainerError, match=message) as info:
        Container.from_bytes(encode_container(header, arrays), origin="bad.npz")
    assert str(info.value).startswith("bad.npz: ") and "\n" not in str(info.value)


def test_a_program_that_could_overflow_is_refused_when_built():
    with quiet():
        container, _ = random_network(5)
    container.integer[0].offset[:] = 2 ** 62
    with pytest.raises(ContainerError, match="^integer step 0: mult . acc . offset can reach"):
        IntegerProgram.from_container(Container.from_bytes(container.to_bytes()))


def test_an_integer_program_needs_every_layer_encrypted():
    with quiet():
        container, _ = random_network(5)
    first = container.layers[0]
    header, arrays = _parts(container)
    header["layers"][0].update(precision="full", q=0, planes=[], flatten="row-major")
    header["layers"][0].pop("tile")
    for p in range(first.q):
        arrays.pop(f"layer0.plane{p}", None)
    arrays.pop("layer0.alpha")
    arrays["layer0.weight"] = np.zeros(first.shape, np.float32)
    with pytest.raises(ContainerError, match="integer step 0: layer 0 is not an encrypted layer"):
        Container.from_bytes(encode_container(header, arrays))


# -- derivation: float model and integer program agree ---------------------------------------

@pytest.mark.parametrize("scheme, bits", [("flexor", 2), ("bwn", 4), ("flexor", 8)])
def test_derived_program_agrees_with_the_float_model(scheme, bits):
    pytest.importorskip("torch")
    from dataclasses import replace

    from flexor.train import RECIPES, train
    recipe = replace(RECIPES["fashion-mnist-mlp"], epochs=2, milestones=(1,),
                     extra={"inputs": 784, "depth": 1, "width": 16})
    split = pixel_split(bits)
    with quiet():
        result = train(recipe, scheme=scheme, nin=(6,), fp_ends=False, activation_bits=bits,
                       flatten="tiled", tile=4, split=split, progress=False)
    container = result.container
    assert container.integer is not None and container.version == 2
    golden = evaluate(container, data=(split.x_test, split.y_test))
    exact = evaluate_integer(container, data=(split.x_test, split.y_test))
    assert golden.accuracy > 0.5, golden.accuracy
    agree = (golden.predictions == exact.predictions).mean()
    assert agree >= 0.98 and abs(golden.accuracy - exact.accuracy) <= 0.02, (agree, scheme)
    # The stored program is what derive_program gives from the stored float parameters.
    for stored, derived in zip(container.integer, derive_program(container)):
        assert stored.record() == derived.record()
        assert np.array_equal(stored.mult, derived.mult)
        assert np.array_equal(stored.offset, derived.offset)
    for step, layer in zip(container.integer, IntegerProgram.from_container(container).layers):
        assert 2 ** 14 <= np.abs(layer.mult).max() <= 2 ** 15 - 1   # the shift is the largest


def test_derivation_refuses_float_layers_and_activations():
    from flexor.datasets import FASHION_MNIST
    with quiet():
        container, _ = random_network(5)
    container.integer = None
    container.metadata = {"dataset": dict(FASHION_MNIST)}
    del container.topology["ops"][1]                                  # fc0 -> fc1 in float
    container.topology["ops"].insert(1, {"op": "relu"})
    with pytest.raises(ValueError, match=r"topology op 1 \(relu\): the integer program runs"):
        derive_program(container)


@pytest.mark.parametrize("offset0, logits, label", [(0, [1, -4, 4], 2), (6, [4, -4, 4], 0)])
def test_the_worked_example_of_the_contract_page(offset0, logits, label):
    """The numbers of docs/integer-program.md, worked out by hand there."""
    first = IntegerLayer(weights=[[[1, 0, 1], [0, 1, 1]]], mult=[[3, -5]], offset=[-1000, 300],
                         shift=8, in_bits=8, out_bits=2)
    last = IntegerLayer(weights=[[[1, 1], [0, 1], [1, 0]], [[0, 0], [1, 1], [1, 1]]],
                        mult=[[4, 6, 4], [2, 1, 2]], offset=[offset0, -3, 2], shift=1,
                        in_bits=2, out_bits=None)
    program = IntegerProgram([first, last])
    hidden, out = program.run_layers(np.array([[200, 10, 255]]))
    assert hidden.tolist() == [[1, 0]] and out.tolist() == [logits]
    assert program.predict(np.array([[200, 10, 255]])).tolist() == [label]
    assert (first.acc_bits, first.sum_bits) == (11, 14)
