"""Fetch or list the ImageNet weights the backbones start from (library: ``detector.models.pretrained``).

``python -m detector.weights fetch vgg16 [resnet50 ...] [--dir weights]`` downloads torchvision's published
ImageNet state dicts with a progress bar and checks their SHA-256 against the prefix that torchvision embeds in
each file name (``vgg16-397923af.pth``: the first hex digits of the file's SHA-256), as ``torch.hub`` does.
``python -m detector.weights list`` shows which files are present. Nothing in the library downloads implicitly:
training and serving read local files only.

Each ImageNet file is also a 1000-class classifier that the service answers /classify with, named as it is
(``DETECTOR_API_MODELS='{"imagenet": "weights/resnet50-0676ba61.pth"}'``; ``detector.classify.torchvision_imagenet``).

Detectors trained on COCO (``detector.models.torchvision_import``):

    python -m detector.weights import-torchvision --arch fasterrcnn_resnet50_fpn_v2 --state-dict FILE.pth --out CKPT.pt
    python -m detector.weights fetch coco-frcnn-r50-fpn-v2      # torchvision's file, then imported: weights/NAME.pt
"""

from __future__ import annotations

import argparse
import sys

from detector.classify.torchvision_imagenet import torchvision_imagenet_weights
from detector.models.pretrained import DEFAULT_BASE_URL, IMAGENET_FILES, WeightsError, candidate_paths, fetch
from detector.models.torchvision_import import ARCHS, FETCH_NAMES, fetch_detector, import_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m detector.weights", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser(
        "fetch",
        help="download ImageNet weights, or a COCO detector (then imported to DIR/NAME.pt), into --dir",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    f.add_argument("arch", nargs="+", choices=sorted(IMAGENET_FILES) + sorted(FETCH_NAMES))
    f.add_argument("--dir", default="weights", help="folder to write into")
    f.add_argument(
        "--base-url", default=DEFAULT_BASE_URL, help="where the files are served from (a mirror, or a local server)"
    )
    sub.add_parser("list", help="show which ImageNet files are present locally")
    i = sub.add_parser("import-torchvision", help="turn a torchvision COCO detection state dict into our checkpoint")
    i.add_argument("--arch", required=True, choices=sorted(ARCHS))
    i.add_argument("--state-dict", required=True, help="torchvision's .pth file")
    i.add_argument("--out", required=True, help="the checkpoint to write")
    args = parser.parse_args(argv)
    if args.command == "import-torchvision":
        try:
            path = import_file(args.arch, args.state_dict, args.out)
        except WeightsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f'{args.arch}: {path} (90 COCO labels; serve it with DETECTOR_API_MODELS=\'{{"coco": "{path}"}}\')')
        return 0
    if args.command == "list":
        for arch in IMAGENET_FILES:
            found = next((p for p in candidate_paths(arch) if p.is_file()), None)
            print(f"{arch:10s} {found if found else 'missing (python -m detector.weights fetch ' + arch + ')'}")
        return 0
    for arch in args.arch:
        try:
            if arch in FETCH_NAMES:
                path = fetch_detector(arch, weights_dir=args.dir)
            else:
                path = fetch(arch, weights_dir=args.dir, base_url=args.base_url)
        except WeightsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        serve = ""
        if torchvision_imagenet_weights(path) is not None:
            serve = f' (1000 ImageNet classes; serve it with DETECTOR_API_MODELS=\'{{"imagenet": "{path}"}}\')'
        print(f"{arch}: {path}{serve}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
