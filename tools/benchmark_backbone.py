#!/usr/bin/env python
"""Time per-image inference of the FastTCM backbone in its three modes, in one process.

Builds ``build_fasttcm_fpn_backbone`` (default; ``--no-fpn`` for the bottom-up backbone alone) in modes
baseline, tcm and fasttcm with the same CLIP weights (random by default: speed does not depend on them), runs
``--warmup`` untimed and ``--iters`` timed forwards of a random (batch, 3, size, size) input under
``torch.inference_mode()`` in eval mode, and reports the median (``--stat min``: minimum) time per image. The
modes are interleaved round-robin, so slow drifts of a shared machine hit all of them alike; under load from
other processes ``--stat min`` is the steadier estimate of each mode's own cost. Also times one text-encoder call alone
(K prompts of ``--context-length`` tokens), which is what TCM pays per image and FastTCM does not.

Memory (peak of one forward after warm-up, above what was allocated before it, i.e. activations and workspaces;
weights and input excluded): CUDA: ``torch.cuda.max_memory_allocated``. CPU: bytes in use by the C allocator
(glibc ``mallinfo2``: heap in use + mmapped chunks, which is where PyTorch's CPU tensors and oneDNN workspaces
live), sampled every millisecond by a thread during the forward, so peaks shorter than that can be missed. (RSS
growth would be distorted by memory that earlier work freed but kept resident.) Without glibc the column says
"n/a".

Last line, for scripts: ``baseline=Xms tcm=Yms fasttcm=Zms text_encoder=Tms tcm/fasttcm=R1 fasttcm/baseline=R2``.
"""
import argparse
import ctypes
import statistics
import sys
import threading
import time

import torch

import fasttcm.modeling  # noqa: F401,I001  (first: registers the backbones; supplies detectron2._C)
from detectron2.config import get_cfg
from fasttcm.config import add_fasttcm_config
from fasttcm.modeling.backbone import build_fasttcm_backbone, build_fasttcm_fpn_backbone, set_clip_input_config

MODES = ("baseline", "tcm", "fasttcm")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=640, help="square input side in pixels (multiple of 32)")
    ap.add_argument("--num-prompts", type=int, default=1, help="K prompts (score-map channels)")
    ap.add_argument("--context-length", type=int, default=None,
                    help="text tokens per prompt (default: MODEL.FASTTCM.CONTEXT_LENGTH)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--iters", type=int, default=10, help="timed forwards per mode")
    ap.add_argument("--warmup", type=int, default=2, help="untimed forwards per mode")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--clip", default="RN50", help="CLIP name (RN50, RN101, RN50x4, ..., tiny-test)")
    ap.add_argument("--weights", default="", help="CLIP weights (default random)")
    ap.add_argument("--dense-pool", default=None, choices=("value", "attention"),
                    help="override MODEL.FASTTCM.DENSE_POOL (default value; attention = the reference code's, slower)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--no-fpn", action="store_true", help="time the bottom-up backbone without the FPN")
    ap.add_argument("--stat", choices=("median", "min"), default="median",
                    help="statistic of the summary line and ratios (min resists load from other processes)")
    return ap.parse_args(argv)


def make_cfg(args, mode):
    cfg = add_fasttcm_config(get_cfg())
    set_clip_input_config(cfg)
    c = cfg.MODEL.FASTTCM
    c.MODE = mode
    c.CLIP.NAME = args.clip
    c.CLIP.WEIGHTS = args.weights
    # the default prompt, then short class-like ones: the cost depends on K and the context length, not the words
    c.PROMPTS = list(c.PROMPTS)[:1] + [f"text of class {i}." for i in range(1, args.num_prompts)]
    if args.context_length is not None:
        c.CONTEXT_LENGTH = args.context_length
    if args.dense_pool:
        c.DENSE_POOL = args.dense_pool
    return cfg


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _malloc_in_use():
    """A function returning the bytes in use by glibc's malloc (heap + mmapped), or None without glibc >= 2.33."""
    try:
        fn = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2

    def in_use() -> int:
        m = fn()
        return m.uordblks + m.hblkhd

    return in_use


def cpu_peak_mib(run, in_use) -> float:
    """Peak malloc'd MiB above the level before ``run()``, sampled every millisecond during it."""
    base = in_use()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], in_use())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        run()
    finally:
        done.set()
        sampler.join()
    return (max(peak[0], in_use()) - base) / 2 ** 20


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    builder = build_fasttcm_backbone if args.no_fpn else build_fasttcm_fpn_backbone
    torch.manual_seed(0)
    models = {}
    for mode in MODES:
        models[mode] = builder(make_cfg(args, mode)).to(device).eval()
    # same weights in every mode wherever names and shapes agree (image encoder, decoders, most of the FPN)
    ref = models["fasttcm"].state_dict()
    for mode in ("baseline", "tcm"):
        own = models[mode].state_dict()
        models[mode].load_state_dict(
            {k: v for k, v in ref.items() if k in own and own[k].shape == v.shape}, strict=False)
    fast = models["fasttcm"]
    fast_bottom = getattr(fast, "bottom_up", fast)
    prompt_encoder = fast_bottom.text.prompt_encoder
    k = prompt_encoder.num_prompts
    length = prompt_encoder.tokens.shape[1]
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)

    times = {m: [] for m in MODES + ("text_encoder",)}
    mem = {}
    with torch.inference_mode():
        in_use = _malloc_in_use() if device.type == "cpu" else None
        for mode in MODES:  # warm-up, then one forward to measure memory
            for _ in range(max(args.warmup, 1)):
                models[mode](x)
            sync(device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                before = torch.cuda.memory_allocated(device)
                models[mode](x)
                sync(device)
                mem[mode] = (torch.cuda.max_memory_allocated(device) - before) / 2 ** 20
            elif in_use is not None:
                mem[mode] = cpu_peak_mib(lambda: models[mode](x), in_use)
        for _ in range(max(args.warmup, 1)):
            prompt_encoder(fast_bottom.text.meta_query)
        for _ in range(args.iters):
            for mode in MODES:
                sync(device)
                t0 = time.perf_counter()
                models[mode](x)
                sync(device)
                times[mode].append((time.perf_counter() - t0) * 1e3 / args.batch)
            sync(device)
            t0 = time.perf_counter()
            prompt_encoder(fast_bottom.text.meta_query)  # one call: K prompts x L tokens
            sync(device)
            times["text_encoder"].append((time.perf_counter() - t0) * 1e3)

    stat = statistics.median if args.stat == "median" else min
    med = {m: stat(v) for m, v in times.items()}
    mem_label = ("peak CUDA max_memory_allocated of one forward above weights+input, MiB" if device.type == "cuda"
                 else "peak CPU malloc in use during one forward above weights+input (mallinfo2, 1 ms samples), MiB")
    what = "bottom-up backbone" if args.no_fpn else "backbone + FPN"
    print(f"# {what}, CLIP {args.clip}, input {args.batch}x3x{args.size}x{args.size}, K={k}, "
          f"context length {length}, device {device}, threads {torch.get_num_threads()}, "
          f"dense pool {fast_bottom.image_encoder.dense_pool}, {args.iters} iters after {args.warmup} warm-up")
    print(f"{'mode':<14}{'ms/image median':>18}{'min':>10}{'max':>10}{'memory':>12}   [{mem_label}]")
    for m in MODES + ("text_encoder",):
        v = times[m]
        mm = f"{mem[m]:.0f}" if m in mem else ("-" if m == "text_encoder" else "n/a")
        print(f"{m:<14}{statistics.median(v):>18.1f}{min(v):>10.1f}{max(v):>10.1f}{mm:>12}")
    print(f"# summary statistic: {args.stat}; text_encoder = one call (K prompts), not per image")
    r1 = med["tcm"] / med["fasttcm"]
    r2 = med["fasttcm"] / med["baseline"]
    print(f"baseline={med['baseline']:.1f}ms tcm={med['tcm']:.1f}ms fasttcm={med['fasttcm']:.1f}ms "
          f"text_encoder={med['text_encoder']:.1f}ms tcm/fasttcm={r1:.3f} fasttcm/baseline={r2:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
