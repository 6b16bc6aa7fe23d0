"""Reading an input file the user named: a regular file of bounded size, or one clear error.

Every loader of user-supplied files (containers, matrix files, sidecars) reads through
:func:`read_input_file`, so a FIFO, a device such as ``/dev/zero`` or a file far larger than any
input of the flow is refused at once instead of blocking or exhausting memory.
"""

import os
import stat

from .errors import InputError

__all__ = ["read_input_file"]


def read_input_file(path, *, limit):
    """The bytes of the regular file ``path``, at most ``limit`` bytes long.

    Raises ``ValueError`` with one line that starts with ``path``: no such file, a directory,
    not a regular file (FIFO, device, socket), larger than ``limit``, or unreadable.
    """
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from None
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise InputError(f"{path}: is a directory, not a file")
        if not stat.S_ISREG(mode):
            raise InputError(f"{path}: not a regular file (a FIFO, device or socket)")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(descriptor, min(limit + 1 - size, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from None
    finally:
        os.close(descriptor)
    data = b"".join(chunks)
    if len(data) > limit:
        raise InputError(f"{path}: larger than {limit} bytes, more than any input of the flow")
    return data
