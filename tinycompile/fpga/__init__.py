"""The FPGA back end: QuantGraph -> TVM partition -> accelerator program + memory image -> RTL run, bit-exact check.

Modules, one job each:

* :mod:`.plan` - layer geometry, tiling to the scratchpads and the instruction stream (pure Python);
* :mod:`.schedule` - the cost model: replays the planned instruction stream through a timing model of the units;
* :mod:`.codegen` - weight / parameter layouts and the memory image of a whole network;
* :mod:`.partition` - the Relax BYOC partition (patterns ``tinyaccel.*``, codegen ``relax.ext.tinyaccel``);
* :mod:`.rtl` - runs a program on the Verilator RTL through cocotb and attributes counters to layers;
* :mod:`.build` - ``build_fpga``: the whole flow and ``report.json``; :mod:`.simulate` re-runs a build.
"""

from __future__ import annotations
