"""Core helpers every layer may use, and which import nothing else of ``detector``: devices, precision, image
loading, checkpoints, random states, ImageNet constants."""
