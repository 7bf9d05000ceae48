"""Segmentation networks on `kernels` sparse tensors: MinkUNet, SPVCNN, and IUPC's 2D/3D network."""

from weak3d.models.iupc import IUPCNet, IUPCOutput
from weak3d.models.minkunet import MinkUNet
from weak3d.models.spvcnn import SPVCNN

__all__ = ["SPVCNN", "IUPCNet", "IUPCOutput", "MinkUNet"]
