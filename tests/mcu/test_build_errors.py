"""Clear one-line failures of ``tinycompile build``: over budget, missing tools."""

from __future__ import annotations

import pytest

from tinycompile.arch import ArchSpec, Layer
from tinycompile.errors import UserError
from tinycompile.mcu.backend import check_budget
from tinycompile.mcu.firmware import require_tool
from tinycompile.targets import load_target


def test_arena_over_sram_is_refused_before_building() -> None:
    big = ArchSpec((64, 64, 64), 10, (Layer("conv", (-1,), channels=64, kernel=(3, 3), padding=(1, 1, 1, 1)),
                                       Layer("gap", (0,)), Layer("dense", (1,), channels=10)))  # fmt: skip
    with pytest.raises(UserError, match=r"activation arena \(\d+ B\).*exceeds rv32imc's SRAM \(32768 B\)"):
        check_budget(big, load_target("rv32imc"))


def test_missing_tool_names_the_apt_package() -> None:
    with pytest.raises(UserError, match="install it with: sudo apt-get install qemu-system-misc"):
        _missing("qemu-system-riscv32")


def _missing(tool: str) -> None:
    import shutil
    from unittest import mock

    with mock.patch.object(shutil, "which", return_value=None):
        require_tool(tool)
