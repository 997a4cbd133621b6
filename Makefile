# Every target installs what it needs into .venv first, so a fresh machine with only Python works.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= data/synth
DEFAULT_DETECTOR := weights/default-detector.pt

.PHONY: install lock test demo serve default-detector clean
HOST ?= 127.0.0.1
PORT ?= 8000

# Exactly the versions in requirements/dev.lock, each checked against its hash (--no-deps: the lock is the whole
# environment, resolved already). torch and torchvision come from pip's usual places: a wheel on this disk when its
# hash matches PyPI's, PyPI otherwise. The project itself goes in editable, without build isolation so that nothing
# outside the lock is fetched to build it.
$(STAMP): pyproject.toml requirements/dev.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check --no-deps --require-hashes -r requirements/dev.lock
	$(PY) -m pip install --disable-pip-version-check --no-deps --no-build-isolation -e .
	# The lock leaves out opencv-python-headless (albumentations' choice): the contrib build provides the same cv2
	# module, with selective search (cv2.ximgproc), and two packages owning one folder overwrite each other.
	$(PY) -c "import cv2; cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()"
	touch $@

install: $(STAMP)

# Re-resolves the locks after a change to pyproject.toml's dependencies (needs PyPI): one for the service (the
# Dockerfile's) and one with the dev tools (make's), for every Python >= 3.11 and platform (--universal), with the
# hashes of every file. The dev lock is resolved against the service lock, so both pin the same versions. Pins
# stay where they are unless `make lock LOCK_FLAGS=--upgrade`.
UV_COMPILE = $(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
	--no-emit-package opencv-python-headless --quiet
lock: $(STAMP)
	$(PY) -m pip install --disable-pip-version-check "uv>=0.9"
	$(UV_COMPILE) $(LOCK_FLAGS) -o requirements/serve.lock
	$(UV_COMPILE) $(LOCK_FLAGS) --extra dev -c requirements/serve.lock -o requirements/dev.lock

# Lint first (seconds), then the suite: ruff's rules and format as in pyproject.toml and .pre-commit-config.yaml.
test: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

$(DATA)/labels.txt: | $(STAMP)
	$(PY) -m detector.data.synth --out $(DATA) --train 2000 --val 100 --test 200 --seed 0 --no-progress

# The default model: the tiny Faster R-CNN trained on the generated dataset, reproducible from its seed, in two
# stages: 10 epochs from scratch at the tiny config's 288 px, then 10 epochs fine-tuned from that (--init) at
# 384-448 px (multi-scale; tests at 448), which is what lifts the small objects.
default-detector: install $(DATA)/labels.txt
	$(PY) -m detector.train --data $(DATA) --train-split train --val-split val --backbone tiny \
		--epochs 10 --batch-size 2 --optimizer momentum --lr 0.02 --weight-decay 1e-4 --warmup-iters 200 \
		--schedule cosine --eval-every 3 --checkpoint-every 0 --workers 1 --seed 0 --out runs/default-detector
	$(PY) -m detector.train --data $(DATA) --train-split train --val-split val --backbone tiny \
		--init runs/default-detector/last.pt --min-size 384 416 448 --max-size 736 \
		--epochs 10 --batch-size 2 --optimizer momentum --lr 0.01 --weight-decay 1e-4 --warmup-iters 100 \
		--schedule cosine --eval-every 2 --checkpoint-every 0 --workers 1 --seed 0 --out runs/default-detector-ft
	$(PY) -c "from detector.core.checkpoint import export; export('runs/default-detector-ft/last.pt', '$(DEFAULT_DETECTOR)')"

$(DEFAULT_DETECTOR):
	$(MAKE) default-detector

# The main job (until the service lands): evaluate the default detector on the generated test split and
# draw its detections on a few test images.
demo: install $(DATA)/labels.txt $(DEFAULT_DETECTOR)
	$(PY) -m detector.evaluate --checkpoint $(DEFAULT_DETECTOR) --data $(DATA) --split test --json runs/demo/eval.json --plots runs/demo/plots
	$(PY) -m detector.predict --checkpoint $(DEFAULT_DETECTOR) --out runs/demo/predictions $$(head -n 4 $(DATA)/ImageSets/Main/test.txt | sed 's#^#$(DATA)/JPEGImages/#; s#$$#.jpg#')

# The default classifier: a small convnet trained on the generated dataset's classification variant (every
# non-difficult object cropped to 64 x 64), reproducible from its seed. The crops are rewritten from scratch
# whenever the detection dataset is.
CLS_DATA ?= data/synth-cls
DEFAULT_CLASSIFIER := weights/default-classifier.pt
.PHONY: default-classifier

$(CLS_DATA)/.written: $(DATA)/labels.txt | $(STAMP)
	rm -rf $(CLS_DATA)
	$(PY) -c "from detector.data.synth import write_classification_crops as w; w('$(DATA)', '$(CLS_DATA)', size=64)"
	touch $@

default-classifier: install $(CLS_DATA)/.written
	$(PY) -m detector.train --task classify --data $(CLS_DATA) --train-split train --val-split val --model convnet \
		--channels 16 32 64 128 --input-size 48 --augment d4 --epochs 30 --batch-size 64 --optimizer adam --lr 0.003 \
		--weight-decay 0 --schedule cosine --warmup-iters 67 --checkpoint-every 0 --workers 1 --seed 0 --no-progress \
		--out runs/default-classifier
	$(PY) -c "from detector.core.checkpoint import export; export('runs/default-classifier/last.pt', '$(DEFAULT_CLASSIFIER)')"
	$(PY) -m detector.evaluate --task classify --checkpoint $(DEFAULT_CLASSIFIER) --data $(CLS_DATA) --split test \
		--json runs/default-classifier/test.json

$(DEFAULT_CLASSIFIER):
	$(MAKE) default-classifier

# The R-CNN -> Fast R-CNN -> Faster R-CNN ladder (docs/ladder.md, docs/ladder.png): test-time speed on VGG16,
# then VOC07 mAP of the three (and Faster R-CNN with RoIAlign) trained under one budget on a generated dataset.
.PHONY: ladder
ladder: install
	$(PY) -m detector.ladder speed --backbone vgg16 --images 2
	$(PY) -m detector.ladder accuracy --data data/synth-ladder --no-progress

clean:
	rm -rf runs $(DATA)

# The main job: the service (api/) on the committed default detector and classifier.
serve: install $(DEFAULT_DETECTOR) $(DEFAULT_CLASSIFIER)
	$(PY) -m api --host $(HOST) --port $(PORT)

# torchvision's COCO detector in one command: fetched once (SHA-256 checked; offline, the error gives the URL and
# where to put the file), imported to weights/NAME.pt, then served as "coco" (/detect?model=coco, COCO's names).
COCO_MODEL ?= coco-frcnn-r50-fpn-v2
weights/$(COCO_MODEL).pt: | $(STAMP)
	$(PY) -m detector.weights fetch $(COCO_MODEL)

.PHONY: serve-coco
serve-coco: install weights/$(COCO_MODEL).pt
	DETECTOR_API_MODELS='{"coco": "weights/$(COCO_MODEL).pt"}' $(PY) -m api --host $(HOST) --port $(PORT)

# Real photographs: DeepForest's tree crowns (MIT; the deepforest wheel from PyPI, about 21 MB) tiled into
# data/trees/, then our from-scratch ResNet-18 Faster R-CNN in several settings and torchvision's FasterRCNN on the
# same trunk, data and schedule (docs/realdata.md). About 15 minutes per run on 2 CPU cores; not part of `make test`.
.PHONY: realdata
realdata: install
	$(PY) -m detector.tools.realdata prepare --out data/trees
	$(PY) -m detector.tools.realdata run --data data/trees --out runs/realdata --epochs 12
