"""``FastTCMTrainer``: Detectron2's ``DefaultTrainer`` with fasttcm's mappers, evaluators and optimizer."""
import os

from detectron2.data import DatasetMapper, MetadataCatalog, build_detection_test_loader, build_detection_train_loader
from detectron2.engine import DefaultTrainer
from detectron2.evaluation import COCOEvaluator, DatasetEvaluators


def build_mapper(cfg, is_train):
    """The dataset mapper that fits the model: polygons for ``TextDetector``, rotated boxes for RRPN models."""
    if cfg.MODEL.META_ARCHITECTURE == "TextDetector":
        from ..data.text_mapper import TextDatasetMapper

        return TextDatasetMapper(cfg, is_train)
    if cfg.MODEL.PROPOSAL_GENERATOR.NAME == "RRPN" or cfg.MODEL.ROI_HEADS.NAME == "RROIHeads":
        from ..data.rotated_mapper import RotatedDatasetMapper

        return RotatedDatasetMapper(cfg, is_train)
    return DatasetMapper(cfg, is_train)


def build_evaluator_for_dataset(cfg, dataset_name, output_folder=None):
    """Pick the evaluator from ``MetadataCatalog.get(dataset_name).evaluator_type``.

    ``icdar15``/``totaltext``/``ctw1500`` -> ``TextDetEvaluator``; ``dota`` -> ``DOTAEvaluator``; ``coco`` ->
    Detectron2's ``COCOEvaluator`` on its pure-pycocotools path (``use_fast_impl=False``: no compiled ops needed).
    Artefacts go to ``OUTPUT_DIR/inference/<dataset>/``.
    """
    if output_folder is None:
        output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
    evaluator_type = getattr(MetadataCatalog.get(dataset_name), "evaluator_type", None)
    if evaluator_type in ("icdar15", "totaltext", "ctw1500"):
        from ..evaluation.text_evaluator import TextDetEvaluator

        return TextDetEvaluator(
            dataset_name, output_dir=output_folder, score_threshold=cfg.TEST.FASTTCM.SCORE_THRESHOLD
        )
    if evaluator_type == "dota":
        from ..evaluation.dota_evaluator import DOTAEvaluator

        return DOTAEvaluator(dataset_name, output_dir=output_folder)
    if evaluator_type == "coco":
        return COCOEvaluator(dataset_name, output_dir=output_folder)
    raise ValueError(
        f"dataset {dataset_name!r} has evaluator_type={evaluator_type!r}; fasttcm knows "
        "'icdar15', 'totaltext', 'ctw1500', 'dota' and 'coco'. Set it in the dataset's MetadataCatalog entry."
    )


class FastTCMTrainer(DefaultTrainer):
    """DefaultTrainer (hooks, checkpoints, ``metrics.json``, TensorBoard) with fasttcm's data and optimizer."""

    @classmethod
    def build_train_loader(cls, cfg):
        return build_detection_train_loader(cfg, mapper=build_mapper(cfg, True))

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_detection_test_loader(cfg, dataset_name, mapper=build_mapper(cfg, False))

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        return DatasetEvaluators([build_evaluator_for_dataset(cfg, dataset_name, output_folder)])

    @classmethod
    def build_optimizer(cls, cfg, model):
        from ..solver import build_optimizer

        return build_optimizer(cfg, model)
