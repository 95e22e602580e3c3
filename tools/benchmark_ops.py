#!/usr/bin/env python
"""Benchmark fasttcm's rotated-box ops (detectron2._C stand-ins) on DOTA-like data, against a shapely-2 baseline.

Workloads (DOTA-like boxes: centres uniform in a 1000 x 1000 image, sides uniform in [5, 100] px, any angle):
  * rotated IoU matrix of 2000 x 2000 boxes;
  * rotated NMS of 5000 boxes at IoU 0.5;
  * RoIAlignRotated of 512 RoIs, 7 x 7 bins, adaptive sampling, on a 1 x 256 x 200 x 200 map (spatial scale 0.2),
    forward and backward.

Baseline, run in the same process: shapely 2 with an STRtree (query the intersecting pairs, then vectorized
intersection / union areas) for the IoU matrix, and greedy NMS over the IoU pairs that STRtree yields. The run checks
that our IoU matrix matches shapely's (max abs difference) and that both NMS keep the same boxes. When a compiled
detectron2 is installed (not fasttcm's stand-in), its kernels are timed as well, wherever that build keeps them:
as attributes of ``detectron2._C`` (v0.6) or as ``torch.ops.detectron2.*`` (its main branch), see
``fasttcm.layers._C.compiled_op``.

Times are the median of --repeat runs after one warm-up run. Example:
  python tools/benchmark_ops.py --repeat 5 --device cpu
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

from fasttcm.layers import _C as ours


def dota_like_boxes(rng, n, image=1000.0):
    """(n, 5) float32 rotated boxes: centre uniform in the image, sides in [5, 100] px, angle in [-180, 180)."""
    b = np.c_[rng.uniform(0, image, (n, 2)), rng.uniform(5, 100, (n, 2)), rng.uniform(-180, 180, n)]
    return torch.tensor(b, dtype=torch.float32)


def corners(boxes):
    """(n, 5) rotated boxes -> (n, 4, 2) corners in detectron2's convention (counter-clockwise, y down)."""
    b = boxes.double().numpy()
    t = np.deg2rad(b[:, 4])
    ew = np.stack([np.cos(t), -np.sin(t)], 1)
    eh = np.stack([np.sin(t), np.cos(t)], 1)
    return np.stack(
        [b[:, :2] + su * 0.5 * b[:, 2:3] * ew + sv * 0.5 * b[:, 3:4] * eh for su, sv in ((1, 1), (-1, 1), (-1, -1), (1, -1))], 1
    )


def shapely_iou_pairs(shapely, b1, b2):
    """Baseline: polygons, STRtree query of intersecting pairs, vectorized areas. Returns (i, j, iou) arrays."""
    p1 = shapely.polygons(corners(b1))
    p2 = p1 if b2 is None else shapely.polygons(corners(b2))
    tree = shapely.STRtree(p2)
    i, j = tree.query(p1, predicate="intersects")
    inter = shapely.area(shapely.intersection(p1[i], p2[j]))
    a1, a2 = shapely.area(p1), shapely.area(p2)
    iou = inter / (a1[i] + a2[j] - inter)
    return i, j, iou


def shapely_iou_matrix(shapely, b1, b2):
    i, j, iou = shapely_iou_pairs(shapely, b1, b2)
    out = np.zeros((len(b1), len(b2)))
    out[i, j] = iou
    return out


def shapely_nms(shapely, boxes, scores, thr):
    """Baseline greedy NMS over the STRtree IoU pairs (visit by decreasing score, suppress IoU > thr)."""
    i, j, iou = shapely_iou_pairs(shapely, boxes, None)
    sel = (iou > thr) & (i != j)
    i, j = i[sel], j[sel]
    order = np.argsort(-scores.numpy(), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    fwd = rank[i] < rank[j]
    src, dst = rank[i][fwd], rank[j][fwd]
    srt = np.argsort(src, kind="stable")
    src, dst = src[srt], dst[srt]
    starts = np.searchsorted(src, np.arange(len(order)))
    ends = np.searchsorted(src, np.arange(len(order)), side="right")
    removed = np.zeros(len(order), bool)
    for r in range(len(order)):
        if not removed[r]:
            removed[dst[starts[r] : ends[r]]] = True
    return order[~removed]


def timeit(fn, repeat, device):
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    result = fn()  # warm-up
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


D2_OPS = ("box_iou_rotated", "nms_rotated", "roi_align_rotated_forward", "roi_align_rotated_backward")


def compiled_detectron2():
    """The compiled detectron2's kernels by name (each None where that build lacks it), or None when no compiled
    detectron2 is installed (fasttcm supplies detectron2._C)."""
    ops = {name: ours.compiled_op(name) for name in D2_OPS}
    return ops if any(fn is not None for fn in ops.values()) else None


def origin(name, fn):
    """Where the compiled kernel ``fn`` of op ``name`` was found, in words."""
    return "detectron2._C" if getattr(sys.modules.get("detectron2._C"), name, None) is fn else "torch.ops.detectron2"


def fmt(t):
    return "-" if t is None else f"{t:9.3f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="random seed of the synthetic boxes (default: 0)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement, median reported (default: 3)")
    parser.add_argument("--device", default="cpu", help="device for fasttcm's ops: cpu or cuda[:k] (default: cpu); "
                        "the shapely baseline always runs on the CPU")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for the CPU (default: torch's)")
    parser.add_argument("--iou-boxes", type=int, default=2000, help="N for the N x N IoU matrix (default: 2000)")
    parser.add_argument("--nms-boxes", type=int, default=5000, help="boxes for NMS (default: 5000)")
    parser.add_argument("--nms-threshold", type=float, default=0.5, help="NMS IoU threshold (default: 0.5)")
    parser.add_argument("--rois", type=int, default=512, help="RoIs for RoIAlignRotated (default: 512)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the shapely baseline")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but torch.cuda.is_available() is False")
    if args.threads:
        torch.set_num_threads(args.threads)
    shapely = None
    if not args.no_baseline:
        try:
            import shapely
        except ImportError:
            print("shapely is not installed: baseline skipped", file=sys.stderr)

    rng = np.random.default_rng(args.seed)
    iou_a, iou_b = dota_like_boxes(rng, args.iou_boxes), dota_like_boxes(rng, args.iou_boxes)
    nms_boxes = dota_like_boxes(rng, args.nms_boxes)
    nms_scores = torch.tensor(rng.random(args.nms_boxes), dtype=torch.float32)
    feat = torch.tensor(rng.standard_normal((1, 256, 200, 200)), dtype=torch.float32)
    roi_boxes = dota_like_boxes(rng, args.rois)
    rois = torch.cat([torch.zeros(args.rois, 1), roi_boxes], 1)
    scale, pooled, sr = 0.2, 7, 0

    d2c = compiled_detectron2()
    rows, notes = [], []

    def dev(t):
        return t.to(device)

    # --- IoU matrix
    a, b = dev(iou_a), dev(iou_b)
    t_ours, iou = timeit(lambda: ours.box_iou_rotated(a, b), args.repeat, device)
    t_base = t_d2 = None
    if shapely is not None:
        t_base, ref = timeit(lambda: shapely_iou_matrix(shapely, iou_a, iou_b), args.repeat, torch.device("cpu"))
        diff = np.abs(iou.double().cpu().numpy() - ref).max()
        diff64 = np.abs(ours.box_iou_rotated(a.double(), b.double()).cpu().numpy() - ref).max()
        notes.append(
            f"IoU matrix: max |ours - shapely| = {diff:.2e} (float32 output), {diff64:.2e} (float64); "
            f"{int((ref > 0).sum())} overlapping pairs"
        )
    if d2c and d2c["box_iou_rotated"]:
        t_d2, _ = timeit(lambda: d2c["box_iou_rotated"](a, b), args.repeat, device)
    rows.append((f"rotated IoU {args.iou_boxes}x{args.iou_boxes}", t_ours, t_base, t_d2))

    # --- NMS
    nb, ns = dev(nms_boxes), dev(nms_scores)
    t_ours, keep = timeit(lambda: ours.nms_rotated(nb, ns, args.nms_threshold), args.repeat, device)
    t_base = t_d2 = None
    if shapely is not None:
        t_base, keep_ref = timeit(
            lambda: shapely_nms(shapely, nms_boxes, nms_scores, args.nms_threshold), args.repeat, torch.device("cpu")
        )
        same = keep.cpu().numpy().tolist() == keep_ref.tolist()
        notes.append(f"NMS: {keep.numel()} kept of {args.nms_boxes}; identical to the baseline's keep list: {'yes' if same else 'NO'}")
    if d2c and d2c["nms_rotated"]:
        t_d2, _ = timeit(lambda: d2c["nms_rotated"](nb, ns, args.nms_threshold), args.repeat, device)
    rows.append((f"rotated NMS {args.nms_boxes} @ {args.nms_threshold}", t_ours, t_base, t_d2))

    # --- RoIAlignRotated
    x, r = dev(feat), dev(rois)
    t_fwd, out = timeit(lambda: ours.roi_align_rotated_forward(x, r, scale, pooled, pooled, sr), args.repeat, device)
    grad = torch.ones_like(out)
    t_bwd, _ = timeit(
        lambda: ours.roi_align_rotated_backward(grad, r, scale, pooled, pooled, 1, 256, 200, 200, sr), args.repeat, device
    )
    d2_fwd = d2_bwd = None
    if d2c and d2c["roi_align_rotated_forward"]:
        fwd = d2c["roi_align_rotated_forward"]
        d2_fwd, _ = timeit(lambda: fwd(x, r, scale, pooled, pooled, sr), args.repeat, device)
    if d2c and d2c["roi_align_rotated_backward"]:
        bwd = d2c["roi_align_rotated_backward"]
        d2_bwd, _ = timeit(lambda: bwd(grad, r, scale, pooled, pooled, 1, 256, 200, 200, sr), args.repeat, device)
    rows.append((f"RoIAlignRotated fwd {args.rois} RoIs 7x7", t_fwd, None, d2_fwd))
    rows.append((f"RoIAlignRotated bwd {args.rois} RoIs 7x7", t_bwd, None, d2_bwd))

    # --- report
    threads = torch.get_num_threads()
    print(f"fasttcm ops on {device} (torch {torch.__version__}, {threads} CPU threads); seed {args.seed}, "
          f"median of {args.repeat} runs")
    if shapely is not None:
        print(f"baseline: shapely {shapely.__version__} STRtree + vectorized areas (CPU)")
    if d2c is None:
        print("detectron2 compiled ops: not installed (fasttcm supplies detectron2._C)")
    else:
        found = ", ".join(f"{n} ({origin(n, fn)})" if fn is not None else f"{n} (missing)" for n, fn in d2c.items())
        print(f"detectron2 compiled ops, timed: {found}")
    if hasattr(os, "getloadavg") and device.type == "cpu":
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
        print(f"load average (1 min) {load:.2f} on {cores} cores")
        if threads > 1 and load > 0.75 * cores:
            print("warning: the CPU is busy with other work; multi-threaded torch ops then wait on each other "
                  "(try --threads 1 for steadier numbers)")
    head = f"{'operation':<34} {'ours (s)':>9} {'shapely (s)':>11} {'shapely/ours':>12}"
    if d2c is not None:
        head += f" {'detectron2 (s)':>14} {'d2/ours':>8}"
    print(head)
    print("-" * len(head))
    for name, t_o, t_b, t_d in rows:
        line = f"{name:<34} {fmt(t_o)} {fmt(t_b):>11} {('-' if t_b is None else f'{t_b / t_o:.1f}x'):>12}"
        if d2c is not None:
            line += f" {fmt(t_d):>14} {('-' if t_d is None else f'{t_d / t_o:.1f}x'):>8}"
        print(line)
    for n in notes:
        print(n)
    ok = all("NO" not in n for n in notes)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
