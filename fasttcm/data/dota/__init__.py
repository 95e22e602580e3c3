"""DOTA file tools: splitting large images and their labels into patches (:mod:`.split`) and merging patch-level
``Task1_<class>.txt`` files back (:mod:`.merge`). The file formats are :mod:`fasttcm.formats.dota`, the patch
layout and merging geometry :mod:`fasttcm.structures.patches`, the dataset registration
:mod:`fasttcm.data.datasets.dota`. Nothing here imports torch or detectron2.
"""
