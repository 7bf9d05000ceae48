"""The candidate-set ("negative") loss for points whose segment holds several classes."""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["candidate_bits", "candidate_set_loss"]

# -log of the seed's probability clamp (1e-7): the largest value one point can contribute.
_MAX_POINT_LOSS = -math.log(1e-7)


def candidate_bits(candidates: torch.Tensor | np.ndarray, num_classes: int) -> torch.Tensor:
    """Decode uint32/int64 bitmasks (N,) into a bool matrix (N, num_classes); bit c = class c.

    Raises ValueError when a mask has a bit at or above `num_classes` (a class the model lacks).
    """
    if isinstance(candidates, np.ndarray):
        # numpy uint32 has no torch shift kernels; int64 holds every uint32 value.
        candidates = torch.from_numpy(candidates.astype(np.int64, copy=False))
    masks = candidates.to(torch.int64)
    if bool((masks >> num_classes).any()):
        raise ValueError(
            f"candidate bitmask has bits at or above class {num_classes}; "
            f"expected classes 0..{num_classes - 1}"
        )
    shifts = torch.arange(num_classes, device=masks.device)
    return ((masks.unsqueeze(1) >> shifts) & 1).bool()


_WARMED: set[tuple[torch.dtype, str]] = set()


def _warm_logsumexp(z: torch.Tensor) -> None:
    """Call `torch.logsumexp` once, on throwaway rows, before the first real call of a process.

    On the CPU (torch 2.13) the first row-wise logsumexp of a process rounds some rows differently
    in about one process in four (same inputs, measured on this loss's input in 16 processes; after
    one call every process agrees). Without this, a training run resumed in a new process ends a few
    ulps away from one that never stopped.
    """
    key = (z.dtype, z.device.type)
    if key not in _WARMED:
        torch.logsumexp(torch.zeros(64, z.shape[1], dtype=z.dtype, device=z.device), dim=1)
        _WARMED.add(key)


def candidate_set_loss(logits: torch.Tensor, candidates: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Mean of -log P(candidate set or class 0) over points with a non-empty candidate set.

    Equals the seed's -log(clamp(1 - sum_{c not in set, c != 0} p_c, 1e-7)), but is computed as a
    difference of logsumexps, which stays exact when the allowed mass is close to 1 or to 0 (the
    seed's `1 - sum` loses precision there in float32). Class 0 is always allowed, so the model is
    never pushed away from "ignore" by a candidate set. Returns a graph-connected zero when no
    point has a set.
    """
    allowed = candidate_bits(candidates, logits.shape[1]).to(logits.device)
    has_set = allowed.any(dim=1)
    if not bool(has_set.any()):
        return logits.sum() * 0.0
    allowed = allowed[has_set]
    allowed[:, 0] = True
    z = logits[has_set]
    _warm_logsumexp(z)
    log_p_allowed = torch.logsumexp(z.masked_fill(~allowed, float("-inf")), dim=1) - torch.logsumexp(z, dim=1)
    # The clamp mirrors the seed: a hopeless point costs at most -log(1e-7) and gives no gradient.
    return (-log_p_allowed).clamp(max=_MAX_POINT_LOSS).mean()
