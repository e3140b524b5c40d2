"""The FPGA back end: QuantGraph -> TVM partition -> accelerator program + memory image -> RTL run, bit-exact check.

Entry points, through :class:`tinycompile.backends.fpga.FpgaBackend` (the ``fpga`` kind of target):

* ``build``: :func:`.build.build_graph` compiles a QuantGraph, runs its inputs on the RTL and checks every layer;
* ``simulate``: :func:`.simulate.rerun` re-runs a build folder on the RTL;
* the cost model: :func:`.schedule.fpga_layer_cycles` replays a layer's schedule.

Modules, one job each:

* :mod:`.geometry` - what a layer computes on the array, and the rewrites that make it cheaper (pure Python);
* :mod:`.tiling` - a layer cut to the scratchpads: passes, groups, blocks, reduction chunks (pure Python);
* :mod:`.emit` - the one program generator: a tiling's double-buffered pipeline of instructions (pure Python);
* :mod:`.schemes` - what each COMPUTE scheme (convolution, per-tap, whole map, shifted rows, window mode, add)
  loads, computes and stores;
* :mod:`.constants` - weight tiles and parameter sets in the layouts the schemes read;
* :mod:`.schedule` - the cost model: replays the emitted instruction stream through a timing model of the units;
* :mod:`.codegen` - a whole network's constants, tensors and program in one memory image;
* :mod:`.partition` - the Relax BYOC partition of the shared lowering (:mod:`tinycompile.lowering`; patterns
  ``tinyaccel.*``, codegen ``relax.ext.tinyaccel``);
* :mod:`.rtl` - runs a program on the Verilator RTL through cocotb and attributes counters to layers;
* :mod:`.hybrid` - runs a partitioned network: regions on the RTL, the rest on the host through TVM;
* :mod:`.build`, :mod:`.report`, :mod:`.artifacts`, :mod:`.simulate` - the flow, report.json, the build folder.

Placement: every layer a ``tinyaccel`` pattern accepts runs on the accelerator. When all do, the network is one
program; otherwise the layers left in Relax run on the host (TVM-compiled, :mod:`.hybrid`) between accelerator
regions, and the report says where each layer ran. A model of which the accelerator can run nothing, or that does
not fit its memory, is refused with one line naming the layer and the reason.
"""

from __future__ import annotations
