"""The C names of one generated library (``tinycompile build --name``), so that several link into one program.

A library exports the runner's API, the kernels TVM generated and the TVM backend shims the kernels call; all of
them are global symbols, and two libraries with today's names collide (``tc_model_run``, ``TVMBackendAllocWorkspace``,
``__tvm_ffi__library_ctx``, ...). With ``--name kws``:

* the API ``tc_model_<x>`` becomes ``kws_<x>`` (``kws_run``, ``kws_workspace_peak``);
* the profiling names ``tc_<x>`` become ``kws_<x>`` (``kws_profile_hook``, ``kws_kernel_out_offset``);
* the header's macros ``TC_<X>`` become ``KWS_<X>`` (``KWS_INPUT_SIZE``, the include guard, ``KWS_PROFILE``);
* every global symbol ``S`` of TVM's naming (kernels ``__tvm_ffi_<kernel>``, the library context, the workspace
  shims and the function pointers LLVM-built kernels call them through) becomes ``kws_S``.

The default name ``tc_model`` keeps every name exactly as it always was.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from tinycompile.errors import UserError

DEFAULT_NAME = "tc_model"
_DEFAULT_PREFIX = "tc"  # the prefix of the default library's profiling names and macros
_VALID = re.compile(r"[a-z][a-z0-9_]{0,31}")
# Global symbols TVM names, besides the kernels ``__tvm_ffi_<kernel>``: the library context TVM's codegens define,
# the workspace functions the C kernels call, and the pointers to them that LLVM-built kernels call through.
TVM_SHIMS = (
    "__tvm_ffi__library_ctx",
    "TVMBackendAllocWorkspace",
    "TVMBackendFreeWorkspace",
    "__TVMBackendAllocWorkspace",
    "__TVMBackendFreeWorkspace",
)
KERNEL_PREFIX = "__tvm_ffi_"  # TVM's symbol of a kernel is this followed by the PrimFunc's name


@dataclass(frozen=True)
class Naming:
    """How one library names its C identifiers; ``name`` is what ``--name`` gave (checked on construction)."""

    name: str = DEFAULT_NAME

    def __post_init__(self) -> None:
        if not _VALID.fullmatch(self.name):
            raise UserError(f"--name must be a lowercase C identifier of 1 to 32 characters (a-z, 0-9, _; starting "
                            f"with a letter), but got {self.name!r}")
        if self.name == _DEFAULT_PREFIX:
            raise UserError(f"--name {self.name!r} would clash with the default library's names (tc_profile_hook, "
                            f"TC_INPUT_SIZE, ...); pick another name")

    @property
    def is_default(self) -> bool:
        """Whether this is the default library, whose names stay as they always were."""
        return self.name == DEFAULT_NAME

    @property
    def prefix(self) -> str:
        """The prefix of the profiling names (``tc`` by default, else the name)."""
        return _DEFAULT_PREFIX if self.is_default else self.name

    def api(self, what: str) -> str:
        """A function of the runner's API: ``api("run")`` is ``tc_model_run`` by default."""
        return f"{self.name}_{what}"

    def ident(self, what: str) -> str:
        """A profiling identifier: ``ident("profile_hook")`` is ``tc_profile_hook`` by default."""
        return f"{self.prefix}_{what}"

    def macro(self, what: str) -> str:
        """A macro of the header: ``macro("INPUT_SIZE")`` is ``TC_INPUT_SIZE`` by default."""
        return f"{self.prefix.upper()}_{what}"

    def symbol(self, tvm_symbol: str) -> str:
        """The library's name for a global symbol TVM names (a kernel or a shim)."""
        return tvm_symbol if self.is_default else f"{self.name}_{tvm_symbol}"

    def kernel(self, primfunc: str) -> str:
        """The symbol of the kernel generated from the PrimFunc ``primfunc``."""
        return self.symbol(KERNEL_PREFIX + primfunc)

    def renames(self, symbols: Iterable[str]) -> dict[str, str]:
        """Those of ``symbols`` that TVM names (``is_tvm_symbol``) -> this library's names; empty by default."""
        return {} if self.is_default else {s: self.symbol(s) for s in symbols if is_tvm_symbol(s)}

    def rename_source(self, c_source: str) -> str:
        """``c_source`` (kernels or the ABI header) with every identifier TVM names renamed to this library's."""
        return c_source if self.is_default else _TVM_IDENT.sub(lambda m: self.symbol(m.group(0)), c_source)


def is_tvm_symbol(symbol: str) -> bool:
    """Whether ``symbol`` is a global symbol TVM names (a kernel, the library context or a shim)."""
    return symbol.startswith(KERNEL_PREFIX) or symbol in TVM_SHIMS


_TVM_IDENT = re.compile(r"\b(?:" + re.escape(KERNEL_PREFIX) + r"\w+|" + "|".join(map(re.escape, TVM_SHIMS)) + r")\b")
