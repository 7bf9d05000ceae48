"""Cross-modal association losses (IUPC "assop2p"): a 3D -> 2D -> 3D random walk."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["association_losses"]

_EPS = 1e-10


def association_losses(
    e3d: torch.Tensor, labels3d: torch.Tensor, e2d: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Walker and visit losses between 3D embeddings (M, D) and 2D embeddings (K, D).

    S = e3d e2d^T / temperature on raw dot products (the seed does not L2-normalise);
    P_vp = softmax_2D(S), P_pv = softmax_3D(S^T), P_vpv = P_vp P_pv (M, M).
    walker = KL(T || P_vpv) averaged over the M rows, with T_ij = 1[y_i = y_j] normalised per row:
    a round trip through the images should land on a point of the same class.
    visit = KL(uniform_K || mean_i P_vp[i]): every 2D target should be visited. The mean visit
    distribution is a batch of one, so `batchmean` leaves the true KL; its log gets the same 1e-10
    guard as the walker, against a target whose probability underflows to zero.
    Returns graph-connected zeros when either set is empty.
    """
    if e3d.shape[0] == 0 or e2d.shape[0] == 0:
        zero = e3d.sum() * 0.0 + e2d.sum() * 0.0
        return zero, zero
    sim = e3d @ e2d.t() / temperature
    p_vp = F.softmax(sim, dim=1)
    p_pv = F.softmax(sim.t(), dim=1)
    p_vpv = p_vp @ p_pv
    same = (labels3d.reshape(-1, 1) == labels3d.reshape(1, -1)).to(sim.dtype)
    target = same / same.sum(dim=1, keepdim=True)
    walker = F.kl_div(torch.log(p_vpv + _EPS), target, reduction="batchmean")
    visit_prob = p_vp.mean(dim=0, keepdim=True)
    uniform = torch.full_like(visit_prob, 1.0 / visit_prob.shape[1])
    visit = F.kl_div(torch.log(visit_prob + _EPS), uniform, reduction="batchmean")
    return walker, visit
