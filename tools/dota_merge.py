#!/usr/bin/env python
"""Merge patch-level DOTA Task1 detections onto the original images (rules: fasttcm/data/dota/merge.py).

SRC holds Task1_<class>.txt files whose image names are patch names <image>__<rate>__<left>___<up>; DST
receives Task1_<class>.txt over the original images (each patch detection mapped back, then class-wise polygon
NMS per image at --nms-thr), one file per class of the DOTA list (empty when it has no detections), ready to zip
for the evaluation server: `cd DST && zip ../submission.zip Task1_*.txt`.

The NMS threshold decides which DOTA_devkit merger this reproduces: 0.1 (default) = ResultMerge_multi_process.py,
0.3 = ResultMerge.py (the single-process one). Needs only numpy and shapely (no torch, no detectron2).

Example:
  python tools/dota_merge.py output/inference/dota_v1_test_1024/patches output/dota_test_merged --nms-thr 0.1
"""
import argparse
import logging
import sys
import time


def main(argv=None) -> int:
    from fasttcm.formats.dota import DOTA_V1_CLASSES, DOTA_V15_CLASSES
    from fasttcm.data.dota.merge import merge_task1_dir

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="folder of patch-level Task1_<class>.txt")
    p.add_argument("dst", help="output folder")
    p.add_argument("--nms-thr", type=float, default=0.1,
                   help="polygon IoU above which NMS suppresses: 0.1 (default) reproduces DOTA_devkit's "
                        "ResultMerge_multi_process.py, 0.3 its single-process ResultMerge.py")
    p.add_argument("--v15", action="store_true", help="write files for the 16 DOTA-v1.5 classes")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    t0 = time.perf_counter()
    try:
        paths = merge_task1_dir(args.src, args.dst, args.nms_thr, DOTA_V15_CLASSES if args.v15 else DOTA_V1_CLASSES)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} files to {args.dst} [{time.perf_counter() - t0:.2f} s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
