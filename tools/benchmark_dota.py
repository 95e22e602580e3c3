#!/usr/bin/env python
"""Time the DOTA tooling on synthetic data generated in a temporary folder in the same run, against targets.

What is timed (wall clock, best of --repeat runs; data generation and imports are not timed):

* evaluation: ``fasttcm.evaluation.dota_eval.evaluate_files`` on 500 images (about 40 labelled objects each,
  labelTxt files) and 20 000 detections in 15 ``Task1_<class>.txt`` files: parsing every file, polygon IoU,
  matching, AP. Target < 0.5 s.
* merging: ``fasttcm.structures.patches.merge_detections`` on 20 000 patch detections held in memory (parsing patch
  names, mapping back, class-wise polygon NMS at 0.1). Target < 0.3 s. The file-to-file merge
  (``merge_task1_dir``: reading and writing Task1 files too) is printed for information.
* splitting: ``fasttcm.data.dota.split.split_dataset`` of 20 images of 2000-3000 px (PNG sources written with the
  --src-png-compression level, with labels) into 1024 px patches (gap 200, rate 1) with --workers processes:
  decoding the sources, cropping, padding, encoding the patches as PNG (--png-compression), clipping and writing
  labels. Target < 2 s. PNG encoding dominates; the line after it shows the same split with the fast
  compressed PNG (level 1, the tool's default) for information.

Example:  python tools/benchmark_dota.py --workers 2
"""
import argparse
import math
import os
import shutil
import sys
import tempfile
import time

import numpy as np

def _rand_rboxes(rng, n, w, h, size=(10, 60)):
    L = rng.uniform(*size, n)
    W = L * rng.uniform(0.25, 0.9, n)
    cx = rng.uniform(L, w - L)
    cy = rng.uniform(L, h - L)
    a = rng.uniform(-180, 180, n)
    return np.stack([cx, cy, L, W, a], axis=1)


def make_eval_data(root, rng, n_images=500, n_dets=20000):
    from fasttcm.structures.quads import rboxes_to_quads
    from fasttcm.formats.dota import DOTA_V1_CLASSES, Task1Detections, format_label_line, write_task1_dir

    os.makedirs(os.path.join(root, "labelTxt"))
    det_img, det_cls, det_q, det_s = [], [], [], []
    names = [f"P{i:04d}" for i in range(n_images)]
    per_img = n_dets // n_images
    for name in names:
        n = 40
        boxes = _rand_rboxes(rng, n, 1024, 1024)
        cls = rng.integers(0, 15, n)
        diff = (rng.random(n) < 0.05).astype(int)
        q = rboxes_to_quads(boxes)
        with open(os.path.join(root, "labelTxt", name + ".txt"), "w") as f:
            f.write("imagesource:GoogleEarth\ngsd:0.1\n")
            f.writelines(format_label_line(np.round(q[j]), DOTA_V1_CLASSES[cls[j]], diff[j]) + "\n" for j in range(n))
        # detections: noisy copies of 80 % of the objects, duplicates, and random false positives
        hit = rng.random(n) < 0.8
        nb = boxes[hit] + rng.normal(0, 1, (hit.sum(), 5)) * [2, 2, 2, 1, 3]
        nb[:, 2:4] = np.abs(nb[:, 2:4]) + 1
        k = per_img - len(nb)
        dup = nb[: k // 3] + rng.normal(0, 3, (len(nb[: k // 3]), 5))
        dup[:, 2:4] = np.abs(dup[:, 2:4]) + 1
        fp = _rand_rboxes(rng, per_img - len(nb) - len(dup), 1024, 1024)
        allb = np.concatenate([nb, dup, fp])
        det_q.append(rboxes_to_quads(allb))
        det_cls.append(np.concatenate([cls[hit], cls[hit][: len(dup)], rng.integers(0, 15, len(fp))]))
        det_s.append(np.concatenate([rng.uniform(0.5, 1, len(nb)), rng.uniform(0.2, 0.8, len(dup) + len(fp))]))
        det_img += [name] * len(allb)
    q, c, s, im = np.concatenate(det_q), np.concatenate(det_cls), np.concatenate(det_s), np.array(det_img, object)
    dets = {DOTA_V1_CLASSES[k]: Task1Detections(im[c == k], s[c == k], q[c == k]) for k in range(15)}
    write_task1_dir(os.path.join(root, "det"), dets)
    with open(os.path.join(root, "imageset.txt"), "w") as f:
        f.writelines(n + "\n" for n in names)
    return len(q)


def make_merge_data(rng, n_dets=20000):
    """Patch detections of 16 images of 3000 x 3000 (16 patches each at 1024 / gap 200): objects seen in every
    patch that contains them (duplicates across the overlaps), with noise, plus false positives."""
    from fasttcm.structures.quads import rboxes_to_quads
    from fasttcm.structures.patches import patch_name, patch_origins

    names, quads, scores, classes = [], [], [], []
    per_image = n_dets // 16
    for i in range(16):
        objs = _rand_rboxes(rng, 700, 3000, 3000)
        ocls = rng.integers(0, 15, len(objs))
        oq = rboxes_to_quads(objs)
        got = 0
        for left, up in patch_origins(3000, 3000, 1024, 200):
            inside = ((oq[..., 0].min(1) >= left) & (oq[..., 0].max(1) <= left + 1024)
                      & (oq[..., 1].min(1) >= up) & (oq[..., 1].max(1) <= up + 1024))
            b = objs[inside] + rng.normal(0, 1, (inside.sum(), 5)) * [1, 1, 1, 0.5, 2]
            b[:, 2:4] = np.abs(b[:, 2:4]) + 1
            fp = _rand_rboxes(rng, 12, 1024, 1024)
            fp[:, :2] += [left, up]
            b = np.concatenate([b, fp])
            take = min(len(b), per_image - got)
            b = b[:take]
            quads.append(rboxes_to_quads(b) - [left, up])
            classes.append(np.concatenate([ocls[inside], rng.integers(0, 15, 12)])[:take])
            scores.append(rng.uniform(0.05, 1, take))
            names += [patch_name(f"P{i:04d}", 1, left, up)] * take
            got += take
    return np.array(names, object), np.concatenate(quads), np.concatenate(scores), np.concatenate(classes)


def make_split_data(root, rng, n_images=20, src_png_compression=0):
    import cv2

    from fasttcm.data.datasets.synthetic_aerial import _background
    from fasttcm.structures.quads import rboxes_to_quads
    from fasttcm.formats.dota import DOTA_V1_CLASSES, format_label_line

    os.makedirs(os.path.join(root, "images"))
    os.makedirs(os.path.join(root, "labelTxt"))
    params = [cv2.IMWRITE_PNG_COMPRESSION, src_png_compression]
    if src_png_compression == 0:
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
    sizes = []
    for i in range(n_images):
        w, h = (int(v) for v in rng.integers(2000, 3001, 2))
        img = _background(rng, h, w)
        boxes = _rand_rboxes(rng, 150, w, h)
        q = rboxes_to_quads(boxes)
        for quad in q:
            col = tuple(int(v) for v in rng.integers(0, 256, 3))
            cv2.fillPoly(img, [np.round((quad - 0.5) * 16).astype(np.int32)], col, cv2.LINE_AA, shift=4)
        name = f"P{i:04d}"
        cv2.imwrite(os.path.join(root, "images", name + ".png"), img, params)
        with open(os.path.join(root, "labelTxt", name + ".txt"), "w") as f:
            f.writelines(format_label_line(np.round(quad), DOTA_V1_CLASSES[int(rng.integers(15))], 0) + "\n"
                         for quad in q)
        sizes.append((w, h))
    return sizes


def _cpu():
    import resource

    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def best_of(fn, repeat):
    """(best wall time, CPU time of that run - this process and its finished children -, result)"""
    best, cpu, out = math.inf, math.nan, None
    for _ in range(repeat):
        t, c = time.perf_counter(), _cpu()
        out = fn()
        dt = time.perf_counter() - t
        if dt < best:
            best, cpu = dt, _cpu() - c
    return best, cpu, out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=2, help="processes for splitting (default 2)")
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is reported")
    p.add_argument("--png-compression", type=int, default=0, help="PNG level of the patches in the timed split")
    p.add_argument("--src-png-compression", type=int, default=0, help="PNG level of the generated sources")
    p.add_argument("--skip-split", action="store_true", help="skip the splitting benchmark")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from tabulate import tabulate

    from fasttcm.formats.dota import DOTA_V1_CLASSES, Task1Detections, write_task1_dir
    from fasttcm.data.dota.merge import merge_task1_dir
    from fasttcm.structures.patches import merge_detections
    from fasttcm.data.dota.split import SplitConfig, split_dataset
    from fasttcm.evaluation.dota_eval import evaluate_files

    rng = np.random.default_rng(args.seed)
    tmp = tempfile.mkdtemp(prefix="fasttcm_bench_dota_")
    rows = []
    try:
        # ---- evaluation
        eroot = os.path.join(tmp, "eval")
        nd = make_eval_data(eroot, rng)
        t_eval, c_eval, res = best_of(
            lambda: evaluate_files(os.path.join(eroot, "det"), os.path.join(eroot, "labelTxt"),
                                   os.path.join(eroot, "imageset.txt"), DOTA_V1_CLASSES),
            args.repeat,
        )
        rows.append(["evaluation", f"500 images, {nd} detections, files parsed + AP (mAP {100 * res.map:.1f})",
                     t_eval, c_eval, 0.5])
        # ---- merging
        names, quads, scores, classes = make_merge_data(rng)
        t_merge, c_merge, out = best_of(lambda: merge_detections(names, quads, scores, classes, 0.1), args.repeat)
        rows.append(["merging", f"{len(names)} patch detections in memory -> {len(out[0])} kept", t_merge, c_merge,
                     0.3])
        mroot = os.path.join(tmp, "merge")
        write_task1_dir(os.path.join(mroot, "src"), {
            DOTA_V1_CLASSES[k]: Task1Detections(names[classes == k], scores[classes == k], quads[classes == k])
            for k in range(15)})
        t_mf, c_mf, _ = best_of(lambda: merge_task1_dir(os.path.join(mroot, "src"), os.path.join(mroot, "dst")),
                                args.repeat)
        rows.append(["merging (files)", "same, Task1 files read and written (information)", t_mf, c_mf, None])
        # ---- splitting
        if not args.skip_split:
            sroot = os.path.join(tmp, "split_src")
            sizes = make_split_data(sroot, rng, src_png_compression=args.src_png_compression)
            cfg = SplitConfig(png_compression=args.png_compression)
            stats = None

            def run_split(cfg=cfg):
                nonlocal stats
                dst = os.path.join(tmp, f"split_dst_{cfg.png_compression}")
                shutil.rmtree(dst, ignore_errors=True)
                stats = split_dataset(sroot, dst, cfg, workers=args.workers, progress=False)
                return stats

            t_split, c_split, _ = best_of(run_split, min(args.repeat, 2))
            px = sum(w * h for w, h in sizes) / 1e6
            rows.append(["splitting", f"20 images 2000-3000 px ({px:.0f} Mpx) -> {stats.patches} patches, PNG level "
                         f"{args.png_compression}, sources level {args.src_png_compression}, {args.workers} workers",
                         t_split, c_split, 2.0])
            if args.png_compression != 1:
                cfg1 = SplitConfig(png_compression=1)
                t1, c1, _ = best_of(lambda: run_split(cfg1), 1)
                rows.append(["splitting (PNG 1)", "same with the tool's default PNG level 1 (information)", t1, c1,
                             None])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    table = [[n, what, f"{t:.3f}", f"{c:.2f}", "" if tgt is None else f"< {tgt}",
              "" if tgt is None else ("ok" if t < tgt else "SLOW")] for n, what, t, c, tgt in rows]
    print(tabulate(table, headers=["task", "what is timed", "wall (s)", "CPU (s)", "target (s)", ""],
                   tablefmt="pipe"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(wall: best of {args.repeat} runs; CPU: that run's CPU time, all processes; {os.cpu_count()} CPUs, "
          f"load average {load:.1f} at the end: other work on the machine inflates wall times)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
