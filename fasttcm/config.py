"""``add_fasttcm_config(cfg)``: every config key fasttcm adds to Detectron2's, with its default and a comment.

All new keys live under ``cfg.MODEL.FASTTCM`` (model), ``cfg.INPUT.FASTTCM`` (data/augmentation) and
``cfg.TEST.FASTTCM`` (evaluation), so a typo in a YAML file is refused by yacs with the offending key named.
Each section below belongs to one part of the system; keep its keys together.
"""
from fasttcm import _detectron2  # noqa: F401,I001  (first: supplies detectron2._C before detectron2 loads)
from detectron2.config import CfgNode as CN


def add_fasttcm_config(cfg):
    """Add fasttcm's keys to a Detectron2 config (in place) and return it."""
    _C = cfg

    # ------------------------------------------------------------------ backbone (CLIP + prompting) --
    _C.MODEL.FASTTCM = CN()
    # BACKBONE-SECTION (owned by the backbone module)
    _C.MODEL.FASTTCM.MODE = "fasttcm"  # "baseline" (CLIP ResNet only) | "tcm" (text encoder per image) | "fasttcm" (meta-query + BSM, cached text)
    _C.MODEL.FASTTCM.CLIP = CN()
    _C.MODEL.FASTTCM.CLIP.NAME = "RN50"  # open_clip CLIP ResNet (RN50, RN101, RN50x4, ...) or "tiny-test" (tiny random model for tests)
    _C.MODEL.FASTTCM.CLIP.WEIGHTS = ""  # "" random init; open_clip tag such as "openai" (downloads); or a local file (OpenAI RN50.pt, state dict)
    _C.MODEL.FASTTCM.CLIP.QUICK_GELU = True  # text-tower activation: QuickGELU, as all released CLIP ResNets (forced for OpenAI weights)
    _C.MODEL.FASTTCM.NORM = "FrozenBN"  # image-encoder BatchNorm: "FrozenBN" (fixed stats and affine), "BN" (trainable) or "SyncBN"
    _C.MODEL.FASTTCM.FREEZE_AT = 0  # requires_grad=False for the stem (1) and res2..res{FREEZE_AT}; 0 trains the whole image encoder
    _C.MODEL.FASTTCM.DENSE_POOL = "value"  # dense embedding I: "value" (c_proj(v_proj(pixel)), MaskCLIP-style, folded at inference) or "attention" (every pixel through the attention pool, as TCM; slower)
    _C.MODEL.FASTTCM.PROMPTS = ["the pixels of many arbitrary-shape text instances."]  # K predefined prompts, one per score-map channel (class)
    _C.MODEL.FASTTCM.NUM_PROMPTS = 0  # expected K (e.g. 15 for DOTA); 0 = len(PROMPTS); a mismatch is refused
    _C.MODEL.FASTTCM.NUM_CONTEXT = 4  # N learnable context vectors inserted after the start token
    _C.MODEL.FASTTCM.CONTEXT_LENGTH = 18  # text tokens per prompt (<= 77): start + N + words + end must fit (default prompt: 18); 77 = CLIP's full length, same result, slower
    _C.MODEL.FASTTCM.DECODER_WIDTH = 256  # width of the visual prompt generator and text context decoder
    _C.MODEL.FASTTCM.DECODER_LAYERS = 3  # transformer decoder layers in each of the two decoders
    _C.MODEL.FASTTCM.DECODER_HEADS = 4  # attention heads in each decoder layer
    _C.MODEL.FASTTCM.GAMMA_INIT = 1e-3  # initial value of gamma_v (scalar) and gamma_t (E-vector) scaling the decoders' residuals
    _C.MODEL.FASTTCM.TAU = 0.07  # temperature: the auxiliary loss is computed on score_map / TAU
    _C.MODEL.FASTTCM.SCORE_MAP_LOSS_WEIGHT = 1.0  # weight of the auxiliary score-map loss (0 disables it)
    _C.MODEL.FASTTCM.IMAGE_ENCODER_LR_FACTOR = 0.1  # learning-rate multiplier of the CLIP image encoder (incl. attention pool)
    _C.MODEL.FASTTCM.TEXT_EMBEDDINGS_FILE = ""  # fasttcm mode: file from tools/export_text_embeddings.py; set, no text encoder is built
    _C.MODEL.FASTTCM.FPN_P6 = True  # build_fasttcm_fpn_backbone: add p6 by max-pooling p5 (Detectron2's LastLevelMaxPool); False: p2..p5
    _C.SOLVER.OPTIMIZER = "AdamW"  # fasttcm.solver.build_optimizer: "AdamW" or "SGD" (momentum SOLVER.MOMENTUM, SOLVER.NESTEROV)

    # ------------------------------------------------------------------ text detection (DB head) ----
    # TEXT-SECTION (owned by the text detector)
    _C.MODEL.FASTTCM.DB = CN()  # DB (Differentiable Binarization) head of the TextDetector meta-architecture
    _C.MODEL.FASTTCM.DB.IN_FEATURES = ["p2", "p3", "p4", "p5"]  # backbone outputs fused by the head (finest stride = 2^n, usually 4)
    _C.MODEL.FASTTCM.DB.INNER_CHANNELS = 64  # channels each level is reduced to before concatenation (and in both branches)
    _C.MODEL.FASTTCM.DB.NORM = "BN"  # norm in the head's conv layers: "BN", "GN", "SyncBN" or "" (none)
    _C.MODEL.FASTTCM.DB.K = 50.0  # amplification k of the approximate binary map 1 / (1 + exp(-k (P - T)))
    _C.MODEL.FASTTCM.DB.NEG_RATIO = 3.0  # hard negatives per positive pixel in the balanced BCE on P
    _C.MODEL.FASTTCM.DB.PROB_LOSS_WEIGHT = 5.0  # weight of the balanced BCE on the probability map (loss_db_prob)
    _C.MODEL.FASTTCM.DB.BINARY_LOSS_WEIGHT = 1.0  # weight of the dice loss on the approximate binary map (loss_db_binary)
    _C.MODEL.FASTTCM.DB.THRESH_LOSS_WEIGHT = 10.0  # weight of the masked L1 loss on the threshold map (loss_db_thresh)
    _C.MODEL.FASTTCM.DB.SHRINK_RATIO = 0.4  # targets: polygons shrink by D = A (1 - r^2) / L with r = SHRINK_RATIO
    _C.MODEL.FASTTCM.DB.THRESH_MIN = 0.3  # targets: threshold map value away from text borders
    _C.MODEL.FASTTCM.DB.THRESH_MAX = 0.7  # targets: threshold map value on text borders
    _C.MODEL.FASTTCM.DB.MIN_TEXT_SIZE = 8.0  # targets (DB: 8): text whose min-area rectangle's short side is below this (pixels) is don't care
    _C.MODEL.FASTTCM.DB.BINARY_THRESH = 0.3  # inference: P is binarized at this value before finding contours
    _C.MODEL.FASTTCM.DB.BOX_THRESH = 0.6  # inference: candidates whose mean P inside is below this are dropped (DB: 0.6 Total-Text/CTW, 0.7 IC15)
    _C.MODEL.FASTTCM.DB.UNCLIP_RATIO = 1.5  # inference: candidates grow by area * ratio / perimeter pixels
    _C.MODEL.FASTTCM.DB.MAX_CANDIDATES = 1000  # inference: at most this many contours (largest first) per image
    _C.MODEL.FASTTCM.DB.MIN_SIZE = 3.0  # inference: candidates with a min-area-rectangle short side below this (input pixels) are dropped
    _C.MODEL.FASTTCM.DB.OUTPUT_MODE = "poly"  # inference: "poly" arbitrary polygons (Total-Text, CTW1500) or "quad" clockwise min-area rectangles (ICDAR 2015)
    _C.MODEL.FASTTCM.DB.POLY_EPSILON = 0.005  # inference, poly mode: approxPolyDP tolerance as a fraction of the contour perimeter

    # ------------------------------------------------------------------ oriented detection (DOTA) ---
    # ROTATED-SECTION (owned by the rotated detector)

    # ------------------------------------------------------------------ data / evaluation ----------
    _C.INPUT.FASTTCM = CN()
    # INPUT-SECTION
    _C.INPUT.FASTTCM.TEXT_RESIZE_MODE = "scale_range"  # text training resize: "scale_range" (TEXT_SCALE_RANGE), "shortest_edge" (INPUT.MIN_SIZE_TRAIN...) or "none"
    _C.INPUT.FASTTCM.TEXT_SCALE_RANGE = (0.5, 3.0)  # text training: random scale factor range of the "scale_range" resize (DB's recipe)
    _C.INPUT.FASTTCM.TEXT_SCALE_MAX_SIZE = 4096  # text training, "scale_range": the scaled image's longer side is capped at this (pixels; 0 = no cap)
    _C.INPUT.FASTTCM.TEXT_HFLIP_PROB = 0.0  # text training: horizontal flip probability (0: flips mirror characters)
    _C.INPUT.FASTTCM.TEXT_ROTATE_PROB = 0.5  # text training: probability of a random rotation
    _C.INPUT.FASTTCM.TEXT_ROTATE_ANGLE = 10.0  # text training: rotation angle drawn uniformly from [-A, A] degrees (counter-clockwise)
    _C.INPUT.FASTTCM.TEXT_ROTATE_EXPAND = True  # text training: grow the canvas to hold the rotated image (False: keep size, clip polygons)
    _C.INPUT.FASTTCM.TEXT_CROP_SIZE = 640  # text training: crop avoiding text cuts, then fit into CROP_SIZE x CROP_SIZE (0 disables)
    _C.INPUT.FASTTCM.TEXT_CROP_MIN_RATIO = 0.1  # text training: crop side at least this fraction of the image side
    _C.INPUT.FASTTCM.TEXT_CROP_MAX_TRIES = 50  # text training: attempts at a text-preserving crop before the clipping fallback
    _C.INPUT.FASTTCM.TEXT_MIN_VISIBLE = 0.5  # text training: a polygon cut by the image border keeping less than this area fraction becomes don't care
    _C.INPUT.FASTTCM.TEXT_COLOR_JITTER_PROB = 0.5  # text training: probability of colour jitter
    _C.INPUT.FASTTCM.TEXT_COLOR_JITTER = (0.3, 0.3, 0.3)  # text training: brightness, contrast, saturation strengths (factor in [1 - s, 1 + s])
    _C.INPUT.FASTTCM.ROTATED_HFLIP_PROB = 0.5  # rotated data: probability of a horizontal flip in training
    _C.INPUT.FASTTCM.ROTATED_VFLIP_PROB = 0.5  # rotated data: probability of a vertical flip in training
    _C.INPUT.FASTTCM.ROTATED_ROT90_PROB = 0.5  # rotated data: probability of a 90/180/270-degree rotation in training
    _C.INPUT.FASTTCM.ROTATED_KEEP_DIFFICULT = True  # rotated data: train on objects flagged difficult too
    _C.TEST.FASTTCM = CN()
    # TEST-SECTION
    _C.TEST.FASTTCM.RETURN_MAPS = False  # TextDetector inference also returns "prob_map" (and "score_map" when the backbone gives one)
    _C.TEST.FASTTCM.TILE_SIZE = 0  # FastTCMPredictor/demo: images larger than this (pixels) are cut into tiles (0: never)
    _C.TEST.FASTTCM.TILE_GAP = 200  # overlap of neighbouring tiles (pixels), as DOTA's splitter
    _C.TEST.FASTTCM.TILE_NMS_THRESH = 0.1  # class-wise polygon NMS IoU threshold when merging tile predictions
    _C.TEST.FASTTCM.SCORE_THRESHOLD = 0.5  # detections below this score are not reported to evaluators (fixed, no sweep)
    _C.TEST.FASTTCM.LEXICON_DIR = ""  # text e2e: a lexicon kit folder (docs/LEXICONS.md); "" = none
    _C.TEST.FASTTCM.LEXICON_STRONG = ""  # ICDAR 2015 Strong: folder of voc_img_N.txt (overrides LEXICON_DIR's)
    _C.TEST.FASTTCM.LEXICON_WEAK = ""  # ICDAR 2015 Weak: WORDS[:PAIRS] file(s)
    _C.TEST.FASTTCM.LEXICON_GENERIC = ""  # ICDAR 2015 Generic: WORDS[:PAIRS] file(s)
    _C.TEST.FASTTCM.LEXICON_FULL = ""  # Total-Text / CTW1500 Full: WORDS[:PAIRS] file(s)
    _C.TEST.FASTTCM.LEXICON_RULE = "adelaidet"  # lexicon matching: "adelaidet" | "replace" | "weighted"
    _C.TEST.FASTTCM.LEXICON_MAX_DISTANCE = -1.0  # keep a match below this distance; -1 = the rule's own (1.5 / none)
    _C.TEST.FASTTCM.LEXICON_ON_MISSING = "error"  # image without a Strong lexicon: "error" | "drop" | "keep" its words
    _C.TEST.FASTTCM.ALLOW_INCOMPLETE_WEIGHTS = False  # --eval-only/demo/predictor: True accepts MODEL.WEIGHTS missing model tensors (warning)
    return cfg
