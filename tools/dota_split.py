#!/usr/bin/env python
"""Split DOTA images and labels into fixed-size patches (rules: fasttcm/data/dota/split.py, docs/PROTOCOLS.md §4).

SRC holds images/ and optionally labelTxt/ (the test split has no labels); DST receives images/, labelTxt/,
images.txt (patch names), source_images.txt (original image names) and split_config.json. Patches are named
<image>__<rate>__<left>___<up>.png with the rate as written on the command line (`--rates 1` -> `__1__`,
`--rates 1.0` -> `__1.0__`). Rerunning skips images whose patches all exist (use --force to rewrite them).

Examples:
  python tools/dota_split.py datasets/dota/train datasets/dota/train_1024 --workers 2
  python tools/dota_split.py datasets/dota/val datasets/dota/val_ms --rates 0.5 1.0 1.5 --workers 8
"""
import argparse
import logging
import sys
import time


def main(argv=None) -> int:
    from fasttcm.data.dota.split import SplitConfig, parse_rate, split_dataset

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="folder with images/ and (optionally) labelTxt/")
    p.add_argument("dst", help="output folder")
    p.add_argument("--subsize", type=int, default=1024, help="patch side in pixels (default 1024)")
    p.add_argument("--gap", type=int, default=200, help="overlap of neighbouring patches in pixels (default 200)")
    p.add_argument("--rates", nargs="+", default=["1"], help="rescaling factors, kept as written (default 1)")
    p.add_argument("--iof-thr", type=float, default=0.7,
                   help="a cut object keeps its difficult flag when intersection/area > this, else gets 2")
    p.add_argument("--ext", default=".png", help="patch image format (default .png)")
    p.add_argument("--png-compression", type=int, default=1,
                   help="zlib level 0-9: 0 = stored (fastest, largest), 1 = fast (default), 2-9 = smaller, slower")
    p.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    p.add_argument("--force", action="store_true", help="rewrite patches that exist already")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        cfg = SplitConfig(subsize=args.subsize, gap=args.gap, rates=tuple(parse_rate(r) for r in args.rates),
                          iof_thr=args.iof_thr, ext=args.ext, png_compression=args.png_compression)
        t0 = time.perf_counter()
        stats = split_dataset(args.src, args.dst, cfg, workers=args.workers, force=args.force)
    except (ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"done in {time.perf_counter() - t0:.1f} s: {stats.patches} patches written to {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
