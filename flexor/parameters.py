"""The one check of an integer parameter that every constructor and function uses.

A value of the wrong type raises ``TypeError``, one out of range ``ValueError``; both messages
name the parameter and quote the value (``"lanes must be an integer >= 1, not 0"``).
"""

import numpy as np

__all__ = ["check_int"]


def check_int(name, value, *, minimum=1, maximum=None):
    """Return ``value`` as an ``int`` if it is an integer in ``minimum .. maximum``, else raise.

    Parameters
    ----------
    name : str
        The parameter's name, as the caller's signature spells it.
    value : object
        The value to check. Python and NumPy integers pass; ``bool`` does not.
    minimum : int
        Smallest allowed value (1: a positive integer; 0: a non-negative one).
    maximum : int or None
        Largest allowed value, or ``None`` for no upper bound.

    Raises
    ------
    TypeError
        ``value`` is not an integer.
    ValueError
        ``value`` is below ``minimum`` or above ``maximum``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if maximum is None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")
    if maximum is not None and not minimum <= value <= maximum:
        raise ValueError(f"{name} must be an integer in {minimum}..{maximum}, not {value!r}")
    return int(value)
