"""Geometry as plain functions over numpy arrays (torch only inside functions that are handed tensors).

This layer imports nothing above it (no ``fasttcm.data``, ``.modeling``, ``.evaluation``), like
``detectron2.structures``: data loading, the models and the evaluators all build on it.

* :mod:`.polygons`: ``(N, 2)`` polygons: conversions, signed area and orientation, clockwise ordering,
  validation/repair, polygon parts of shapely results, offsetting (DB's shrink and unclip), boxes around
  polygons, :class:`~.polygons.PolygonList` (the ``Instances.pred_polygons`` field). numpy + shapely.
* :mod:`.quads`: quadrilaterals and rotated boxes: rbox <-> quad conversion, exact quad IoU, overlap search,
  polygon NMS. numpy (+ shapely's STRtree).
* :mod:`.raster`: polygons on the pixel grid: exact rasterisation, distances to borders, the minimum-area
  rectangle's short side (OpenCV).
* :mod:`.boundaries`: reading-order boundaries of text polygons and arc-length resampling (the spotter's sampler).

The submodules are imported on their own (``from fasttcm.structures.quads import poly_nms``) so that a light
consumer such as the evaluators loads only numpy and shapely.
"""
