"""Back ends: one :class:`Backend` per target kind (``mcu``, ``fpga``, or one a package adds), found by the kind.

* :mod:`.base` - the interface (:class:`Backend`, :class:`Workload`, :class:`BuildResult`);
* :mod:`.registry` - kind -> back end (built-ins, entry points ``tinycompile.backends``, :func:`register_backend`);
* :mod:`.flow` - the shared front half of ``build``: trial or model -> workload -> back end -> verdict -> report;
* :mod:`.report` - the one ``report.json`` schema and its summary line;
* :mod:`.mcu`, :mod:`.fpga` - the built-in back ends (thin: the work is in :mod:`tinycompile.mcu`, :mod:`tinycompile.fpga`).
"""

from tinycompile.backends.base import Backend, BuildResult, Workload
from tinycompile.backends.registry import get_backend, kinds, register_backend

__all__ = ["Backend", "BuildResult", "Workload", "get_backend", "kinds", "register_backend"]
