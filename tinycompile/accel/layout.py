"""How data lies in the accelerator's external memory, and the address patterns that move it.

Activations are NHWC (batch 1) with the channel dimension padded to a multiple of N (``cpad``): every pixel then
starts on a bus word, and the padding channels hold bytes that always meet zero weights (rtl_sim/ISA.md section 5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinycompile.accel.assembler import MemoryImage
from tinycompile.accel.isa import MAX_COUNT


def cpad(c: int, n: int) -> int:
    """Channels rounded up to a multiple of ``n`` (activations are stored with this many bytes per pixel)."""
    return -(-c // n) * n


@dataclass(frozen=True)
class TensorLoc:
    """An activation in external memory: NHWC with ``cpad(c)`` bytes per pixel from byte address ``addr``."""

    addr: int
    h: int
    w: int
    c: int

    def nbytes(self, n: int) -> int:
        """Bytes the tensor occupies on an ``n``-byte bus (channels padded)."""
        return self.h * self.w * cpad(self.c, n)


def contiguous(words: int, n: int) -> dict[str, int]:
    """Pattern fields for ``words`` consecutive N-byte words (over two loops when one 12-bit count is too few)."""
    if words <= MAX_COUNT:
        return {"n1": 1, "n0": words, "d0": n}
    k = -(-words // MAX_COUNT)
    while words % k:  # equal rows, so one stride steps between them
        k += 1
    return {"n1": k, "d1": (words // k) * n, "n0": words // k, "d0": n}


def alloc_tensor(img: MemoryImage, h: int, w: int, c: int) -> TensorLoc:
    """Room for an ``(h, w, c)`` activation in ``img``."""
    return TensorLoc(img.alloc(h * w * cpad(c, img.n)), h, w, c)


def write_tensor(img: MemoryImage, t: TensorLoc, x: np.ndarray) -> None:
    """Write an int8 ``(h, w, c)`` array with its channels padded to N (padding bytes are zero)."""
    xp = np.zeros((t.h, t.w, cpad(t.c, img.n)), np.int8)
    xp[:, :, : t.c] = np.asarray(x, dtype=np.int8).reshape(t.h, t.w, t.c)
    img.write(t.addr, xp)


def read_tensor(img: MemoryImage, t: TensorLoc) -> np.ndarray:
    """Read an int8 ``(h, w, c)`` array back (padding channels dropped)."""
    raw = img.read(t.addr, t.nbytes(img.n)).view(np.int8)
    return raw.reshape(t.h, t.w, -1)[:, :, : t.c].copy()
