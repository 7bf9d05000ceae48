"""Lovasz-softmax (Berman et al., CVPR 2018) and the CE + Lovasz segmentation loss.

Written from the paper's definition. For one class c, with errors m_i = |1[y_i = c] - p_i(c)|, the
loss is the Lovasz extension of the Jaccard loss evaluated at m: sort the errors in decreasing
order, and weight the k-th largest error by Delta(top k) - Delta(top k-1), where Delta(S) is the
Jaccard loss 1 - |gt \\ S| / |gt u S| of the mispredicted set S. The per-class values are averaged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from kernels.functional import cross_entropy

__all__ = ["lovasz_grad", "lovasz_softmax", "ce_lovasz"]


def lovasz_grad(fg_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss, per column.

    `fg_sorted` (N, K) holds the 0/1 foreground indicators of K classes, each column ordered by
    decreasing error. Row k is Delta(first k+1 points) - Delta(first k points).
    """
    gts = fg_sorted.sum(dim=0, keepdim=True)
    intersection = gts - fg_sorted.cumsum(dim=0)
    union = gts + (1.0 - fg_sorted).cumsum(dim=0)  # >= 1 from the first row on: no division by zero
    jaccard = 1.0 - intersection / union
    if fg_sorted.shape[0] > 1:
        jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]], dim=0)
    return jaccard


def _valid(labels: torch.Tensor, ignore: int | None) -> torch.Tensor:
    if ignore is None:
        return torch.ones_like(labels, dtype=torch.bool)
    return labels != ignore


def lovasz_softmax(
    probs: torch.Tensor,
    labels: torch.Tensor,
    classes: str | Sequence[int] = "present",
    ignore: int | None = 0,
) -> torch.Tensor:
    """Lovasz-softmax loss of class probabilities `probs` (N, C) against `labels` (N,).

    classes: "present" averages over the classes that occur in the valid labels; "all" over every
    class except `ignore` (a class never present still costs its false positives); or an explicit
    list. Points labelled `ignore` are dropped. Returns a zero that keeps the graph when nothing
    is left, so `backward()` works on any batch.
    """
    zero = probs.sum() * 0.0
    labels = labels.long()
    keep = _valid(labels, ignore)
    probs_v, labels_v = probs[keep], labels[keep]
    if labels_v.numel() == 0:
        return zero
    num_classes = probs.shape[1]
    fg = F.one_hot(labels_v, num_classes).to(probs.dtype)
    if classes == "present":
        selected = fg.sum(dim=0) > 0
    elif classes == "all":
        selected = torch.ones(num_classes, dtype=torch.bool, device=probs.device)
        if ignore is not None and 0 <= ignore < num_classes:
            selected[ignore] = False
    elif isinstance(classes, str):
        raise ValueError(f"lovasz_softmax: classes must be 'present', 'all' or a list, got {classes!r}")
    else:
        selected = torch.zeros(num_classes, dtype=torch.bool, device=probs.device)
        selected[torch.as_tensor(list(classes), dtype=torch.long, device=probs.device)] = True
    if not bool(selected.any()):
        return zero
    fg, probs_v = fg[:, selected], probs_v[:, selected]
    errors = (fg - probs_v).abs()
    # Sorting is piecewise linear: the gradient flows through the sorted values, not the order.
    errors_sorted, order = errors.sort(dim=0, descending=True)
    grad = lovasz_grad(fg.gather(0, order))
    return (errors_sorted * grad).sum(dim=0).mean()


def ce_lovasz(logits: torch.Tensor, labels: torch.Tensor, ignore: int = 0) -> torch.Tensor:
    """Cross-entropy (ignoring `ignore`) plus Lovasz-softmax over the present classes.

    The IUPC segmentation term, used for sparse, propagated and pseudo labels on either branch.
    Returns a graph-connected zero when no point has a valid label (plain CE would give NaN).
    """
    labels = labels.long()
    keep = labels != ignore
    if not bool(keep.any()):
        return logits.sum() * 0.0
    ce = cross_entropy(logits, labels, ignore_index=ignore)  # one pass on the GPU (kernels.triton.loss)
    return ce + lovasz_softmax(F.softmax(logits, dim=1), labels, classes="present", ignore=ignore)
