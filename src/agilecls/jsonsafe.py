"""One converter from numpy-laden results to values :func:`json.dumps` and web clients accept."""

from __future__ import annotations

import math

import numpy as np


def jsonable(value, *, finite: bool = False):
    """A JSON-safe copy of ``value``: numpy scalars and arrays as Python numbers and lists.

    Parameters
    ----------
    value : object
        Dicts (keys become strings), lists, tuples, numbers, strings and None, nested; any other
        object becomes its ``str``.
    finite : bool, default=False
        Turn NaN and infinities into None (strict JSON, as web clients parse it); else they stay
        floats, which :func:`json.dumps` writes as ``NaN`` and :func:`json.loads` reads back.

    Returns
    -------
    object

    Examples
    --------
    >>> jsonable({"auc": float("nan"), "n": np.int64(3), "p": np.array([0.5, 1.0])}, finite=True)
    {'auc': None, 'n': 3, 'p': [0.5, 1.0]}
    >>> jsonable((np.float32(0.25), None, "a"))
    [0.25, None, 'a']
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v, finite=finite) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [jsonable(v, finite=finite) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if finite and not math.isfinite(value) else value
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return str(value)
