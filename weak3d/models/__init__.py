"""3D segmentation networks on `kernels` sparse tensors: MinkUNet and SPVCNN (spvnas layouts)."""

from weak3d.models.minkunet import MinkUNet
from weak3d.models.spvcnn import SPVCNN

__all__ = ["SPVCNN", "MinkUNet"]
