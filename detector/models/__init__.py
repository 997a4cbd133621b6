"""Detection models. Data flow of a detection, one module per step:

image -> ``transform`` (normalise, resize, pad into a batch) -> ``backbones`` (stride-16 feature map)
-> ``rpn`` (anchors -> proposals) -> ``roi_heads`` (RoI pooling -> head -> class scores and box deltas)
-> postprocess (per-class NMS, boxes mapped back to the original image).

Box coding, matching and sampling (``boxes``) are shared by the RPN and the RoI heads.
"""
