"""The FPGA back end as ``tinycompile.commands.build`` expects it: ``build(request) -> BuildOutcome``."""

from __future__ import annotations

import json

from tinycompile.commands.build import BuildOutcome, BuildRequest
from tinycompile.fpga.build import build_fpga


def build(request: BuildRequest) -> BuildOutcome:
    """Run the FPGA build for one trial (``request.array`` picks the array size, else the target's)."""
    code = build_fpga(request.trial, request.target, request.out, request.array, request.vectors)
    report = json.loads((request.out / "report.json").read_text())
    return BuildOutcome(code == 0, report)
