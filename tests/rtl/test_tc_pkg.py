"""One source for the ISA and one for the sizes: tc_pkg.sv is generated from isa.py and current, every module takes its
encodings from it, and the RTL's sizes come only from hw_targets/fpga.yaml (the modules have no defaults)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tinycompile.accel import isa, svpkg
from tinycompile.accel.config import AccelConfig, shipped_accelerator
from tinycompile.accel.simulate import rtl_sources
from tinycompile.resources import rtl_dir

PKG = rtl_dir() / "rtl" / "tc_pkg.sv"
CONST = re.compile(r"localparam\s+(?:int\s+unsigned|logic\s*\[(\d+):0\])\s+(\w+)\s*=\s*(?:(\d+)'d)?(\d+)\s*;")


def _package_constants() -> dict[str, tuple[int | None, int]]:
    """``name: (bits or None for int, value)`` of every localparam in tc_pkg.sv, parsed from the file itself."""
    found: dict[str, tuple[int | None, int]] = {}
    for msb, name, lit_w, value in CONST.findall(PKG.read_text()):
        bits = int(msb) + 1 if msb else None
        assert lit_w in ("", str(bits)), f"{name}: literal width {lit_w} on a {bits}-bit constant"
        assert name not in found, f"{name} defined twice"
        found[name] = (bits, int(value))
    return found


def test_tc_pkg_is_generated_from_isa_and_current() -> None:
    """tc_pkg.sv is exactly what ``python -m tinycompile.accel.svpkg`` writes from isa.py today."""
    assert PKG.read_text() == svpkg.render(), "tc_pkg.sv is stale: run python -m tinycompile.accel.svpkg"
    assert svpkg.main(["--check"]) == 0


def test_tc_pkg_matches_isa() -> None:
    """Parsed back from the file, every opcode, error code and field position equals isa.py's."""
    c = _package_constants()
    assert c["InstrW"] == (None, isa.INSTR_BITS)
    assert c["ParamRowsPerSet"] == (None, isa.PARAM_ROWS_PER_SET)
    op_bits = isa.COMMON_FIELDS["op"][1]
    for name, code in isa.OPCODES.items():
        assert c[f"Op{svpkg.camel(name)}"] == (op_bits, code), name
    assert c["ErrW"] == (None, isa.ERROR_CODE_BITS)
    for name, code in isa.ERROR_NAMES.items():
        assert c[f"Err{svpkg.camel(name)}"] == (isa.ERROR_CODE_BITS, code), name
        assert code in isa.ERRORS
    assert set(isa.ERROR_NAMES.values()) == set(isa.ERRORS)
    for name, q in (("Load", isa.QUEUE_LOAD), ("Compute", isa.QUEUE_COMPUTE), ("Store", isa.QUEUE_STORE)):
        assert c[f"Queue{name}"][1] == q
    for name, sp in (("Inp", isa.SP_INP), ("Wgt", isa.SP_WGT), ("Param", isa.SP_PARAM)):
        assert c[f"Sp{name}"][1] == sp
    # Every field of every opcode, under its group's prefix (the address pattern's: Pat).
    prefix = {"LOAD": "Ld", "STORE": "Pat", "COMPUTE": "Cmp", "POSTPROC": "Pp", "SYNC": "Sync", "DONE": ""}
    checked = 0
    for op, fields in isa.FIELDS.items():
        for field, (lsb, width, _signed) in fields.items():
            group = "" if field in isa.COMMON_FIELDS else "Pat" if field in isa.PATTERN_FIELDS else prefix[op]
            name = group + svpkg.camel(field)
            assert c[f"{name}Lsb"] == (None, lsb), f"{op}.{field}"
            assert c[f"{name}W"] == (None, width), f"{op}.{field}"
            checked += 1
    assert checked == sum(len(f) for f in isa.FIELDS.values())


def test_svpkg_refuses_an_uncovered_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """A field added to isa.py that no group of the generator covers stops the generator instead of vanishing."""
    monkeypatch.setitem(isa.FIELDS, "COMPUTE", {**isa.FIELDS["COMPUTE"], "new_bit": (12, 1, False)})
    with pytest.raises(ValueError, match="new_bit"):
        svpkg.render()


def _modules() -> list[Path]:
    return [p for p in rtl_sources() if p.name != PKG.name]


def test_modules_take_encodings_from_tc_pkg() -> None:
    """No module defines its own opcodes or error codes, or cuts an instruction word at numeric bit positions."""
    own_const = re.compile(r"localparam\s+logic\s*\[[^\]]*\]\s*(Op|Err)[A-Z]\w*\s*=")
    numeric_slice = re.compile(r"\b(instr_i|ir_q|ir_d|q_head\[\d\]|f_instr)\s*\[\s*\d")
    bad = []
    for path in _modules():
        for k, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("//")[0]
            if own_const.search(code) or numeric_slice.search(code):
                bad.append(f"{path.name}:{k}: {line.strip()}")
    assert not bad, "\n".join(bad)
    users = [p.name for p in _modules() if "tc_pkg::" in p.read_text()]
    for name in ("tc_accel.sv", "tc_fetch.sv", "tc_load.sv", "tc_compute.sv", "tc_store.sv", "tc_postproc.sv",
                 "tc_agu.sv"):
        assert name in users, f"{name} does not use tc_pkg"


SIZE_PARAMS = ("N", "InpDepth", "WgtTiles", "WgtRows", "AccDepth", "OutDepth", "ParamSets", "ParamRows", "ParamWords",
               "DataW", "MemWords", "Words")


def test_rtl_has_no_size_defaults() -> None:
    """Array and scratchpad sizes reach the RTL only as parameters: no module, bench or harness defaults one."""
    default = re.compile(r"parameter\s+int\s+unsigned\s+(\w+)\s*=")
    files = sorted(p for folder in ("rtl", "tb", "synth") for p in (rtl_dir() / folder).glob("*.sv"))
    assert len(files) > len(_modules())
    bad = [f"{p.name}: {m}" for p in files for m in default.findall(p.read_text()) if m in SIZE_PARAMS]
    assert not bad, bad


@pytest.mark.parametrize("n", [4, 8, 16])
def test_sizes_come_from_the_fpga_target(n: int) -> None:
    """The compiler's sizes and the tc_accel parameters are one computation on fpga.yaml's accelerator: section
    (equal bytes for every N)."""
    acc = shipped_accelerator()
    cfg = AccelConfig.for_array(n)
    depths = dict(inp_depth=int(acc["input_buffer_kb"] * 1024) // n,
                  wgt_tiles=int(acc["weight_buffer_kb"] * 1024) // (n * n),
                  acc_depth=int(acc["acc_buffer_kb"] * 1024) // (4 * n),
                  out_depth=int(acc["output_buffer_kb"] * 1024) // n, param_sets=acc["param_sets"],
                  inp_ports=max(1, min(acc["window_rows"], n // 3)))
    assert cfg == AccelConfig(n=n, **depths)
    assert cfg.rtl_parameters() == {"N": n, "InpDepth": depths["inp_depth"], "WgtTiles": depths["wgt_tiles"],
                                    "AccDepth": depths["acc_depth"], "OutDepth": depths["out_depth"],
                                    "ParamSets": depths["param_sets"], "InpPorts": depths["inp_ports"]}
    assert cfg.inp_ports == {4: 1, 8: 2, 16: 3}[n]  # two 3-tap rows side by side at N = 8, three at 16
    # a target that overrides one size keeps the others
    assert AccelConfig.for_array(n, {"param_sets": 8}) == AccelConfig(n=n, **{**depths, "param_sets": 8})
