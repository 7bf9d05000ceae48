"""ERDA (Tang et al., NeurIPS 2023): entropy-regularised distribution alignment.

Pseudo-labels p_i = softmax_k(cos(g(f_i), C_k)) come from EMA class prototypes C_k (no gradient,
no temperature). The loss on unlabelled points is the cross-entropy H(p, q) = H(p) + KL(p || q)
against the segmentation softmax q, with the gradient flowing through p as well ("co-adaptation";
entropy weight lambda = 1). It is added to the labelled CE with weight alpha (0.1, or 0.01).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["erda_pseudo_probs", "erda_loss", "update_prototypes_ema"]


def erda_pseudo_probs(proj: torch.Tensor, prototypes: torch.Tensor, ignore: int | None = 0) -> torch.Tensor:
    """Soft pseudo-labels (N, C) from projected features (N, D) and prototypes (C, D).

    Cosine similarities without temperature, softmaxed over all classes but `ignore`, whose
    column is 0 (in weak3d class 0 is "ignore", not a class to align to; ERDA's own label sets
    have no such class). Prototypes are detached: they are an EMA buffer, not parameters.
    """
    cos = F.normalize(proj, dim=1) @ F.normalize(prototypes.detach(), dim=1).t()
    if ignore is not None:
        cos = cos.clone()
        cos[:, ignore] = float("-inf")
    return F.softmax(cos, dim=1)


def erda_loss(
    logits: torch.Tensor,
    proj: torch.Tensor,
    prototypes: torch.Tensor,
    unlabelled: torch.Tensor | None = None,
    *,
    detach_pseudo: bool = False,
    ignore: int | None = 0,
) -> torch.Tensor:
    """ERDA term -mean_i sum_k p_ik log q_ik over the `unlabelled` points (all when None).

    detach_pseudo=True gives the plain soft pseudo-label baseline (the ablation ERDA must beat).
    Returns a graph-connected zero when no point is selected.
    """
    if unlabelled is not None:
        logits, proj = logits[unlabelled], proj[unlabelled]
    if logits.shape[0] == 0:
        return logits.sum() * 0.0 + proj.sum() * 0.0
    p = erda_pseudo_probs(proj, prototypes, ignore)
    if detach_pseudo:
        p = p.detach()
    # p is exactly 0 on the ignore column, so the model's ignore logit gets no target mass.
    return -(p * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


@torch.no_grad()
def update_prototypes_ema(
    prototypes: torch.Tensor,
    proj: torch.Tensor,
    labels: torch.Tensor,
    momentum: float = 0.999,
    ignore: int | None = 0,
) -> torch.Tensor:
    """New prototypes: m * C_k + (1 - m) * (batch mean of proj over labelled points of class k).

    Classes absent from the batch keep their prototype. (ERDA's per-device mode resets them to
    zero through a momentum of 0; we follow its multi-GPU Gsum/Gavg behaviour, which keeps them.)
    """
    labels = labels.long()
    keep = labels >= 0 if ignore is None else (labels >= 0) & (labels != ignore)
    feats, labels = proj[keep].detach(), labels[keep]
    num_classes = prototypes.shape[0]
    sums = torch.zeros_like(prototypes).index_add_(0, labels, feats.to(prototypes.dtype))
    counts = torch.bincount(labels, minlength=num_classes).to(prototypes.dtype)
    present = counts > 0
    new = prototypes.clone()
    means = sums[present] / counts[present].unsqueeze(1)
    new[present] = momentum * prototypes[present] + (1.0 - momentum) * means
    return new
