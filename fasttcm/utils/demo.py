"""Run a fasttcm model on images, folders or a video and draw its predictions.

For every input picture it writes <output>/<name>.jpg (text polygons with scores, or oriented boxes with class
names, drawn with Detectron2's Visualizer), <output>/<name>.json (the predictions), and with --heatmap also
<output>/<name>_scoremap.jpg (the backbone's pixel-text score map blended over the image).

Examples:
  python tools/demo.py --config-file configs/quickstart/fasttcm_synthtext_cpu.yaml \\
      --input demo/images --output output/demo MODEL.WEIGHTS output/quickstart/model_final.pth
  python tools/demo.py --config-file CFG --video-input street.mp4 --output output/video.mp4 MODEL.WEIGHTS W
"""
import argparse
import glob
import json
import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np
import tqdm

from ..data.fileio import IMAGE_EXTENSIONS


def get_parser():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, metavar="FILE", help="model config (YAML)")
    p.add_argument("--input", nargs="+", help="image files, folders or glob patterns")
    p.add_argument("--video-input", help="a video file; frames are processed in order")
    p.add_argument("--output", required=True, help="output folder (images) or file (video)")
    p.add_argument("--confidence-threshold", type=float, default=None,
                   help="drop predictions below this score (default: the model's own threshold)")
    p.add_argument("--heatmap", action="store_true", help="also write the score map as a heat-map overlay")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE config overrides")
    return p


def expand_inputs(inputs):
    """Files, folders (their images, sorted) and glob patterns -> a sorted list of image paths; missing -> error."""
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            paths += sorted(str(p) for p in Path(item).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        elif os.path.isfile(item):
            paths.append(item)
        else:
            matched = sorted(glob.glob(os.path.expanduser(item)))
            if not matched:
                raise FileNotFoundError(f"--input {item!r}: no such file, folder or matching pattern")
            paths += matched
    return paths


def main(argv=None):
    args = get_parser().parse_args(argv)
    if not args.input and not args.video_input:
        raise SystemExit("give --input or --video-input")

    from fasttcm.engine import load_config  # first: registers everything, supplies detectron2._C

    from detectron2.data import MetadataCatalog
    from detectron2.data.detection_utils import read_image
    from detectron2.utils.logger import setup_logger

    from fasttcm.predictor import FastTCMPredictor
    from fasttcm.utils.visualizer import FastTCMVisualizer, heatmap_overlay, instances_to_json

    if not logging.getLogger("fasttcm").handlers:  # the quick start has set it up already
        setup_logger(name="fasttcm")
    logger = logging.getLogger("fasttcm.demo")
    opts = list(args.opts)
    if args.heatmap:
        opts += ["TEST.FASTTCM.RETURN_MAPS", "True"]
    cfg = load_config(args.config_file, opts)
    predictor = FastTCMPredictor(cfg)
    metadata = MetadataCatalog.get(cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else "__unused")
    class_names = metadata.get("thing_classes", None)

    def run_one(img_bgr):
        outputs = predictor(img_bgr)
        inst = outputs["instances"].to("cpu")
        if args.confidence_threshold is not None:
            inst = inst[inst.scores >= args.confidence_threshold]
        vis = FastTCMVisualizer(img_bgr[:, :, ::-1], metadata).draw_predictions(inst).get_image()
        heat = None
        if args.heatmap and outputs.get("score_map") is not None:
            sm = outputs["score_map"].detach().cpu().numpy()
            heat = heatmap_overlay(img_bgr[:, :, ::-1].copy(), sm.max(axis=0) if sm.ndim == 3 else sm)
        return inst, vis, heat

    if args.video_input:
        cap = cv2.VideoCapture(args.video_input)
        if not cap.isOpened():
            raise SystemExit(f"cannot open video {args.video_input}")
        fps = cap.get(cv2.CAP_PROP_FPS) or 25
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(args.output, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        for _ in tqdm.tqdm(range(n) if n else iter(int, 1), desc="frames"):
            ok, frame = cap.read()
            if not ok:
                break
            _, vis, _ = run_one(frame)
            writer.write(np.ascontiguousarray(vis[:, :, ::-1]))
        cap.release()
        writer.release()
        logger.info(f"wrote {args.output}")
        return 0

    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = expand_inputs(args.input)
    for path in tqdm.tqdm(paths, desc="images", disable=len(paths) < 2):
        try:
            img = read_image(path, format="BGR")
        except Exception as e:  # name the file: PIL's messages do not
            raise SystemExit(f"cannot read image {path}: {e}") from None
        t0 = time.perf_counter()
        inst, vis, heat = run_one(img)
        dt = time.perf_counter() - t0
        stem = Path(path).stem
        cv2.imwrite(str(out_dir / f"{stem}.jpg"), vis[:, :, ::-1])
        if heat is not None:
            cv2.imwrite(str(out_dir / f"{stem}_scoremap.jpg"), heat[:, :, ::-1])
        with open(out_dir / f"{stem}.json", "w") as f:
            json.dump({"file_name": os.path.abspath(path), "height": img.shape[0], "width": img.shape[1],
                       "seconds": round(dt, 3), "predictions": instances_to_json(inst, class_names)}, f, indent=1)
        logger.info(f"{path}: {len(inst)} predictions in {dt:.2f}s")
    logger.info(f"wrote {len(paths)} pictures and JSON files to {out_dir}")
    return 0


run_demo = main
