"""Benchmark: our Faster R-CNN against torchvision's, built on the same trunk and head, on the same inputs.

    python -m detector.bench inference --backbone vgg16 [--precision fp32 bf16] [--batch 1 8] [--images 5]
                                       [--no-memory] [--check] [--json OUT]
    python -m detector.bench inference --backbone resnet50_fpn [--precision fp32 bf16] [--check] ...
    python -m detector.bench train --backbone vgg16 [--precision bf16] [--device cuda]

Prints time per image (inference) or per training step (forward + backward + SGD step, one image), the peak
memory of each model and the ratio ours / torchvision; with several precisions or batch sizes, one report
each and a summary that also compares ours with torchvision in fp32. Three models run, with identical weights:

- ``ours``: ``FasterRCNN`` with ``pooler="roi_align"``, because torchvision only offers RoIAlign; for
  inference prepared by ``prepare_for_inference`` at the run's precision (``--no-prepare``: as built);
- ``torchvision``: ``torchvision.models.detection.FasterRCNN`` given our trunk (``backbone.body``), our RoI
  head (``backbone.head``), our RPN conv head behind torchvision's interface, a ``FastRCNNPredictor`` holding
  our predictor's weights, the settings of our config (anchors, proposal counts, thresholds, sizes), and a
  one-level RoIAlign with ``aligned=True`` as ours (``AlignedRoIAlign``); run as torchvision users run it
  (autocast at the run's precision, weights as built);
- ``ours_roi_pool``: our default configuration (RoI max pooling), reported as an extra line.

Feature-pyramid backbones (``resnet50_fpn``, ``resnet50_fpn_v2``, ``mobilenet_v3_large_fpn``; inference only) compare
two models on one state dict: ``torchvision``, torchvision's own COCO detector (``fasterrcnn_resnet50_fpn`` etc.,
91 classes) with seeded random weights calibrated on the first benchmark image (``torchvision_fpn.py``: batch-norm
statistics of that image, classifier logits spread so that detections pass the 0.05 threshold); and ``ours``, that
state dict imported by ``import_state_dict`` into our model with torchvision's preset (``fpn_config``). Both resize to
800 (``--min-size``), the preset's size. In fp32 the two give identical detections (``--check``).

``--check`` first runs ``answer_check``: what "equal output" means between the timed models.
With ``--no-memory`` the models are timed interleaved in one process (``measure_interleaved``), which keeps
the ratios meaningful on a machine shared with other work.

Identical weights come from seeded construction: every model is built after ``torch.manual_seed(seed)`` by
the same sequence of layer constructions (trunk, RPN head, predictor), so no model has to be built twice in
one process (which would distort its memory figure). ``tests/tools/test_bench.py`` checks the weights are equal.
Feature pyramids: the state dict is made once in the main process and handed to each model's process.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` (reset per model) minus what the inputs hold; on
CPU the growth of the peak resident set size (``ru_maxrss``) over the RSS after building the inputs, each
model measured in a fresh spawned process (which also runs its timing). Both include the weights.
The random weights make the detections meaningless; their count on the first image is reported only to
show that both models ran end to end, not as a claim that they agree (except for feature pyramids, where the
models are the same function of the same weights).

Modules, in the order a run uses them:

- ``settings.py``: what one run measures (``Settings``), its checks, the fixed random inputs and (feature pyramids)
  the fixed weights;
- ``torchvision_fpn.py``: torchvision's feature-pyramid detectors with calibrated random weights (also used by the
  tests that compare them with ours);
- ``models.py``: our models and torchvision's equivalent on our weights (``build_model``);
- ``check.py``: the answer-equality check (``answer_check``, ``compare_detections``, ``match_detections``);
- ``measure.py``: timing and peak memory of each model, and the JSON report of one run (``run_benchmark``);
- ``report.py``: the printed report and the summary over several runs;
- ``cli.py``: the command line (``main``).
"""
