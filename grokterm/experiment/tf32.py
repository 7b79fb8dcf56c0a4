"""TF32 matmuls emulated on any device, so that what `--precision tf32` does to a grokking
curve can be measured before a GPU runs it (and checked against one that does).

A GPU with TF32 on rounds each float32 input of a matrix product (cuBLAS's mm, bmm,
addmm, baddbmm, forward and backward) to TF32's 10 mantissa bits and accumulates in
float32. Here the same products see their inputs rounded to nearest (ties to even) and
multiply in float32; everything else (softmax, the loss, AdamW) is untouched, as it is on
a GPU. A GPU may round the last kept bit another way and sums in another order: this
emulates the 13 dropped bits, not the GPU's exact results."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

DROPPED = 13  # float32 keeps 23 mantissa bits, TF32 10
_aten = torch.ops.aten
# the products cuBLAS computes with TF32 on, and which of their arguments are factors
_FACTORS = {
    _aten.mm.default: (0, 1),
    _aten.bmm.default: (0, 1),
    _aten.addmm.default: (1, 2),
    _aten.baddbmm.default: (1, 2),
}


def round_tf32(x: torch.Tensor) -> torch.Tensor:
    """float32 values rounded to the nearest TF32 value (ties to even)."""
    bits = x.contiguous().view(torch.int32)
    half = (1 << (DROPPED - 1)) - 1 + ((bits >> DROPPED) & 1)
    return ((bits + half) & -(1 << DROPPED)).view(torch.float32).view_as(x)


class EmulatedTF32(TorchDispatchMode):
    """Within it, every float32 matrix product multiplies TF32-rounded factors."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in _FACTORS:
            args = list(args)
            for i in _FACTORS[func]:
                if args[i].dtype == torch.float32:
                    args[i] = round_tf32(args[i])
        return func(*args, **(kwargs or {}))
