# syntax=docker/dockerfile:1
# The detection and classification service on a GPU (docs/serving.md):
#
#   docker build -t detector-api .
#   docker run --gpus all -p 8000:8000 detector-api                                   # the default models, built in
#   docker run --gpus all -p 8000:8000 -v $PWD/weights:/app/weights \
#       -e DETECTOR_API_MODELS='{"voc": "weights/voc.pt"}' detector-api               # checkpoints from the host
#
# torch==2.14.1 from PyPI is a CUDA 13.0 build that brings its own CUDA and cuDNN libraries (pip packages), so the
# base image only has to provide Ubuntu, the NVIDIA container hooks and the check that the host driver can run
# CUDA 13.0 (driver >= 580). A -cudnn-runtime- tag also works, with a second copy of those libraries.
# Pinned by digest, so a re-pushed tag cannot change the build; refresh it with
# `docker buildx imagetools inspect nvidia/cuda:13.0.2-base-ubuntu24.04` (the manifest list's digest).
ARG BASE_IMAGE=nvidia/cuda:13.0.2-base-ubuntu24.04@sha256:2ab6381d970b211fb93853796dc6707eb8a72575a375c422b17cf4d8b2641701
FROM ${BASE_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# Ubuntu 24.04's python3 is 3.12 (the project needs >= 3.11); a virtual environment, since the system one is
# externally managed.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

# The locked environment (requirements/serve.lock: every package at one version, checked against its hash) is the
# large layer that rarely changes, so it comes first and editing the code does not download torch again. The lock
# leaves out opencv-python-headless: the contrib build that selective search needs (cv2.ximgproc) provides cv2.
WORKDIR /app
COPY requirements/serve.lock requirements/
RUN pip install --no-deps --require-hashes -r requirements/serve.lock \
    && python -c "import cv2; cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()"

COPY pyproject.toml README.md ./
COPY detector/ detector/
COPY api/ api/
# The project alone (--no-deps: the lock brought the rest), built with the lock's setuptools.
RUN pip install --no-deps --no-build-isolation . \
    && chmod -R a+rX /app

# The committed default models (what the default settings serve), so the image answers without a mount; a volume
# mounted on /app/weights replaces them. Readable by the service's user whatever their mode in the build context.
# Serve other checkpoints with -e DETECTOR_API_MODELS=... or a config file (DETECTOR_API_CONFIG).
COPY --chmod=0644 weights/default-detector.pt weights/default-classifier.pt weights/

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin detector
USER detector
VOLUME /app/weights

EXPOSE 8000
# /healthz answers while the models load; --start-period covers loading and warm-up.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# SIGTERM (docker stop) lets requests in flight finish, up to the request timeout (30 s by default): use
# docker stop -t 40 (or stop_grace_period) so Docker does not kill the process after its default 10 s.
STOPSIGNAL SIGTERM
# Run from /app, so the code imported is the copy there, api/static included (the wheel leaves the static page out).
CMD ["python", "-m", "api", "--host", "0.0.0.0", "--port", "8000"]
