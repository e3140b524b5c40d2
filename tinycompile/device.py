"""Where training runs: ``auto`` (CUDA when torch sees a GPU, else the CPU), ``cpu`` or ``cuda``."""

from __future__ import annotations

from tinycompile.errors import UserError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> str:
    """The torch device ``name`` means on this machine, ``cpu`` or ``cuda``; UserError for ``cuda`` without CUDA."""
    if name not in DEVICES:
        raise UserError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    if name == "cpu":
        return "cpu"
    import torch  # only here: checking the other settings must not wait for torch's import

    if torch.cuda.is_available():
        return "cuda"
    if name == "cuda":
        why = "this torch is built without CUDA" if torch.version.cuda is None else "torch sees no GPU"
        raise UserError(f"--device cuda: CUDA is not available on this machine ({why}, torch {torch.__version__}); "
                        "use --device cpu or auto")
    return "cpu"
