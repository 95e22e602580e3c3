"""Drawing fasttcm predictions with Detectron2's ``Visualizer``.

``FastTCMVisualizer.draw_predictions(instances)`` draws what a model returned: text polygons with their score and
recognised text (``pred_polygons``, ``scores``, ``texts``), or oriented boxes with class names
(``pred_boxes`` as ``RotatedBoxes``, ``pred_classes``). ``heatmap_overlay`` blends a score map over the image.
``instances_to_json`` gives the same predictions as plain JSON-able data.
"""
from typing import Dict, List, Optional

import cv2
import numpy as np
from fasttcm import _detectron2  # noqa: F401,I001  (first: supplies detectron2._C before detectron2 loads)
from detectron2.structures import RotatedBoxes
from detectron2.utils.visualizer import Visualizer

from ..structures.polygons import to_numpy

_TEXT_COLOR = (0.1, 0.9, 0.2)


class FastTCMVisualizer(Visualizer):
    """Detectron2 ``Visualizer`` that also knows text polygons and oriented boxes.

    Args:
        img_rgb: (H, W, 3) uint8 RGB image (Detectron2's convention for visualizers).
        metadata: ``MetadataCatalog`` entry, for ``thing_classes``.
    """

    def draw_predictions(self, instances, score_format="{:.2f}"):
        """Draw ``Instances`` on the image and return the ``VisImage``."""
        instances = instances.to("cpu") if hasattr(instances, "to") else instances
        fields = instances.get_fields()
        scores = to_numpy(fields["scores"]) if "scores" in fields else None
        texts = fields.get("texts")
        if "pred_polygons" in fields:
            for i, poly in enumerate(fields["pred_polygons"]):
                poly = to_numpy(poly).reshape(-1, 2)
                if len(poly) < 3:
                    continue
                self.draw_polygon(poly, color=_TEXT_COLOR, edge_color=_TEXT_COLOR, alpha=0.15)
                label = []
                if texts is not None and texts[i]:
                    label.append(str(texts[i]))
                if scores is not None:
                    label.append(score_format.format(float(scores[i])))
                if label:
                    x, y = poly[:, 0].min(), poly[:, 1].min()
                    self.draw_text(" ".join(label), (x, y), color="w", horizontal_alignment="left",
                                   font_size=max(self._default_font_size * 0.8, 6))
        elif "pred_boxes" in fields and isinstance(fields["pred_boxes"], RotatedBoxes):
            boxes = to_numpy(fields["pred_boxes"].tensor)
            classes = to_numpy(fields["pred_classes"]) if "pred_classes" in fields else None
            names = self.metadata.get("thing_classes", None)
            for i, box in enumerate(boxes):
                label = []
                if classes is not None:
                    c = int(classes[i])
                    label.append(names[c] if names and c < len(names) else str(c))
                if scores is not None:
                    label.append(score_format.format(float(scores[i])))
                color = self._jitter([0.2, 0.6, 1.0]) if classes is None else _class_color(int(classes[i]))
                self.draw_rotated_box_with_label(tuple(box.tolist()), edge_color=color, label=" ".join(label))
        else:
            return self.draw_instance_predictions(instances)
        return self.output


def _class_color(c: int):
    rng = np.random.RandomState(c * 7919 + 13)
    return tuple(rng.uniform(0.3, 1.0, size=3).tolist())


def heatmap_overlay(img_rgb: np.ndarray, score_map: np.ndarray, alpha: float = 0.5,
                    vmin: Optional[float] = None, vmax: Optional[float] = None) -> np.ndarray:
    """Blend a score map (h, w) over an (H, W, 3) uint8 RGB image as a JET heat map; returns uint8 RGB.

    The map is resized to the image with bilinear interpolation and scaled to [vmin, vmax] (default: its own
    min and max), so low-resolution score maps (1/32 of the input) become visible.
    """
    m = np.asarray(score_map, dtype=np.float32)
    if m.ndim != 2:
        raise ValueError(f"score map must be 2-D (h, w), got shape {m.shape}")
    lo = float(m.min()) if vmin is None else vmin
    hi = float(m.max()) if vmax is None else vmax
    m = np.clip((m - lo) / max(hi - lo, 1e-6), 0, 1)
    m = cv2.resize(m, (img_rgb.shape[1], img_rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap((m * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
    return (img_rgb.astype(np.float32) * (1 - alpha) + heat.astype(np.float32) * alpha).astype(np.uint8)


def instances_to_json(instances, class_names: Optional[List[str]] = None) -> List[Dict]:
    """Predictions as JSON-able dicts: ``polygon`` ([[x, y], ...]) or ``rotated_box`` ([cx, cy, w, h, angle]),
    ``score``, and ``text`` / ``category`` when present."""
    instances = instances.to("cpu") if hasattr(instances, "to") else instances
    fields = instances.get_fields()
    n = len(instances)
    scores = to_numpy(fields["scores"]).tolist() if "scores" in fields else [None] * n
    out = []
    for i in range(n):
        rec = {"score": None if scores[i] is None else round(float(scores[i]), 5)}
        if "pred_polygons" in fields:
            rec["polygon"] = np.round(to_numpy(fields["pred_polygons"][i]).reshape(-1, 2).astype(float), 2).tolist()
        elif "pred_boxes" in fields and isinstance(fields["pred_boxes"], RotatedBoxes):
            rec["rotated_box"] = np.round(to_numpy(fields["pred_boxes"].tensor[i]).astype(float), 3).tolist()
        elif "pred_boxes" in fields:
            rec["box_xyxy"] = np.round(to_numpy(fields["pred_boxes"].tensor[i]).astype(float), 2).tolist()
        if "pred_classes" in fields:
            c = int(fields["pred_classes"][i])
            rec["category_id"] = c
            if class_names and c < len(class_names):
                rec["category"] = class_names[c]
        if "texts" in fields:
            rec["text"] = fields["texts"][i]
        out.append(rec)
    return out
