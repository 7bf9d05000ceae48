"""Loss functions: segmentation (CE + Lovasz), candidate sets, cross-modal association, ERDA."""

from .association import association_losses
from .candidate import candidate_bits, candidate_set_loss
from .erda import erda_loss, erda_pseudo_probs, update_prototypes_ema
from .iupc import IUPCLossConfig, iupc_total_loss
from .lovasz import ce_lovasz, lovasz_grad, lovasz_softmax

__all__ = [
    "IUPCLossConfig",
    "association_losses",
    "candidate_bits",
    "candidate_set_loss",
    "ce_lovasz",
    "erda_loss",
    "erda_pseudo_probs",
    "iupc_total_loss",
    "lovasz_grad",
    "lovasz_softmax",
    "update_prototypes_ema",
]
