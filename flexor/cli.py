"""Command-line plumbing shared by every entry point: one-line errors and all-or-nothing writes."""

import argparse
import contextlib
import os
import re
import sys
import tempfile
import warnings

from .errors import UserError

__all__ = ["CliParser", "positive_int", "nonnegative_int", "output_file", "write_files_atomically",
           "refusals", "run_cli"]


class CliError(UserError):
    """A bad command line or output path, reported as one line and exit status 2."""


class CliParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are a single ``prog: error: ...`` line, exit status 2."""

    def error(self, message):
        raise CliError(message)


def _integer(text, minimum, what):
    # ASCII digits only: int() would also take ' 8', '8_0' and fullwidth or other Unicode digits.
    if not isinstance(text, str) or not re.fullmatch(r"-?[0-9]+", text) or \
            len(text) > _MAX_DIGITS:
        raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}")
    value = int(text, 10)
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}")
    return value


#: Longest integer argument read (far past any count or seed; int() is quadratic in digits).
_MAX_DIGITS = 100


def positive_int(text):
    """``argparse`` type: an integer >= 1, with a message that quotes the bad value."""
    return _integer(text, 1, "a positive integer")


def nonnegative_int(text):
    """``argparse`` type: an integer >= 0."""
    return _integer(text, 0, "a non-negative integer")


def output_file(text):
    """``argparse`` type: a path that can name a file to write (not empty, not ending in ``/``)."""
    if not text or text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"must name a file, not {text!r}")
    return text


def write_files_atomically(contents, *, inputs=()):
    """Write ``{path: text or bytes}`` so that either every file appears complete or none changes.

    Every destination is checked first (its directory exists, it is not a directory, it is not
    one of the ``inputs`` the run read); then each file is written to a temporary file in its
    own directory, and only once all of them are written are they renamed into place. What
    remains possible: a rename that fails after an earlier one succeeded (the directory changed
    under us, a disk error), which leaves the earlier files new and the later ones as they were.
    Problems raise ``CliError`` naming the file.
    """
    for path in contents:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise CliError(f"output directory {os.path.dirname(path) or '.'!r} does not exist")
        if os.path.isdir(path):
            raise CliError(f"cannot write {path!r}: Is a directory")
        for source in inputs:
            if os.path.exists(path) and os.path.exists(source) and os.path.samefile(path, source):
                raise CliError(f"output {path!r} would overwrite the input {source!r}")
    staged = []
    try:
        for path, data in contents.items():
            mode = "wb" if isinstance(data, bytes) else "w"
            fd, temporary = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)),
                                             prefix=".tmp-", suffix=os.path.basename(path))
            staged.append((temporary, path))
            with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as file:
                file.write(data)
            # mkstemp makes the file private (0600); give it the mode a plain open() would.
            os.chmod(temporary, 0o666 & ~_umask())
        for temporary, path in staged:
            os.replace(temporary, path)
    except OSError as error:
        # Name the file the user asked for: error.filename may be the temporary file.
        raise CliError(f"cannot write {path!r}: {error.strerror}") from None
    finally:
        for temporary, _ in staged:
            if os.path.exists(temporary):
                os.unlink(temporary)


@contextlib.contextmanager
def refusals():
    """Report the ``ValueError``/``TypeError`` by which the call in the ``with`` block refuses
    its parameters as a :class:`CliError`.

    Only for calls whose documented refusal is one of those (a constructor checking a width or
    a lane count the command line passed on): anywhere else they are bugs and keep their
    traceback.
    """
    try:
        yield
    except (ValueError, TypeError) as error:
        if isinstance(error, UserError):
            raise
        raise CliError(str(error)) from None


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def run_cli(prog, main, argv=None):
    """Run ``main(argv)`` and turn user errors into one ``prog: error: ...`` line and exit 2.

    A :class:`~flexor.errors.UserError` (``CliError``, ``InputError``, ``ContainerError``,
    ``ToolMissing``...) and running out of memory (a ``ulimit``) are the user's to fix; anything
    else, a plain ``ValueError`` or ``TypeError`` included, is a bug and keeps its traceback
    (:func:`refusals` turns a parameter refusal into a ``CliError`` where a CLI passes
    arguments on). A :class:`~flexor.xor_config.RankWarning` is printed as one
    ``prog: warning: ...`` line once ``main`` has succeeded, and not at all when it fails (the
    error is then the only line).
    """
    from .xor_config import RankWarning

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RankWarning)
            status = main(argv)
    except UserError as error:
        # One line even when the message quotes an argument with a line break in it.
        print(f"{prog}: error: {' '.join(str(error).splitlines())}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{prog}: error: out of memory (raise the memory limit or give a smaller input)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    ranks = dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, RankWarning))
    for message in ranks:
        print(f"{prog}: warning: {' '.join(message.splitlines())}", file=sys.stderr)
    for w in caught:
        if not issubclass(w.category, RankWarning):
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return status or 0
