"""The IUPC training objective, shared by the pretrain (iteration 0) and the M-steps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .association import association_losses
from .candidate import candidate_set_loss
from .lovasz import ce_lovasz

__all__ = ["IUPCLossConfig", "iupc_total_loss"]


@dataclass(frozen=True)
class IUPCLossConfig:
    """Weights of the IUPC loss terms; the defaults are the seed's pretrain settings.

    total = seg_weight * (every CE+Lovasz term) + candidate_weight * (every candidate-set term)
            + assoc_weight * (walker + visit_weight * visit)
    """

    seg_weight: float = 1.0
    candidate_weight: float = 1.0
    assoc_weight: float = 0.5
    visit_weight: float = 0.5
    temperature: float = 0.5  # association similarity divisor
    ignore: int = 0

    @classmethod
    def pretrain(cls) -> IUPCLossConfig:
        """Iteration 0: similarity divided by 0.5."""
        return cls(temperature=0.5)

    @classmethod
    def mstep(cls) -> IUPCLossConfig:
        """M-steps: the seed drops the /0.5, i.e. temperature 1."""
        return cls(temperature=1.0)


def iupc_total_loss(
    logits_3d: torch.Tensor,
    sparse: torch.Tensor,
    propagated: torch.Tensor,
    candidates: torch.Tensor | np.ndarray,
    *,
    logits_2d: torch.Tensor | None = None,
    emb_3d: torch.Tensor | None = None,
    emb_2d: torch.Tensor | None = None,
    assoc_target: torch.Tensor | None = None,
    pseudo: torch.Tensor | None = None,
    config: IUPCLossConfig | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """IUPC loss over the points of a batch (all scenes concatenated), per point (N,).

    logits_3d / logits_2d (N, C): 3D-branch logits and 2D-branch logits sampled at the points
    (the 2D branch is optional). sparse, propagated, pseudo: class ids, 0 = none; `pseudo` is given
    in the M-steps only. candidates: uint32/int64 bitmasks. The association needs emb_3d (N, D),
    emb_2d (N, D') and assoc_target (N,), nonzero on points inside single-class labelled
    superpixels; its 3D side is the sparse-labelled points, as in the seed.

    Returns the total and a dict of detached terms (sp/pp/pl/neg per branch, walker, visit) for
    logging; terms that were not computed are absent.
    """
    cfg = config or IUPCLossConfig()
    sparse = sparse.long()
    # The seed trains the propagated term on prop labels overwritten by the clicks.
    prop = torch.where(sparse != cfg.ignore, sparse, propagated.long())
    branches = {"vox": logits_3d}
    if logits_2d is not None:
        branches["pix"] = logits_2d

    seg_terms: dict[str, torch.Tensor] = {}
    cand_terms: dict[str, torch.Tensor] = {}
    for name, logits in branches.items():
        seg_terms[f"sp_{name}"] = ce_lovasz(logits, sparse, cfg.ignore)
        seg_terms[f"pp_{name}"] = ce_lovasz(logits, prop, cfg.ignore)
        if pseudo is not None:
            seg_terms[f"pl_{name}"] = ce_lovasz(logits, pseudo.long(), cfg.ignore)
        cand_terms[f"neg_{name}"] = candidate_set_loss(logits, candidates)

    total = cfg.seg_weight * sum(seg_terms.values()) + cfg.candidate_weight * sum(cand_terms.values())
    terms = {**seg_terms, **cand_terms}
    if emb_3d is not None and emb_2d is not None and assoc_target is not None:
        labelled = sparse != cfg.ignore
        walker, visit = association_losses(
            emb_3d[labelled], sparse[labelled], emb_2d[assoc_target != 0], cfg.temperature
        )
        total = total + cfg.assoc_weight * (walker + cfg.visit_weight * visit)
        terms.update(walker=walker, visit=visit)
    return total, {k: v.detach() for k, v in terms.items()}
