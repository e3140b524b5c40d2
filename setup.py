"""Package discovery (metadata is in pyproject.toml): the top-level search_spaces/, hw_targets/ and rtl_sim/ folders
ship inside the package as ``tinycompile.search_spaces``, ``tinycompile.hw_targets`` and ``tinycompile.rtl_sim``, so
`pip install .` finds them (tinycompile.resources.data_dir / rtl_dir)."""

from setuptools import find_packages, setup

# Package -> source folder. The accelerator's folders are listed one by one so that only these ship: rtl_sim/ also
# holds Verilator builds (build/) and synthesis outputs (synth/out/) in a checkout.
DATA_FOLDERS = {
    "tinycompile.search_spaces": "search_spaces",
    "tinycompile.hw_targets": "hw_targets",
    "tinycompile.rtl_sim": "rtl_sim",
    "tinycompile.rtl_sim.rtl": "rtl_sim/rtl",
    "tinycompile.rtl_sim.tb": "rtl_sim/tb",
    "tinycompile.rtl_sim.synth": "rtl_sim/synth",
    "tinycompile.rtl_sim.soc": "rtl_sim/soc",
}
# What the RTL simulation and the build report read: the Verilog (with the ISA package tc_pkg.sv), the test bench,
# the synthesis figures (build reports quote them) and, for the reader, the ISA; estimate.py comes along as the
# synth folder's module, the script that made estimate.json. The SoC's glue Verilog and Verilator control files
# (soc/) ship too; its core's Verilog comes from the pythondata-cpu-vexriscv package.
DATA = {
    "tinycompile.search_spaces": ["*.yaml"],
    "tinycompile.hw_targets": ["*.yaml"],
    "tinycompile.rtl_sim": ["ISA.md"],
    "tinycompile.rtl_sim.rtl": ["*.sv"],
    "tinycompile.rtl_sim.tb": ["*.sv"],
    "tinycompile.rtl_sim.synth": ["estimate.json", "soc.json", "*.sv", "*.lpf"],
    "tinycompile.rtl_sim.soc": ["*.sv", "*.vlt"],
}

setup(
    packages=find_packages(include=["tinycompile", "tinycompile.*"]) + list(DATA_FOLDERS),
    package_dir=DATA_FOLDERS,
    package_data={"tinycompile": ["py.typed"], **DATA},
)
