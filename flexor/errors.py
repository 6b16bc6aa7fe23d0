"""The errors that are the user's to fix, not the program's.

Every command-line entry point (:func:`flexor.cli.run_cli`) reports a :class:`UserError` as one
line and exit status 2. A new user error derives from it, so that the entry points need not
catch it by name.
"""

__all__ = ["UserError", "InputError", "ToolMissing", "ContainerError"]


class UserError(Exception):
    """Bad input (arguments, files, sizes) or a missing tool, reported as one line."""


class InputError(UserError, ValueError):
    """An input the user gave is unusable: a file, a data set, a recipe, a combination of
    arguments, a design that does not fit. Also a ``ValueError``, which is what the library
    functions that raise it document."""


class ToolMissing(UserError, RuntimeError):
    """A tool the run needs (a simulator, Yosys, a solver) is not installed; the message says
    how to install it."""


class ContainerError(UserError, ValueError):
    """A container file or object is unreadable, corrupted, of another version or inconsistent."""
