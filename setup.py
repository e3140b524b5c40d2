"""Package discovery (metadata is in pyproject.toml): the top-level search_spaces/ and hw_targets/ folders ship
inside the package as ``tinycompile.search_spaces`` and ``tinycompile.hw_targets``, so `pip install .` finds them."""

from setuptools import find_packages, setup

DATA_FOLDERS = {"tinycompile.search_spaces": "search_spaces", "tinycompile.hw_targets": "hw_targets"}

setup(
    packages=find_packages(include=["tinycompile", "tinycompile.*"]) + list(DATA_FOLDERS),
    package_dir=DATA_FOLDERS,
    package_data={"tinycompile": ["py.typed"], **{name: ["*.yaml"] for name in DATA_FOLDERS}},
)
