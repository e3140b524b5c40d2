"""The FPGA build report: per layer predicted vs measured cycles, MAC-array utilisation, bytes moved; totals.

Predicted cycles: ``predicted_cycles`` replays the whole program through the timing model and attributes to each
layer the time between consecutive layer ends (exactly how the RTL figures are measured: runs cut after each
layer); ``isolated_cycles`` is the layer costed without its network (behind a typical predecessor), which is what
the search's cost model sums (tinycompile.cost.model -> tinycompile.fpga.schedule.fpga_layer_cycles).

Two utilisation figures, both per layer and for the network:
  utilisation     the RTL's own counter: cycles the array was issued an input row / cycles (rtl_sim/ISA.md, CSR 2)
  mac_efficiency  useful multiply-accumulates / (N^2 x cycles): a depthwise row uses N of the N^2 MACs
"""

from __future__ import annotations

import json
from typing import Any

from tinycompile.accel.isa import ACC_LANE_BYTES, PARAM_ROWS_PER_SET
from tinycompile.accel.layout import cpad
from tinycompile.fpga.codegen import AccelProgram
from tinycompile.fpga.rtl import AcceleratorFault, RtlRun
from tinycompile.fpga.schedule import layer_timing, network_timing
from tinycompile.resources import rtl_dir

SYNTH_RESULTS = "synth/estimate.json"  # in the RTL folder (rtl_sim/, shipped inside the package)


def synthesis_estimate(n: int) -> dict[str, Any] | str:
    """The synthesis figures for this array size from rtl_sim/synth/estimate.json, or "not measured"."""
    try:
        path = rtl_dir() / SYNTH_RESULTS
        rows = json.loads(path.read_text())
    except (OSError, ValueError):
        return "not measured"
    for row in rows if isinstance(rows, list) else []:
        if row.get("n") == n:
            return {**row, "source": f"rtl_sim/{SYNTH_RESULTS}",
                    "note": "synthesised with the small FPGA scratchpads in 'params', not the simulated sizes"}
    return "not measured"


def make_report(regions: list[tuple[AccelProgram, RtlRun]], placement: dict[int, str], op_names: list[str],
                mismatches: list[dict[str, int]], target: Any, inputs: int) -> dict[str, Any]:
    """The report dict (what report.json holds): one accelerator region (whole network) or several with host ops."""
    p = regions[0][0].params
    n2 = p.n * p.n
    codes, measured, in_network = {}, {}, {}
    for prog, run in regions:
        measured.update({m.index: m for m in run.layers})
        # Predicted the way the RTL is measured: the whole program through the timing model, split at the stamps.
        in_network.update(zip([c.index for c in prog.layers],
                              network_timing([prog.instrs_of(c.index) for c in prog.layers], p.n)))
        codes.update({c.index: c for c in prog.layers})
    layers = []
    for index, name in enumerate(op_names):
        row: dict[str, Any] = {"index": index, "op": name, "ran_on": placement.get(index, "accelerator")}
        code = codes.get(index)
        if row["ran_on"] == "host":
            row.update(ran_on="host (TVM, llvm)", macs=None, instructions=None)
            layers.append(row)
            continue
        if code is None or code.geom is None or code.tiling is None:
            row.update(ran_on="view (no data moved)", macs=0, instructions=0)
            layers.append(row)
            continue
        pred = layer_timing(code.geom, p)
        m = measured.get(code.index)
        macs = code.geom.macs()
        predicted = in_network[code.index]
        row.update(
            kind=code.geom.kind, macs=macs, instructions=code.count,
            tiling={"passes": len(code.tiling.passes), "blocks": sum(len(b) for b in code.tiling.blocks),
                    "k_chunks": code.tiling.chunks},
            predicted_cycles=predicted, isolated_cycles=pred.cycles, measured_cycles=None if m is None else m.cycles,
            relative_error=None if m is None or not m.cycles else (predicted - m.cycles) / m.cycles,
            mac_active_cycles=None if m is None else m.mac_cycles,
            utilisation=None if m is None or not m.cycles else m.mac_cycles / m.cycles,
            mac_efficiency=None if m is None or not m.cycles else macs / (n2 * m.cycles),
            bytes_moved=pred.bytes_moved(p.n),
            bytes_detail={"load": pred.load_words * p.n, "store": pred.store_words * p.n, "fetch": pred.fetch_words * p.n},
        )  # fmt: skip
        layers.append(row)
    cycles = sum(run.cycles[0] for _, run in regions)
    mac_cycles = sum(run.mac_cycles[0] for _, run in regions)
    latency_ms = cycles / (target.clock_mhz * 1e3)
    macs = sum(r.get("macs") or 0 for r in layers)
    errors = [abs(r["relative_error"]) for r in layers if r.get("relative_error") is not None]
    return {
        "target": target.name,
        "backend": "fpga",
        "codegen": "relax.ext.tinyaccel",
        "array": p.n,
        "scratchpads": {"inp_words": p.inp_depth, "wgt_tiles": p.wgt_tiles, "acc_rows": p.acc_depth,
                        "out_words": p.out_depth, "param_sets": p.param_sets, "inp_ports": p.inp_ports},
        "clock_mhz": target.clock_mhz,
        "input_packing": next(({"taps_per_word": q.pack.rows * q.pack.p, "rows": q.pack.rows, "columns": q.pack.p}
                               for q, _ in regions if q.pack is not None), None),
        "accelerator_regions": len(regions),
        "host_layers": [r["index"] for r in layers if str(r["ran_on"]).startswith("host")],
        "inputs": inputs,
        "bit_exact": not mismatches,
        "mismatches": mismatches[:20],
        "mismatched_outputs": len(mismatches),
        "memory": memory_use(regions),
        "cycles_per_input": sorted({sum(run.cycles[k] for _, run in regions) for k in range(inputs)}),
        "layers": layers,
        "total": {
            "cycles": cycles,
            "predicted_cycles": sum(r.get("predicted_cycles", 0) for r in layers),
            "latency_ms": latency_ms,
            "energy_uj": latency_ms * target.energy["active_mw"],
            "mac_active_cycles": mac_cycles,
            "utilisation": mac_cycles / cycles if cycles else 0.0,
            "mac_efficiency": macs / (n2 * cycles) if cycles else 0.0,
            "macs": macs,
            "bytes_moved": sum(r.get("bytes_moved", 0) for r in layers),
            "max_layer_error": max(errors) if errors else None,
        },
        "synthesis": synthesis_estimate(p.n),
        "rtl_wall_seconds": sum(run.wall_s for _, run in regions),
    }


def memory_use(regions: list[tuple[AccelProgram, RtlRun]]) -> dict[str, int]:
    """The accelerator's memory: its tensors in the external memory image (``arena_bytes``), the rest of the image
    (weight tiles, parameter sets, the program: ``flash_bytes``) and its on-chip scratchpads (``scratch_bytes``, INP
    once per read port)."""
    p = regions[0][0].params
    tensors = image = 0
    for prog, _ in regions:
        locs = [*prog.inputs.values(), *(c.out for c in prog.layers if c.geom is not None)]
        tensors += sum(loc.h * loc.w * cpad(loc.c, p.n) for loc in locs)
        image += prog.image.top
    scratch = p.n * (p.inp_ports * p.inp_depth + p.n * p.wgt_tiles + ACC_LANE_BYTES * p.acc_depth + p.out_depth
                     + PARAM_ROWS_PER_SET * ACC_LANE_BYTES * p.param_sets)
    return {"arena_bytes": tensors, "scratch_bytes": scratch, "flash_bytes": image - tensors}


def fault_report(fault: AcceleratorFault, placement: dict[int, str], target: Any, n: int, inputs: int) -> dict[str, Any]:
    """The report of a build the accelerator did not finish: a failing verdict with the accelerator's own error
    status and PC, and nothing measured (a run that stopped early has no figures worth reporting)."""
    return {"target": target.name, "backend": "fpga", "codegen": "relax.ext.tinyaccel", "array": n, "inputs": inputs,
            "host_layers": sorted(i for i, where in placement.items() if where == "host"), "bit_exact": False,
            "error": fault.to_dict()}
