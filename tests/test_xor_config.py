import json
import warnings

import numpy as np
import pytest

from flexor import DENSE, RankWarning, XorConfig, gf2_rank


def brute_force_rank(matrix):
    """Rank over GF(2) as log2 of the number of distinct images of all inputs."""
    nin = matrix.shape[1]
    inputs = (np.arange(2 ** nin)[:, None] >> np.arange(nin)) & 1
    images = {tuple(row) for row in (inputs @ matrix.T) % 2}
    return int(np.log2(len(images)))


@pytest.mark.parametrize("nin,nout,ntap,seed", [(8, 10, 2, 0), (16, 20, 3, 7), (12, 20, 1, 3),
                                                 (5, 5, 5, 1), (64, 80, 2, 2)])
def test_random_rows_have_exactly_ntap_distinct_ones(nin, nout, ntap, seed):
    config = XorConfig.random(nin, nout, ntap, seed)
    assert config.matrix.shape == (nout, nin)
    assert set(np.unique(config.matrix)) <= {0, 1}
    assert (config.matrix.sum(axis=1) == ntap).all()
    assert (config.nin, config.nout, config.ntap, config.seed) == (nin, nout, ntap, seed)


def test_random_follows_the_documented_algorithm():
    # The module docstring's algorithm, re-stated independently.
    rng = np.random.default_rng(11)
    expected = np.zeros((6, 9), dtype=np.uint8)
    for r in range(6):
        expected[r, rng.choice(9, size=3, replace=False)] = 1
    assert np.array_equal(XorConfig.random(9, 6, 3, 11).matrix, expected)


def test_dense_rows_follow_the_documented_algorithm_and_are_never_zero():
    rng = np.random.default_rng(5)
    expected = []
    for _ in range(40):
        row = rng.integers(0, 2, size=3)
        while not row.any():
            row = rng.integers(0, 2, size=3)
        expected.append(row)
    config = XorConfig.random(3, 40, DENSE, 5)
    assert XorConfig.random(3, 40, None, 5) == config
    assert np.array_equal(config.matrix, np.array(expected))
    assert config.matrix.any(axis=1).all()
    assert config.ntap == DENSE


def test_same_arguments_same_matrix_different_seed_different_matrix():
    a = XorConfig.random(16, 20, 2, 1)
    assert a == XorConfig.random(16, 20, 2, 1)
    assert a != XorConfig.random(16, 20, 2, 2)


@pytest.mark.parametrize("seed", range(12))
def test_rank_matches_brute_force(seed):
    config = XorConfig.random(10, 8, 2, seed)
    assert config.rank == gf2_rank(config.matrix) == brute_force_rank(config.matrix)


def test_rank_deficient_matrix_warns_and_full_rank_does_not():
    with pytest.warns(RankWarning, match="rank 7 < nin 8"):
        XorConfig.random(8, 10, 2, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RankWarning)
        full = XorConfig.from_matrix(np.eye(4, dtype=int))
    assert full.rank == 4


def test_json_round_trip_and_sidecar_layout(tmp_path):
    config = XorConfig.random(16, 20, 3, 7)
    path = tmp_path / "m.json"
    path.write_text(config.dumps())
    data = json.loads(path.read_text())
    assert data["matrix"] == config.matrix.tolist()
    assert XorConfig.load(path) == config
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(config.matrix.tolist()))
    assert np.array_equal(XorConfig.load(bare).matrix, config.matrix)
    assert XorConfig.load(bare).ntap == 3


@pytest.mark.parametrize("content,message", [
    ("not json", "not valid JSON"),
    ('{"nin": 2}', "'matrix' key"),
    ("[[0, 1], [1]]", "rectangular"),
    ("[[0, 2], [1, 1]]", "0 or 1, not 2"),
    ("[[0, true]]", "0 or 1, not True"),
    ("[[0.5, 1]]", "0 or 1, not 0.5"),
    ("[]", "non-empty"),
    ('{"nin": 3, "matrix": [[0, 1], [1, 1]]}', "'nin' is 3 but the matrix has 2"),
    ('{"ntap": 2, "matrix": [[0, 1], [1, 1]]}', "not every matrix row has 2 ones"),
])
def test_bad_matrix_files_give_one_clear_error(tmp_path, content, message):
    path = tmp_path / "m.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        XorConfig.load(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_missing_matrix_file(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        XorConfig.load(tmp_path / "missing.json")


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(nin=0, nout=10), ValueError, "nin must be an integer >= 1, not 0"),
    (dict(nin=8, nout=-1), ValueError, "nout must be an integer >= 1, not -1"),
    (dict(nin=8.0, nout=10), TypeError, "nin must be an integer, not 8.0"),
    (dict(nin=8, nout=10, ntap=9), ValueError, r"ntap must be <= nin \(8\), not 9"),
    (dict(nin=8, nout=10, ntap=0), ValueError, "ntap must be an integer >= 1, not 0"),
    (dict(nin=8, nout=10, seed=-3), ValueError, "seed must be an integer >= 0, not -3"),
    (dict(nin=True, nout=10), TypeError, "nin must be an integer, not True"),
])
def test_random_rejects_bad_parameters(kwargs, error, message):
    with pytest.raises(error, match=message):
        XorConfig.random(**kwargs)
