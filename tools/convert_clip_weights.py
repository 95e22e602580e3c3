#!/usr/bin/env python
"""Write CLIP ResNet weights as a plain float32 state dict (OpenAI / open_clip key layout).

Sources: OpenAI's TorchScript ``RN50.pt`` (or any local CLIP file fasttcm reads), an open_clip pretrained tag
(``--weights openai`` downloads: needs network), or nothing (random weights, for tests). Weights that come from
OpenAI keep OpenAI's three metadata entries (``input_resolution``, ``context_length``, ``vocab_size``), so that
loading the output later still selects QuickGELU. The output is read with ``torch.load(weights_only=True)`` and is
used as ``MODEL.FASTTCM.CLIP.WEIGHTS``. After writing, the file is loaded back and checked to reproduce the
source model's image and text embeddings exactly.

    python tools/convert_clip_weights.py --name RN50 --weights ~/Downloads/RN50.pt --output weights/clip_rn50.pth
"""
import argparse
import os
import sys

import torch

import fasttcm.modeling  # noqa: F401,I001  (first: supplies detectron2._C)
from fasttcm.modeling.clip import build_clip_model, clip_state_dict_for_export, read_clip_state_dict


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--name", default="RN50", help="CLIP architecture (RN50, RN101, RN50x4, ..., tiny-test)")
    ap.add_argument("--weights", default="", help="source: local file, open_clip tag (e.g. openai), or '' for random")
    ap.add_argument("--output", required=True, help="output .pth file")
    args = ap.parse_args(argv)

    src = build_clip_model(args.name, args.weights)
    from_openai = args.weights == "openai" or (
        bool(args.weights) and os.path.isfile(args.weights) and read_clip_state_dict(args.weights)[1])
    sd = clip_state_dict_for_export(src, openai_metadata=from_openai)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    torch.save(sd, args.output)

    # verify: the written file rebuilds the same model
    back = build_clip_model(args.name, args.output)
    size = src.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    text = torch.zeros(1, src.context_length, dtype=torch.long)
    text[0, :3] = torch.tensor([49406, 320, 49407])
    with torch.no_grad():
        same = torch.equal(src.encode_image(image), back.encode_image(image)) and torch.equal(
            src.encode_text(text), back.encode_text(text))
    n = sum(v.numel() for v in sd.values())
    print(f"wrote {args.output}: {len(sd)} entries, {n / 1e6:.1f} M values, CLIP {args.name}, "
          f"{'OpenAI weights (QuickGELU)' if from_openai else 'no OpenAI metadata'}; reload check: "
          f"{'identical outputs' if same else 'OUTPUTS DIFFER'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
