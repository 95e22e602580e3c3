#!/usr/bin/env python
"""Evaluate DOTA Task1 detection files as DOTA_devkit's Task1 scripts do (v1.0, or v1.5 with --v15); see --help.

Needs only numpy and shapely (no torch, no detectron2): the metric is :mod:`fasttcm.evaluation.dota_eval`, the
file formats :mod:`fasttcm.formats.dota`.

Example:
  python tools/evaluate_dota.py --det 'merged/Task1_{:s}.txt' --gt DOTA/val/labelTxt --imageset val.txt
"""
import argparse
import json
import logging
import os
import sys
from typing import Optional, Sequence

from fasttcm.evaluation import dota_eval as de


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="tools/evaluate_dota.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "DOTA Task1 evaluation as DOTA_devkit's Task1 scripts compute it: per-class VOC07 11-point AP at\n"
            "polygon IoU > 0.5 (decided exactly), mAP over the 15 DOTA-v1.0 classes (16 with --v15).\n"
            "Ground-truth objects of other classes are ignored and counted, as the devkit never reads them."
        ),
        epilog=(
            "JSON (--json): {mAP, classes: {class: {ap, npos, num_dets}}, protocol, num_images, difficult_used,\n"
            "  unknown_image_detections: {count, examples}, warnings: {ignored_gt_objects: {class: n},\n"
            "  bowtie_gt, bowtie_det, degenerate_gt, degenerate_det}}; AP and mAP are fractions in [0, 1].\n"
            "Rules and where fasttcm defines what the devkit leaves undefined: docs/PROTOCOLS.md."
        ),
    )
    p.add_argument("--det", required=True,
                   help="detection files: the folder DIR of Task1_<class>.txt, or a template with the class as {} "
                        "or {:s} (the devkit's form), e.g. 'DIR/Task1_{:s}.txt'")
    p.add_argument("--gt", required=True, nargs="+", help="labelTxt folder(s) of the original images")
    p.add_argument("--imageset", default=None, help="image-set file (one image name per line); default: every "
                   "label file in --gt")
    p.add_argument("--json", default=None, help="write the results as JSON to this file")
    p.add_argument("--v15", action="store_true",
                   help="DOTA-v1.5: 16 classes (with container-crane), scored as the devkit's v1.5 script does, "
                        "which reads every object as not difficult (see --honour-difficult)")
    p.add_argument("--honour-difficult", "--honor-difficult", action="store_true",
                   help="with --v15: treat difficult objects as the v1.0 rule does (neither TP nor FP, not in "
                        "npos) instead of as the v1.5 script does (ignored flags); v1.0 always honours them")
    p.add_argument("--strict-classes", action="store_true",
                   help="refuse ground truth with classes outside the evaluated list (exit 2, naming file and line) "
                        "instead of ignoring and counting those objects")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    classes = de.DOTA_V15_CLASSES if args.v15 else de.DOTA_V1_CLASSES
    use_difficult = (not args.v15) or args.honour_difficult
    try:
        res = de.evaluate_files(args.det, args.gt, args.imageset, classes,
                             unknown_classes="error" if args.strict_classes else "ignore", use_difficult=use_difficult)
    except (ValueError, OSError) as e:  # bad files, templates, paths: one line that names them
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(de.format_table(res, title=f"DOTA-{'v1.5' if args.v15 else 'v1.0'} Task1: {args.det}"))
    if args.json:
        try:
            d = os.path.dirname(os.path.abspath(args.json))
            os.makedirs(d, exist_ok=True)
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(res.to_json(), f, indent=1)
        except OSError as e:
            print(f"error: cannot write {args.json}: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
