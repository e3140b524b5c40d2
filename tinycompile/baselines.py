"""Hand-made reference networks that searched models are compared against, as ArchSpecs of any task's input."""

from __future__ import annotations

from tinycompile.arch import ArchSpec, Layer, Shape, same_padding

DS_CNN_KERNEL = (10, 4)  # MLPerf Tiny's DS-CNN: a 10x4 stem over (frames, MFCC coefficients)


def ds_cnn(input_shape: Shape, num_classes: int, channels: int = 64, blocks: int = 4) -> ArchSpec:
    """MLPerf Tiny's DS-CNN shape for ``input_shape`` (C, H, W): a 10x4 stride-2 SAME conv of ``channels``, ``blocks``
    depthwise-separable blocks (3x3 depthwise + 1x1 conv, ReLU after each), a global average pool and a dense layer."""
    if channels < 1 or blocks < 0 or num_classes < 2:
        raise ValueError(f"ds_cnn needs channels >= 1, blocks >= 0 and 2 classes or more, got {channels}, {blocks}, "
                         f"{num_classes}")
    _, height, width = input_shape
    # The stem's kernel shrinks to inputs smaller than it (the stem must not read padding alone).
    kh, kw = min(DS_CNN_KERNEL[0], height), min(DS_CNN_KERNEL[1], width)
    pt, pb = same_padding(height, kh, 2)
    pl, pr = same_padding(width, kw, 2)
    layers = [Layer("conv", (-1,), channels=channels, kernel=(kh, kw), stride=(2, 2), padding=(pt, pb, pl, pr),
                    relu=True)]
    for _ in range(blocks):
        layers.append(Layer("dwconv", (len(layers) - 1,), kernel=(3, 3), padding=(1, 1, 1, 1), relu=True))
        layers.append(Layer("conv", (len(layers) - 1,), channels=channels, relu=True))
    layers.append(Layer("gap", (len(layers) - 1,)))
    layers.append(Layer("flatten", (len(layers) - 1,)))
    layers.append(Layer("dense", (len(layers) - 1,), channels=num_classes))
    return ArchSpec(tuple(input_shape), num_classes, tuple(layers), {"name": f"ds-cnn-{channels}x{blocks}"})


def widest_ds_cnn(input_shape: Shape, num_classes: int, max_macs: int, blocks: int = 4,
                  max_channels: int = 256) -> ArchSpec | None:
    """The DS-CNN of ``blocks`` blocks with the most channels (up to ``max_channels``) within ``max_macs``
    multiply-accumulates: the shape scaled down in width; None when one channel is already too many."""
    best = None
    for channels in range(1, max_channels + 1):  # MACs grow with the channels: stop at the first one over the cap
        spec = ds_cnn(input_shape, num_classes, channels=channels, blocks=blocks)
        if sum(spec.macs()) > max_macs:
            break
        best = spec
    return best
