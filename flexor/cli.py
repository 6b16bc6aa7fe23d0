"""Command-line plumbing shared by every entry point: one-line errors and all-or-nothing writes."""

import argparse
import os
import sys
import tempfile

__all__ = ["CliParser", "positive_int", "nonnegative_int", "write_files_atomically", "run_cli"]


class CliError(Exception):
    """A user error to report as one line and exit status 2."""


class CliParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are a single ``prog: error: ...`` line, exit status 2."""

    def error(self, message):
        raise CliError(message)


def _integer(text, minimum, what):
    try:
        value = int(text, 10)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}")
    return value


def positive_int(text):
    """``argparse`` type: an integer >= 1, with a message that quotes the bad value."""
    return _integer(text, 1, "a positive integer")


def nonnegative_int(text):
    """``argparse`` type: an integer >= 0."""
    return _integer(text, 0, "a non-negative integer")


def write_files_atomically(contents):
    """Write ``{path: text or bytes}`` so that either every file appears complete or none changes.

    Each file is first written to a temporary file in its own directory and renamed into place
    only once all of them were written. A missing directory raises ``CliError`` naming it.
    """
    for path in contents:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise CliError(f"output directory {os.path.dirname(path) or '.'!r} does not exist")
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


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def run_cli(prog, main, argv=None):
    """Run ``main(argv)`` and turn user errors into one ``prog: error: ...`` line and exit 2.

    ``CliError`` and ``ValueError``/``TypeError`` raised while checking input are user errors;
    anything else is a bug and keeps its traceback.
    """
    try:
        status = main(argv)
    except (CliError, ValueError, TypeError) as error:
        # One line even when the message quotes an argument with a line break in it.
        print(f"{prog}: error: {' '.join(str(error).splitlines())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return status or 0
