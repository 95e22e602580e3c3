"""Evaluation with the field's protocols (rules: ``docs/PROTOCOLS.md``).

* :mod:`.text_eval`: the ICDAR 2015 / Total-Text / CTW1500 metric (detection and end to end); the files it reads
  and writes are :mod:`fasttcm.formats.text`. :mod:`.lexicon`: lexicon matching for end to end.
* :mod:`.dota_eval`: DOTA-v1.0 / v1.5 Task1; files: :mod:`fasttcm.formats.dota`.
* :mod:`.text_evaluator` / :mod:`.dota_evaluator`: the Detectron2 ``DatasetEvaluator`` s (``TextDetEvaluator``,
  ``DOTAEvaluator``) that run them on a model's predictions.

The metric modules import only numpy and shapely; the ``DatasetEvaluator`` modules import detectron2. The command
lines are ``tools/evaluate_text.py`` and ``tools/evaluate_dota.py``.
"""
