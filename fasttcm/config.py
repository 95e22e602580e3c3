"""``add_fasttcm_config(cfg)``: every config key fasttcm adds to Detectron2's, with its default and a comment.

All new keys live under ``cfg.MODEL.FASTTCM`` (model), ``cfg.INPUT.FASTTCM`` (data/augmentation) and
``cfg.TEST.FASTTCM`` (evaluation), so a typo in a YAML file is refused by yacs with the offending key named.
Each section below belongs to one part of the system; keep its keys together.
"""
from detectron2.config import CfgNode as CN


def add_fasttcm_config(cfg):
    """Add fasttcm's keys to a Detectron2 config (in place) and return it."""
    _C = cfg

    # ------------------------------------------------------------------ backbone (CLIP + prompting) --
    _C.MODEL.FASTTCM = CN()
    # BACKBONE-SECTION (owned by the backbone module)

    # ------------------------------------------------------------------ text detection (DB head) ----
    # TEXT-SECTION (owned by the text detector)

    # ------------------------------------------------------------------ oriented detection (DOTA) ---
    # ROTATED-SECTION (owned by the rotated detector)

    # ------------------------------------------------------------------ data / evaluation ----------
    _C.INPUT.FASTTCM = CN()
    # INPUT-SECTION
    _C.TEST.FASTTCM = CN()
    # TEST-SECTION
    _C.TEST.FASTTCM.SCORE_THRESHOLD = 0.5  # detections below this score are not reported to evaluators (fixed, no sweep)
    return cfg
