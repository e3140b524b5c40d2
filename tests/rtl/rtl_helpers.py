"""Helpers for the RTL benches (random layers, activation tensors in memory images)."""

from __future__ import annotations

import numpy as np

from tinycompile.accel.assembler import MemoryImage, assemble
from tinycompile.accel.kernels import ProgramBuilder, Tensor, cpad
from tinycompile.quant.intmath import quantize_multiplier


def requant_params(rng: np.random.Generator, c: int, lo: float = 0.0005, hi: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Random per-channel (multiplier, shift) from scales in [lo, hi)."""
    ms = [quantize_multiplier(s) for s in rng.uniform(lo, hi, c)]
    return np.array([m for m, _ in ms]), np.array([s for _, s in ms])


def put_act(img: MemoryImage, x: np.ndarray, zp: int) -> Tensor:
    """Place an HWC int8 tensor in the image with channels padded to N."""
    h, w, c = x.shape
    xp = np.zeros((h, w, cpad(c, img.n)), np.int8)
    xp[:, :, :c] = x
    return Tensor(img.put(xp), h, w, c, zp)


def get_act(img: MemoryImage, t: Tensor) -> np.ndarray:
    """Read an HWC int8 tensor back (padding channels dropped)."""
    raw = img.read(t.addr, t.h * t.w * cpad(t.c, img.n)).view(np.int8)
    return raw.reshape(t.h, t.w, -1)[:, :, : t.c]


def finish(pb: ProgramBuilder) -> int:
    """Append DONE, assemble into the builder's image, return the program address."""
    prog = pb.finish()
    return pb.image.put(np.frombuffer(assemble(prog), np.uint8))
