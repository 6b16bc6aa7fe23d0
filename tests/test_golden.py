import numpy as np
import pytest

import flexor
from flexor import XorConfig
from flexor.golden import EXHAUSTIVE_NIN_LIMIT


def all_inputs(nin):
    return ((np.arange(2 ** nin)[:, None] >> np.arange(nin)) & 1).astype(np.uint8)


def test_reference_on_a_hand_worked_example():
    # y0 = x0 ^ x2, y1 = x1, y2 = 0, y3 = x0 ^ x1 ^ x2
    matrix = [[1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 1]]
    x = np.array([[1, 0, 0], [1, 1, 1], [0, 1, 1]])
    expected = np.array([[1, 0, 0, 1], [0, 1, 0, 1], [1, 1, 0, 0]])
    assert np.array_equal(flexor.decrypt_reference(matrix, x), expected)
    assert np.array_equal(flexor.decrypt(matrix, x), expected)


@pytest.mark.parametrize("nin,nout,ntap,seed", [
    (8, 10, 2, 0), (12, 20, 3, 1), (7, 20, "dense", 2), (1, 3, 1, 0), (9, 9, 9, 4)])
def test_fast_equals_reference_exhaustively(nin, nout, ntap, seed):
    config = XorConfig.random(nin, nout, ntap, seed)
    x = all_inputs(nin)
    assert np.array_equal(flexor.decrypt(config, x), flexor.decrypt_reference(config, x))


@pytest.mark.parametrize("nin,nout,seed", [(16, 20, 3), (20, 20, 4), (33, 70, 5), (64, 64, 6)])
def test_fast_equals_reference_random(nin, nout, seed):
    config = XorConfig.random(nin, nout, 2, seed)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, size=(3, 500, nin))
    got = flexor.decrypt(config, x)
    assert got.shape == (3, 500, nout) and got.dtype == np.uint8
    assert np.array_equal(got, flexor.decrypt_reference(config, x)), f"seed {seed}"


def test_matches_matrix_product_definition():
    config = XorConfig.random(13, 17, "dense", 9)
    x = np.random.default_rng(9).integers(0, 2, size=(1000, 13))
    assert np.array_equal(flexor.decrypt(config, x), (x @ config.matrix.T) % 2)


def test_packed_ignores_padding_bits():
    config = XorConfig.random(11, 9, 2, 1)
    x = np.random.default_rng(1).integers(0, 2, size=(64, 11))
    packed = flexor.pack_bits(x)
    packed[:, -1] |= 0xF8  # junk beyond bit 11
    y = flexor.unpack_bits(flexor.decrypt_packed(config, packed), 9)
    assert np.array_equal(y, flexor.decrypt_reference(config, x))


@pytest.mark.parametrize("nin,nout,seed", [(8, 10, 0), (16, 20, 7), (24, 30, 2)])
def test_encrypt_inverts_reachable_targets(nin, nout, seed):
    config = XorConfig.random(nin, nout, 2, seed)
    x = np.random.default_rng(seed).integers(0, 2, size=(300, nin))
    target = flexor.decrypt_reference(config, x)
    found, distance = flexor.encrypt(config, target, return_distance=True)
    assert np.array_equal(flexor.decrypt_reference(config, found), target)
    assert (distance == 0).all()


def test_encrypt_finds_a_nearest_codeword_by_exhaustive_check():
    config = XorConfig.random(6, 10, 2, 3)
    codewords = flexor.decrypt_reference(config, all_inputs(6))
    targets = np.random.default_rng(3).integers(0, 2, size=(200, 10))
    found, distance = flexor.encrypt(config, targets, return_distance=True)
    best = (codewords[None, :, :] != targets[:, None, :]).sum(axis=2).min(axis=1)
    assert np.array_equal(distance, best)
    assert np.array_equal((flexor.decrypt_reference(config, found) != targets).sum(axis=1), best)
    assert (best > 0).any(), "test should include unreachable targets"


def test_encrypt_refuses_exhaustive_search_beyond_limit():
    nin = EXHAUSTIVE_NIN_LIMIT + 1
    # Identity plus a copy of row 0: a target whose last bit differs from bit 0 is unreachable.
    config = XorConfig.from_matrix(np.vstack([np.eye(nin, dtype=int), np.eye(nin, dtype=int)[:1]]))
    reachable = np.ones((1, nin + 1), dtype=np.uint8)
    assert np.array_equal(flexor.decrypt(config, flexor.encrypt(config, reachable)), reachable)
    unreachable = reachable.copy()
    unreachable[0, -1] = 0
    with pytest.raises(ValueError, match="not reachable"):
        flexor.encrypt(config, unreachable)


@pytest.mark.parametrize("bits,error,message", [
    (np.zeros((4, 7)), ValueError, r"shape \(\.\.\., 8\)"),
    (np.full((4, 8), 2), ValueError, "only 0 and 1"),
    (np.full((4, 8), -1), ValueError, "only 0 and 1"),
    (np.zeros((4, 8), dtype=float), TypeError, "dtype float64"),
])
def test_decrypt_rejects_bad_bits(bits, error, message):
    config = XorConfig.random(8, 10, 2, 0)
    with pytest.raises(error, match=message):
        flexor.decrypt(config, bits)
