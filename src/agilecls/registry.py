"""Named registries: the one way agilecls keeps "name -> implementation" tables.

Estimators, salience methods, query strategies, calibrators and recipes each live in a
:class:`Registry` filled by its ``register`` decorator. A registry refuses a second definition under
a taken name (two definitions of one name would silently replace each other), keeps metadata beside
each entry (a display title, whether a strategy needs a model, ...), and answers an unknown name with
an error that lists the known ones. It reads like a dict: ``name in reg``, ``reg[name]``,
``sorted(reg)``, ``reg.items()``.

Examples
--------
>>> COLOURS = Registry("colour")
>>> @COLOURS.register("red", title="Red", warm=True)
... def red():
...     return "#f00"
>>> COLOURS["red"](), COLOURS.meta("red")["title"], COLOURS.names(warm=True)
('#f00', 'Red', ['red'])
>>> try:
...     COLOURS["blue"]
... except ValueError as err:
...     print(err)
unknown colour 'blue'; choose one of red
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """A name no entry of the registry has. A ``ValueError`` for callers that check user input, a
    ``KeyError`` for dict-like use; its message lists the known names."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(Mapping[str, T], Generic[T]):
    """Entries of one kind by name, filled by the :meth:`register` decorator, in registration order.

    Parameters
    ----------
    kind : str
        What an entry is, for error messages (``"salience method"``, ``"strategy"``).
    sort_names : bool, default=False
        List the known names sorted in error messages (else in registration order).
    """

    def __init__(self, kind: str, *, sort_names: bool = False):
        self.kind = kind
        self.sort_names = sort_names
        self._entries: dict[str, T] = {}
        self._meta: dict[str, MappingProxyType] = {}

    def register(self, name: str, **metadata: Any) -> Callable[[T], T]:
        """Decorator that adds the decorated object as ``name`` (see :meth:`add`); returns it unchanged.

        Parameters
        ----------
        name : str
            The entry's name; a name already taken by another object is refused.
        **metadata
            Facts about the entry, read back with :meth:`meta` and filtered on with :meth:`names`.
        """

        def wrap(obj: T) -> T:
            self.add(name, obj, **metadata)
            return obj

        return wrap

    def add(self, name: str, obj: T, **metadata: Any) -> T:
        """Add ``obj`` as ``name`` with ``metadata``; the same (or an equal) object again is a no-op.

        Raises
        ------
        ValueError
            ``name`` is empty or already names a different object.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} needs a non-empty string name, not {name!r}")
        if name in self._entries:
            existing = self._entries[name]
            if existing is obj or existing == obj:
                return existing
            raise ValueError(f"{self.kind} {name!r} is already registered by {_describe(existing)}; "
                             f"choose another name for {_describe(obj)}")
        self._entries[name] = obj
        self._meta[name] = MappingProxyType(dict(metadata))
        return obj

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self._listed())}") from None

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"

    def check(self, name: str) -> str:
        """``name`` when it is registered, else an :class:`UnknownNameError` listing the known names."""
        self[name]
        return name

    def meta(self, name: str) -> Mapping[str, Any]:
        """The metadata ``name`` was registered with (read-only; empty when none was given)."""
        self.check(name)
        return self._meta[name]

    def names(self, **where: Any) -> list[str]:
        """The registered names, in registration order, whose metadata holds every ``key=value`` of ``where``.

        Examples
        --------
        >>> reg = Registry("strategy")
        >>> _ = reg.add("random", object(), needs_model=False)
        >>> _ = reg.add("entropy", object(), needs_model=True)
        >>> reg.names(), reg.names(needs_model=True)
        (['random', 'entropy'], ['entropy'])
        """
        return [name for name, meta in self._meta.items()
                if all(key in meta and meta[key] == value for key, value in where.items())]

    def _listed(self) -> list[str]:
        return sorted(self._entries) if self.sort_names else list(self._entries)


def _describe(obj: object) -> str:
    """A short name for an entry in an error: its qualified name when it has one."""
    target = getattr(obj, "build", obj)  # a record around a function (a recipe) is named by the function
    qualname = getattr(target, "__qualname__", None)
    module = getattr(target, "__module__", None)
    if qualname:
        return f"{module}.{qualname}" if module else qualname
    return repr(obj)
