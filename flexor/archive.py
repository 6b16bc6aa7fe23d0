"""The container's file: a ZIP of ``header.json`` and ``.npy`` members, then a SHA-256 trailer.

The ZIP comment is ``flexor-sha256:`` and the hex SHA-256 of every byte before the digest
(``docs/container.md``). Members are written deflated with the ZIP epoch as their date, so equal
content gives identical bytes. Reading is bounded: the header, each array and their sum are
checked against :data:`MAX_HEADER_BYTES`, their declared shapes and :data:`MAX_ARRAY_BYTES`
before anything is inflated. What the header means is :mod:`flexor.container`'s business.
"""

import contextlib
import hashlib
import io
import json
import math
import tokenize
import warnings
import zipfile
import zlib

import numpy as np

from .errors import ContainerError
from .topology import MAX_ACTIVATION

__all__ = ["Archive", "encode_container", "digest", "MAX_FILE_BYTES", "MAX_HEADER_BYTES",
           "MAX_ARRAY_BYTES"]

#: Largest container file, ``header.json`` member and sum of array bytes the loader accepts:
#: bounds on memory, checked before anything that size is read or inflated.
MAX_FILE_BYTES = 2 ** 30
MAX_HEADER_BYTES = 2 ** 24
MAX_ARRAY_BYTES = 2 ** 30

_TRAILER = b"flexor-sha256:"
_DIGEST_CHARS = 64
_MEMBER_DATE = (1980, 1, 1, 0, 0, 0)  # the ZIP epoch: no build time inside the file
_HEADER = "header.json"


def digest(data):
    """The SHA-256 (hex) stored in the trailer of the container bytes ``data``."""
    return data[-_DIGEST_CHARS:].decode("ascii")


def encode_container(header, arrays):
    """Low-level writer: a ZIP of ``header.json`` and ``.npy`` members plus the checksum trailer.

    No consistency checks (use :meth:`flexor.container.Container.to_bytes`); tests use it to
    build broken files.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        members = {_HEADER: (json.dumps(header, indent=1, sort_keys=True) + "\n").encode()}
        for name, array in arrays.items():
            npy = io.BytesIO()
            np.lib.format.write_array(npy, np.ascontiguousarray(array), allow_pickle=False)
            members[f"{name}.npy"] = npy.getvalue()
        for name, payload in members.items():
            info = zipfile.ZipInfo(name, date_time=_MEMBER_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, payload, compresslevel=9)
        # The digest covers everything up to itself, including the comment length field.
        zf.comment = _TRAILER + b"0" * _DIGEST_CHARS
    body = buffer.getvalue()[:-_DIGEST_CHARS]
    return body + hashlib.sha256(body).hexdigest().encode("ascii")


#: What NumPy's ``.npy`` header parser raises on hostile text besides ``ValueError``.
_NPY_HEADER_ERRORS = (ValueError, TypeError, SyntaxError, OverflowError, tokenize.TokenError)
_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}
#: Longest ``.npy`` header the loader reads (NumPy writes 128 bytes for the container's arrays).
_MAX_NPY_HEADER = 4096


def _check_trailer(data):
    if len(data) < len(_TRAILER) + _DIGEST_CHARS or \
            data[-_DIGEST_CHARS - len(_TRAILER):-_DIGEST_CHARS] != _TRAILER:
        raise ContainerError("truncated or not a FleXOR container (no checksum trailer at the "
                             "end of the file)")
    body, stored = data[:-_DIGEST_CHARS], data[-_DIGEST_CHARS:]
    if hashlib.sha256(body).hexdigest().encode("ascii") != stored:
        raise ContainerError("checksum mismatch: the file is corrupted (SHA-256 of its content "
                             "differs from the one stored in it)")


@contextlib.contextmanager
def _archive_errors():
    """Turn what ``zipfile``, ``zlib`` and ``json`` raise on a damaged archive into one line."""
    try:
        yield
    except ContainerError:
        raise
    # zlib.error: a damaged deflate stream; NotImplementedError and RuntimeError: members
    # flagged encrypted or patched; RecursionError (a RuntimeError): JSON nested too deeply.
    except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, OSError, NotImplementedError,
            RuntimeError) as error:
        raise ContainerError(f"unreadable archive ({error})") from None


def _unique_keys(pairs):
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = sorted({key for key in keys if keys.count(key) > 1})
        raise ContainerError(f"{_HEADER} has a duplicate key {twice[0]!r}")
    return dict(pairs)


def _no_constant(name):
    raise ContainerError(f"{_HEADER} holds {name}, which is not JSON")


class Archive:
    """The members of a container's ZIP, each read at most once and only within the size its
    expected dtype and shape give (so nothing is inflated past what the header allows).

    ``data`` is the whole file; its checksum trailer is checked first. Every problem raises
    one :class:`~flexor.errors.ContainerError` line.
    """

    def __init__(self, data):
        _check_trailer(data)
        with _archive_errors():
            self._zip = zipfile.ZipFile(io.BytesIO(data))
        infos = self._zip.infolist()
        self._infos = {info.filename: info for info in infos}
        if len(self._infos) != len(infos):
            names = [info.filename for info in infos]
            twice = sorted({name for name in names if names.count(name) > 1})
            raise ContainerError(f"member {twice[0]!r} appears more than once")
        for info in infos:
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ContainerError(f"member {info.filename!r} uses compression method "
                                     f"{info.compress_type}, not stored or deflated")
        self._budget = MAX_ARRAY_BYTES

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._zip.close()

    def header(self):
        info = self._infos.get(_HEADER)
        if info is None:
            raise ContainerError(f"no {_HEADER} member")
        if info.file_size > MAX_HEADER_BYTES:
            raise ContainerError(f"{_HEADER} is {info.file_size} bytes, more than "
                                 f"{MAX_HEADER_BYTES}")
        with _archive_errors():
            with self._zip.open(info) as file:
                text = file.read(MAX_HEADER_BYTES + 1)
            if len(text) > MAX_HEADER_BYTES:
                raise ContainerError(f"{_HEADER} inflates past {MAX_HEADER_BYTES} bytes")
            header = json.loads(text.decode("utf-8"), object_pairs_hook=_unique_keys,
                                parse_constant=_no_constant)
        if not isinstance(header, dict):
            raise ContainerError(f"{_HEADER} is not a JSON object")
        return header

    def check_members(self, arrays):
        """The archive must hold ``header.json`` and exactly the ``.npy`` of each of ``arrays``."""
        expected = {f"{name}.npy" for name in arrays} | {_HEADER}
        for name in sorted(expected - set(self._infos)):
            raise ContainerError(f"array {name[:-4]} is missing")
        for name in sorted(set(self._infos) - expected):
            raise ContainerError(f"member {name!r} is not named by the header")

    def array(self, name, dtype, shape, why=""):
        """Member ``name`` as an array of ``dtype`` and ``shape`` (``None``: any length up to
        :data:`MAX_ACTIVATION`); its ``.npy`` header is checked before its data is inflated."""
        info, dtype = self._infos[f"{name}.npy"], np.dtype(dtype)
        with _archive_errors():
            with self._zip.open(info) as file:
                head = file.read(_MAX_NPY_HEADER)
                found_shape, fortran, found_dtype = _npy_header(name, head)
                offset = _npy_header_size(head)
                expected = tuple(
                    found if size is None and 0 <= found <= MAX_ACTIVATION else size
                    for found, size in zip(found_shape, shape)) \
                    if len(found_shape) == len(shape) else shape
                if found_dtype != dtype or found_shape != expected:
                    wanted = "x".join("N" if size is None else str(size) for size in shape)
                    raise ContainerError(
                        f"array {name} must be {dtype} of shape ({wanted})"
                        f"{f' ({why})' if why else ''}, not {found_dtype} of shape "
                        f"{found_shape}")
                size = math.prod(found_shape) * dtype.itemsize
                self._budget -= size
                if self._budget < 0:
                    raise ContainerError(f"array {name}: the arrays hold more than "
                                         f"{MAX_ARRAY_BYTES} bytes")
                if info.file_size != offset + size:
                    raise ContainerError(f"member {name}: its header declares {size} bytes of "
                                         f"data (shape {found_shape}, {dtype}), "
                                         f"{info.file_size - offset} follow")
                rest = size - (len(head) - offset)
                data = head[offset:] + (file.read(rest + 1) if rest >= 0 else b"")
            if len(data) != size:
                raise ContainerError(f"member {name}: {len(data)} bytes of data, not {size}")
        order = "F" if fortran else "C"
        return np.frombuffer(data, dtype=dtype).reshape(found_shape, order=order).copy()


def _npy_header(name, head):
    """``(shape, fortran_order, dtype)`` of the ``.npy`` bytes ``head`` starts with."""
    stream = io.BytesIO(head)
    try:
        version = np.lib.format.read_magic(stream)
        if version not in _NPY_HEADER_READERS:
            raise ValueError(f"version {version[0]}.{version[1]} is not 1.0 or 2.0")
        with warnings.catch_warnings():  # headers that need Python 2 fix-ups warn first
            warnings.simplefilter("ignore", UserWarning)
            shape, fortran, dtype = _NPY_HEADER_READERS[version](stream)
    except _NPY_HEADER_ERRORS as error:
        raise ContainerError(f"member {name} is not a .npy array ({error})") from None
    if dtype.hasobject:
        raise ContainerError(f"member {name} holds Python objects, not numbers")
    return shape, fortran, dtype


def _npy_header_size(head):
    """Bytes of magic, length field and header text at the start of a checked ``.npy``."""
    if head[6] == 1:
        return 10 + int.from_bytes(head[8:10], "little")
    return 12 + int.from_bytes(head[8:12], "little")
