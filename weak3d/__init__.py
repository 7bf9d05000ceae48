"""weak3d: label-efficient 3D semantic segmentation as a Snakemake workflow plus a library."""

__version__ = "0.1.0"
