"""The data layer: datasets, proposals, transforms and augmentation.

- ``voc``: VOC-format folders (and VOCdevkit years) as a detection dataset; ``synth``: the generated VOC-format
  dataset of six shapes; ``folder``: class-per-folder images for classification.
- ``proposals``: selective search and its on-disk cache (torch-free); ``with_proposals``: a dataset wrapper that
  hands cached proposals to R-CNN and Fast R-CNN through the targets.
- ``transforms``: the ``(image, target) -> (image, target)`` machinery and batching; ``augment``: presets built on
  it; ``sampler``: aspect-ratio grouping; ``preview``: drawing what a preset does.
"""
