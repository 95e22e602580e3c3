"""``FastTCMPredictor``: one image in, the model's outputs out (Detectron2's ``DefaultPredictor``, generalised).

Differences from ``DefaultPredictor``: it keeps every key the model returns (e.g. ``score_map`` for heat maps),
and large aerial images can be tiled into patches whose predictions are merged back (see ``TEST.FASTTCM.TILE_*``).
"""
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import transforms as T
from detectron2.modeling import build_model


class FastTCMPredictor:
    """Build the model from ``cfg``, load ``cfg.MODEL.WEIGHTS`` (when set) and run it on single BGR images.

    ``predictor(img)`` takes an (H, W, 3) uint8 BGR image and returns the model's output dict for it, with
    ``instances`` in original image coordinates.
    """

    def __init__(self, cfg):
        self.cfg = cfg.clone()
        self.model = build_model(self.cfg)
        self.model.eval()
        if cfg.MODEL.WEIGHTS:
            DetectionCheckpointer(self.model).load(cfg.MODEL.WEIGHTS)
        self.aug = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST)
        self.input_format = cfg.INPUT.FORMAT
        if self.input_format not in ("RGB", "BGR"):
            raise ValueError(f"INPUT.FORMAT must be RGB or BGR, got {self.input_format!r}")

    @torch.no_grad()
    def __call__(self, original_image):
        if self.input_format == "RGB":
            original_image = original_image[:, :, ::-1]
        height, width = original_image.shape[:2]
        image = self.aug.get_transform(original_image).apply_image(original_image)
        image = torch.as_tensor(image.astype("float32").transpose(2, 0, 1))
        return self.model([{"image": image, "height": height, "width": width}])[0]
