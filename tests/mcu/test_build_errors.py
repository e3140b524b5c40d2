"""Clear one-line failures of ``tinycompile build``: over budget, missing tools."""

from __future__ import annotations

import re

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


@pytest.mark.slow
def test_firmware_over_the_emulated_flash_is_one_line(tmp_path) -> None:
    """The linker's region overflow becomes one line naming the target, the region and how far over it is."""
    from support import run_cli
    from tflite_models import ModelBuilder

    text = load_target("cortex-m4").path.read_text()
    small = tmp_path / "small-flash.yaml"
    small.write_text(text.replace("name: cortex-m4", "name: small-flash").replace("flash_size: 0x00400000",
                                                                                  "flash_size: 0x00004000"))
    b = ModelBuilder(seed=0)
    x = b.input((1, 8, 8, 8), scale=0.05, zero_point=0)
    model = b.save(tmp_path / "conv.tflite", [b.conv2d(x, 32, (3, 3), (1, 1), "SAME", "RELU")])
    proc = run_cli("build", str(model), "--target", str(small), "-o", str(tmp_path / "out"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert re.search(r"the firmware does not fit small-flash's flash \(16,384 B\) by [\d,]+ B", lines[-1]), lines[-1]
