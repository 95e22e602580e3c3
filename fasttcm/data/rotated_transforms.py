"""Geometric augmentations that also move rotated boxes ``(cx, cy, w, h, angle°)`` (``BoxMode.XYWHA_ABS``).

Detectron2 0.6 moves rotated boxes only through ``HFlipTransform`` and ``ResizeTransform``. These transforms
carry their own ``apply_rotated_box`` (no global registration): a vertical flip, and rotations by quarter turns.
Angles follow ``detectron2.structures.RotatedBoxes``: degrees, counter-clockwise as seen on the image, and the
results are normalised to (-180, 180].
"""
import numpy as np
from fasttcm import _detectron2  # noqa: F401,I001  (first: supplies detectron2._C before detectron2 loads)
from detectron2.data import transforms as T
from fvcore.transforms.transform import Transform, VFlipTransform


def _wrap_angle(a):
    """Map angles in degrees to (-180, 180]."""
    a = np.mod(a + 180.0, 360.0) - 180.0
    return np.where(a == -180.0, 180.0, a)


class RotatedVFlipTransform(VFlipTransform):
    """Vertical flip of an image of ``height`` rows; rotated boxes get ``cy -> H - cy`` and ``angle -> -angle``."""

    def apply_rotated_box(self, rotated_boxes):
        boxes = np.array(rotated_boxes, dtype=np.float64, copy=True).reshape(-1, 5)
        boxes[:, 1] = self.height - boxes[:, 1]
        boxes[:, 4] = _wrap_angle(-boxes[:, 4])
        return boxes

    def inverse(self):
        return self


class Rot90Transform(Transform):
    """Rotate an (H, W) image by ``k`` quarter turns counter-clockwise (as seen), like ``np.rot90(img, k)``.

    Continuous coordinates: one CCW turn maps ``(x, y)`` to ``(y, W - x)`` in the new (W, H) image. Rotated boxes
    keep their size and gain ``90 * k`` degrees.
    """

    def __init__(self, h: int, w: int, k: int):
        super().__init__()
        k = int(k) % 4
        self._set_attributes(locals())

    def apply_image(self, img):
        return np.ascontiguousarray(np.rot90(img, self.k, axes=(0, 1)))

    def apply_segmentation(self, segmentation):
        return self.apply_image(segmentation)

    def apply_coords(self, coords):
        coords = np.asarray(coords, dtype=np.float64).copy()
        h, w = self.h, self.w
        for _ in range(self.k):
            x, y = coords[:, 0].copy(), coords[:, 1].copy()
            coords[:, 0], coords[:, 1] = y, w - x
            h, w = w, h
        return coords

    def apply_rotated_box(self, rotated_boxes):
        boxes = np.array(rotated_boxes, dtype=np.float64, copy=True).reshape(-1, 5)
        boxes[:, :2] = self.apply_coords(boxes[:, :2])
        boxes[:, 4] = _wrap_angle(boxes[:, 4] + 90.0 * self.k)
        return boxes

    def inverse(self):
        h, w = (self.h, self.w) if self.k % 2 == 0 else (self.w, self.h)
        return Rot90Transform(h, w, (4 - self.k) % 4)


class RandomVFlip(T.Augmentation):
    """Vertical flip with probability ``prob`` (rotated-box aware)."""

    def __init__(self, prob=0.5):
        super().__init__()
        self.prob = prob

    def get_transform(self, image):
        if self._rand_range() < self.prob:
            return RotatedVFlipTransform(image.shape[0])
        return T.NoOpTransform()


class RandomRot90(T.Augmentation):
    """With probability ``prob``, rotate by 1, 2 or 3 quarter turns (uniformly); else leave the image as it is."""

    def __init__(self, prob=0.5):
        super().__init__()
        self.prob = prob

    def get_transform(self, image):
        if self._rand_range() < self.prob:
            return Rot90Transform(image.shape[0], image.shape[1], int(np.random.randint(1, 4)))
        return T.NoOpTransform()
