"""One XOR-gate network configuration: the ``Nout x Nin`` matrix over GF(2) and where it came from.

Random matrices are a pure function of ``(nin, nout, ntap, seed)``::

    rng = numpy.random.default_rng(seed)
    for each row r = 0 .. nout-1, in order:
        ntap given:  taps = rng.choice(nin, size=ntap, replace=False); M[r, taps] = 1
        ntap dense:  repeat row = rng.integers(0, 2, size=nin) until row has a one; M[r] = row

so every row of a sparse matrix has exactly ``ntap`` distinct ones, and a dense matrix has
i.i.d. Bernoulli(1/2) entries conditioned on no all-zero row (the paper's MNIST setting).
"""

import json
import warnings

import numpy as np

from .errors import InputError
from .input_files import read_input_file
from .parameters import check_int

__all__ = ["XorConfig", "RankWarning", "gf2_rank", "load_matrix_file"]

#: Value of ``ntap`` that selects dense Bernoulli(1/2) rows.
DENSE = "dense"


class RankWarning(UserWarning):
    """The matrix has GF(2) rank below ``nin``: distinct encrypted chunks decrypt alike."""


def gf2_rank(matrix):
    """Rank of a 0/1 matrix over GF(2), by Gaussian elimination on rows packed into integers."""
    pivots = {}  # leading bit -> reduced row with that leading bit
    for row in np.asarray(matrix, dtype=np.uint8):
        value = sum(int(b) << j for j, b in enumerate(row))
        while value:
            lead = value.bit_length() - 1
            if lead not in pivots:
                pivots[lead] = value
                break
            value ^= pivots[lead]
    return len(pivots)


def _check_matrix(matrix):
    """Validate a matrix given as nested lists or an array and return it as a read-only uint8."""
    if isinstance(matrix, np.ndarray):
        array = matrix
    else:
        rows_ok = isinstance(matrix, (list, tuple)) and all(
            isinstance(row, (list, tuple, np.ndarray)) for row in matrix)
        if not rows_ok:
            raise ValueError(f"matrix must be a list of rows, not {type(matrix).__name__}")
        if len({len(row) for row in matrix}) > 1:
            raise ValueError("matrix must be rectangular (every row the same length)")
        array = np.array(matrix, dtype=object)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"matrix must be a non-empty list of equal-length rows, "
                         f"not an array of shape {array.shape}")
    if array.dtype == object or not np.issubdtype(array.dtype, np.integer):
        for value in array.flat:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                    or value not in (0, 1):
                raise ValueError(f"matrix entries must be 0 or 1, not {value!r}")
    elif array.min() < 0 or array.max() > 1:
        bad = array[(array < 0) | (array > 1)].flat[0]
        raise ValueError(f"matrix entries must be 0 or 1, not {bad!r}")
    result = array.astype(np.uint8)
    result.setflags(write=False)
    return result


class XorConfig:
    """An XOR-gate network configuration: ``y = M @ x mod 2`` with ``M`` of shape ``(nout, nin)``.

    Build one with :meth:`random`, :meth:`from_matrix` or :meth:`load`; the constructor takes
    an explicit matrix and its provenance.

    Parameters
    ----------
    matrix : array-like of 0/1, shape ``(nout, nin)``
        Row ``r`` lists the encrypted bits XORed into decrypted bit ``r``.
    ntap : int or ``"dense"`` or None
        Ones per row the matrix was generated with; None when it was given explicitly and its
        rows do not all have the same weight.
    seed : int or None
        Seed of the random generator that produced the matrix, None when given explicitly.

    Attributes
    ----------
    nin, nout : int
        Encrypted bits per chunk and decrypted bits per chunk.
    rank : int
        Rank of the matrix over GF(2); below ``nin`` means distinct encrypted chunks collide.
    """

    def __init__(self, matrix, *, ntap=None, seed=None):
        self._matrix = _check_matrix(matrix)
        if ntap is not None and ntap != DENSE:
            check_int("ntap", ntap)
        if seed is not None:
            check_int("seed", seed, minimum=0)
        self._ntap = ntap if ntap in (None, DENSE) else int(ntap)
        self._seed = None if seed is None else int(seed)
        self._rank = gf2_rank(self._matrix)

    @classmethod
    def random(cls, nin, nout, ntap=2, seed=0):
        """Generate the matrix for ``(nin, nout, ntap, seed)`` by the algorithm in the module doc.

        ``ntap=None`` or ``"dense"`` selects dense rows. Warns with :class:`RankWarning` when the
        rank is below ``nin``.
        """
        nin = check_int("nin", nin)
        nout = check_int("nout", nout)
        seed = check_int("seed", seed, minimum=0)
        rng = np.random.default_rng(seed)
        matrix = np.zeros((nout, nin), dtype=np.uint8)
        if ntap is None or ntap == DENSE:
            ntap = DENSE
            for r in range(nout):
                row = rng.integers(0, 2, size=nin)
                while not row.any():
                    row = rng.integers(0, 2, size=nin)
                matrix[r] = row
        else:
            ntap = check_int("ntap", ntap)
            if ntap > nin:
                raise ValueError(f"ntap must be <= nin ({nin}), not {ntap}")
            for r in range(nout):
                matrix[r, rng.choice(nin, size=ntap, replace=False)] = 1
        config = cls(matrix, ntap=ntap, seed=seed)
        config.warn_if_rank_deficient()
        return config

    @classmethod
    def from_matrix(cls, matrix):
        """Wrap an explicit matrix; ``ntap`` is recorded when every row has the same weight."""
        matrix = _check_matrix(matrix)
        weights = set(int(w) for w in matrix.sum(axis=1))
        ntap = weights.pop() if len(weights) == 1 and 0 not in weights else None
        return cls(matrix, ntap=ntap)

    @property
    def matrix(self):
        """The read-only ``(nout, nin)`` uint8 matrix."""
        return self._matrix

    @property
    def nin(self):
        return self._matrix.shape[1]

    @property
    def nout(self):
        return self._matrix.shape[0]

    @property
    def ntap(self):
        return self._ntap

    @property
    def seed(self):
        return self._seed

    @property
    def rank(self):
        return self._rank

    def taps(self, row):
        """Indices of the encrypted bits XORed into decrypted bit ``row``."""
        return [int(j) for j in np.flatnonzero(self._matrix[row])]

    def warn_if_rank_deficient(self):
        if self._rank < self.nin:
            # Rows of even weight (Ntap = 2, the paper's default) always lose rank: the
            # all-ones input decrypts to zero, so x and its complement decrypt alike.
            even = " (every row has an even number of ones)" \
                if not (self._matrix.sum(axis=1) % 2).any() else ""
            lost = self.nin - self._rank
            warnings.warn(f"XOR matrix {self.nout}x{self.nin}{self._provenance()} has GF(2) "
                          f"rank {self._rank} < nin {self.nin}{even}: "
                          f"{2 ** lost if lost <= 20 else f'2**{lost}'} encrypted chunks map to "
                          f"each reachable output", RankWarning, stacklevel=3)

    def _provenance(self):
        """`` (ntap 2, seed 0)`` for a generated matrix, empty for a given one."""
        return "" if self._seed is None else f" (ntap {self._ntap}, seed {self._seed})"

    def to_dict(self):
        """The JSON-ready form: ``nin``, ``nout``, ``ntap``, ``seed``, ``rank``, ``matrix``."""
        return {
            "nin": self.nin,
            "nout": self.nout,
            "ntap": self._ntap,
            "seed": self._seed,
            "rank": self._rank,
            "matrix": self._matrix.tolist(),
        }

    @classmethod
    def from_dict(cls, data):
        """Inverse of :meth:`to_dict`; also accepts a generator sidecar (it has the same keys).

        Raises ``ValueError`` when ``matrix`` is missing or disagrees with ``nin``/``nout``.
        """
        if not isinstance(data, dict) or "matrix" not in data:
            raise InputError("expected a JSON object with a 'matrix' key")
        ntap = data.get("ntap")
        config = cls(data["matrix"], ntap=ntap, seed=data.get("seed"))
        for key in ("nin", "nout"):
            if key in data and data[key] != getattr(config, key):
                raise InputError(f"'{key}' is {data[key]!r} but the matrix has "
                                 f"{getattr(config, key)}")
        if isinstance(ntap, int) and any(int(w) != ntap for w in config.matrix.sum(axis=1)):
            raise InputError(f"'ntap' is {ntap} but not every matrix row has {ntap} ones")
        return config

    def dumps(self):
        """Canonical JSON text (one matrix row per line, trailing newline)."""
        return dumps_config_json(self.to_dict())

    @classmethod
    def load(cls, path):
        """Load a configuration from a JSON matrix file or a generator sidecar.

        The file holds either an object with a ``matrix`` key (this class's :meth:`dumps`, or a
        ``.json`` sidecar written by ``python -m gen``) or a bare list of rows.
        """
        return cls._from_json_value(load_matrix_file(path), path)

    @classmethod
    def _from_json_value(cls, value, origin):
        try:
            if isinstance(value, list):
                return cls.from_matrix(value)
            return cls.from_dict(value)
        except (TypeError, ValueError) as error:
            raise InputError(f"{origin}: {error}") from None

    def __eq__(self, other):
        return (isinstance(other, XorConfig) and self._ntap == other._ntap
                and self._seed == other._seed and np.array_equal(self._matrix, other._matrix))

    def __hash__(self):
        return hash((self._matrix.tobytes(), self._matrix.shape, self._ntap, self._seed))

    def __repr__(self):
        return (f"XorConfig(nin={self.nin}, nout={self.nout}, ntap={self._ntap!r}, "
                f"seed={self._seed!r}, rank={self._rank})")


#: Largest matrix file or sidecar read (a 1024 x 1024 matrix takes about 3 MB of JSON).
MAX_MATRIX_FILE_BYTES = 2 ** 26


def load_matrix_file(path):
    """Read a JSON file, turning every I/O or syntax problem into one ``ValueError`` line.

    Only a regular file of at most :data:`MAX_MATRIX_FILE_BYTES` is read (not a FIFO or a
    device); JSON with a duplicate key is refused.
    """
    data = read_input_file(path, limit=MAX_MATRIX_FILE_BYTES)
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_unique_keys)
    except RecursionError:  # found by fuzzing: '[' * 100000 overflows the decoder's stack
        raise InputError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as error:  # JSON syntax, bad UTF-8, integers past Python's digit limit
        raise InputError(f"{path}: not valid JSON ({error})") from None


def _unique_keys(pairs):
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise InputError(f"duplicate key {next(k for k in keys if keys.count(k) > 1)!r}")
    return dict(pairs)


def dumps_config_json(data):
    """Two-space JSON text with a top-level ``matrix`` last and every row of every matrix (any
    list of lists) on one line: readable, diffable and byte-stable. The one writer of
    configuration files and sidecars."""
    body = {key: value for key, value in data.items() if key != "matrix"}
    if data.get("matrix") is not None:
        body["matrix"] = data["matrix"]
    rows = []

    def compact(value):
        if isinstance(value, dict):
            return {key: compact(item) for key, item in value.items()}
        if isinstance(value, list) and value and all(isinstance(row, list) for row in value):
            rows.extend(json.dumps(row) for row in value)
            return [f"\0{len(rows) - len(value) + i}\0" for i in range(len(value))]
        if isinstance(value, list):
            return [compact(item) for item in value]
        return value

    text = json.dumps(compact(body), indent=2)
    for index, row in enumerate(rows):
        text = text.replace(f'"\\u0000{index}\\u0000"', row, 1)
    return text + "\n"
