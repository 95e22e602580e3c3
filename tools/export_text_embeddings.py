#!/usr/bin/env python
"""Export FastTCM's text embeddings T (K, E) to a file for inference without the text encoder.

In mode ``fasttcm`` T depends only on parameters (prompts, learned context vectors, language prompt generator,
meta-query, frozen CLIP text encoder). This tool builds the backbone from a config, loads a trained model
checkpoint (Detectron2's ``model_final.pth`` or a plain state dict; the backbone's keys are found under
``backbone.bottom_up.``, ``backbone.`` or at the top level), computes T once in eval mode and writes it with the
prompts and the CLIP name. Then set ``MODEL.FASTTCM.TEXT_EMBEDDINGS_FILE`` to the output: inference loads T from it
and does not build the text encoder.

    python tools/export_text_embeddings.py --config-file configs/X.yaml --weights output/model_final.pth \\
        --output output/text_embeddings.pth [KEY VALUE ...]
"""
import argparse
import logging
import sys

import torch

import fasttcm.engine  # noqa: F401,I001  (first: registers everything; supplies detectron2._C)
from fasttcm.checkpoint import model_state_dict, read_checkpoint_file
from fasttcm.engine import load_config
from fasttcm.modeling.backbone import FastTCMBackbone
from fasttcm.modeling.prompting import save_text_embeddings

logger = logging.getLogger("fasttcm.export_text_embeddings")

_PREFIXES = ("backbone.bottom_up.", "backbone.", "bottom_up.", "")


def backbone_state_dict(checkpoint: dict, own_keys) -> dict:
    """The entries of ``checkpoint`` that belong to the bottom-up backbone, with the prefix that matches most."""
    best = max(_PREFIXES, key=lambda p: sum(1 for k in checkpoint if k.startswith(p) and k[len(p):] in own_keys))
    return {k[len(best):]: v for k, v in checkpoint.items() if k.startswith(best) and k[len(best):] in own_keys}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config-file", default="", help="model config (YAML)")
    ap.add_argument("--weights", default="", help="trained checkpoint; '' keeps the config's CLIP weights and the "
                                                  "initial prompt parameters (for tests only)")
    ap.add_argument("--output", required=True, help="output file (torch.save)")
    ap.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = ap.parse_args(argv)

    cfg = load_config(args.config_file or None, args.opts, freeze=False)
    c = cfg.MODEL.FASTTCM
    if c.MODE != "fasttcm":
        raise SystemExit(f"MODEL.FASTTCM.MODE is {c.MODE!r}: only mode 'fasttcm' has image-independent text "
                         f"embeddings")
    c.TEXT_EMBEDDINGS_FILE = ""  # the text encoder is what we need here
    backbone = FastTCMBackbone.from_config(cfg)
    if args.weights:
        ckpt = model_state_dict(args.weights, read_checkpoint_file(args.weights))["model"]
        ckpt = {k: torch.as_tensor(v) for k, v in ckpt.items()}
        own = backbone.state_dict()
        sd = backbone_state_dict(ckpt, set(own))
        missing = sorted(k for k in own if k.startswith("text.") and k not in sd)
        if missing:
            raise SystemExit(f"{args.weights} lacks text-branch weights: {missing[:8]}"
                             f"{' ...' if len(missing) > 8 else ''} (is it a FastTCM checkpoint of this config?)")
        backbone.load_state_dict(sd, strict=False)
        logger.info("loaded %d backbone tensors from %s", len(sd), args.weights)
    else:
        logger.warning("no --weights: exporting the embeddings of untrained prompt parameters")
    backbone.eval()
    with torch.no_grad():
        emb = backbone.text_embeddings()
    save_text_embeddings(args.output, emb, list(c.PROMPTS), clip=c.CLIP.NAME, num_context=c.NUM_CONTEXT,
                         context_length=c.CONTEXT_LENGTH, source=args.weights or "untrained")
    print(f"wrote {args.output}: text embeddings {tuple(emb.shape)} for {len(c.PROMPTS)} prompt(s), CLIP {c.CLIP.NAME}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
