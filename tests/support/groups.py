"""The aspect-ratio groups the sampler tests share (single-process and distributed)."""

# 23 images: 14 landscape (group 0), 9 portrait (group 1), interleaved.
GROUPS = [0, 1, 0, 0, 1, 0, 1, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 1]
