"""The back ends, by target kind: the built-in ones, those installed packages declare, and any registered at run time.

A package adds a kind without touching tinycompile by declaring an entry point in the group ``tinycompile.backends``
(name: the kind, value: ``module:Class``), or a program calls :func:`register_backend`. Classes load lazily: the
cost model asks for a back end thousands of times a second, and ``tinycompile --help`` must not import TVM.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from importlib.metadata import entry_points

from tinycompile.backends.base import Backend
from tinycompile.errors import UserError

ENTRY_POINT_GROUP = "tinycompile.backends"
BUILTIN = {"mcu": "tinycompile.backends.mcu:McuBackend", "fpga": "tinycompile.backends.fpga:FpgaBackend",
           "soc": "tinycompile.backends.soc:SocBackend"}
_registered: dict[str, type[Backend]] = {}


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Make ``cls`` the back end of target kind ``cls.kind`` (usable as a class decorator)."""
    if not isinstance(getattr(cls, "kind", None), str) or not cls.kind:
        raise ValueError(f"{cls.__name__} must set the class attribute kind (the target YAML's kind)")
    _registered[cls.kind] = cls
    get_backend.cache_clear()
    return cls


def kinds() -> list[str]:
    """Every target kind with a back end."""
    return sorted({*BUILTIN, *_declared(), *_registered})


@lru_cache(maxsize=None)
def get_backend(kind: str) -> Backend:
    """The back end of target kind ``kind`` (one instance per kind); UserError for an unknown kind."""
    if kind in _registered:
        return _registered[kind]()
    where = _declared().get(kind) or BUILTIN.get(kind)
    if where is None:
        raise UserError(f"no back end for target kind {kind!r}; known kinds: {', '.join(kinds())}")
    module, _, name = where.partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, Backend)) or cls.kind != kind:
        raise UserError(f"the back end {where} declared for kind {kind!r} is not a Backend of that kind")
    return cls()


@lru_cache(maxsize=1)
def _declared() -> dict[str, str]:
    """Kinds that installed packages declare (entry points), kind -> ``module:Class``."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
