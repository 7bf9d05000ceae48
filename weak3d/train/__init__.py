"""Training, prediction and evaluation of the 3D networks on preprocessed scenes."""
