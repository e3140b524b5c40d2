"""The shared lowering (QuantGraph -> Relax): each op's PrimFunc names its op by attribute, identical ops included,
and both back ends read the attribute; the package stands below both back ends."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import tvm
import tvm_ffi

from tinycompile.lowering import OP_ATTR, OP_INDEX_ATTR, op_of, to_relax
from tinycompile.quant.graph import QuantGraph

from nets import SPECS, random_graph, repeated_blocks

PACKAGE = Path(__file__).resolve().parent.parent / "tinycompile"


def called_functions(mod: tvm.IRModule) -> list[tuple[tvm.ir.GlobalVar, tvm.tirx.PrimFunc]]:
    """The PrimFuncs ``main`` calls, in call order."""
    call_tir = tvm.ir.Op.get("relax.call_tir")
    return [(b.value.args[0], mod[b.value.args[0]]) for block in mod["main"].body.blocks for b in block.bindings
            if isinstance(b.value, tvm.relax.Call) and b.value.op.same_as(call_tir)]


def bare(func: tvm.tirx.PrimFunc) -> tvm.tirx.PrimFunc:
    """``func`` without the op attributes."""
    return func.without_attr(OP_INDEX_ATTR).without_attr(OP_ATTR)


def compute_ops(graph: QuantGraph) -> list[int]:
    return [i for i, op in enumerate(graph.ops) if op.op != "flatten"]


@pytest.mark.parametrize("name", ["repeated", *SPECS])
def test_every_compute_op_gets_its_own_attributed_primfunc(name: str) -> None:
    graph = random_graph(repeated_blocks() if name == "repeated" else SPECS[name])
    calls = called_functions(to_relax(graph))
    assert [op_of(f) for _, f in calls] == [(i, graph.ops[i].op) for i in compute_ops(graph)]
    assert [int(f.attrs[OP_INDEX_ATTR]) for _, f in calls] == compute_ops(graph)
    assert len({gv.name_hint for gv, _ in calls}) == len(calls)  # no function is shared between ops


def test_identical_ops_keep_distinct_primfuncs_and_attributes() -> None:
    graph = random_graph(repeated_blocks())
    funcs = {op_of(f)[0]: f for _, f in called_functions(to_relax(graph))}
    for a, b in ((1, 3), (2, 4)):  # the two blocks' dwconv and pointwise conv
        assert graph.ops[a].op == graph.ops[b].op and graph.ops[a].out_shape == graph.ops[b].out_shape
        assert tvm_ffi.structural_equal(bare(funcs[a]), bare(funcs[b]))  # the same kernel but for the attributes
        assert op_of(funcs[a]) == (a, graph.ops[a].op) and op_of(funcs[b]) == (b, graph.ops[b].op)


def test_mcu_shares_identical_kernels_and_keeps_each_calls_op() -> None:
    from tinycompile.mcu.lower import lower

    graph = random_graph(repeated_blocks())
    lowered = lower(graph)
    assert [c.op_index for c in lowered.calls] == compute_ops(graph)
    kernels = [c.kernel for c in lowered.calls]
    assert kernels == ["l0_conv", "l1_dwconv", "l2_conv", "l1_dwconv", "l2_conv", "l5_maxpool", "l7_dense"]
    assert sorted(gv.name_hint for gv in lowered.tir.functions) == sorted(set(kernels))


def _imports(folder: Path) -> set[str]:
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
    return names


def test_lowering_stands_below_both_back_ends() -> None:
    def reaches(imports: set[str], package: str) -> bool:
        return any(m == package or m.startswith(package + ".") for m in imports)

    lowering = _imports(PACKAGE / "lowering")
    assert not reaches(lowering, "tinycompile.mcu") and not reaches(lowering, "tinycompile.fpga")
    assert not reaches(_imports(PACKAGE / "fpga"), "tinycompile.mcu")
