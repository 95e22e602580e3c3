"""``FastTCMTrainer``: Detectron2's ``DefaultTrainer`` with fasttcm's mappers, evaluators, optimizer and safe
checkpointer."""
import inspect
import logging
import os
import weakref

from detectron2.data import DatasetMapper, MetadataCatalog, build_detection_test_loader, build_detection_train_loader
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer
from detectron2.engine.train_loop import TrainerBase
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from torch.nn.parallel import DistributedDataParallel
from detectron2.evaluation import COCOEvaluator, DatasetEvaluators

from ..checkpoint import FastTCMCheckpointer


def build_mapper(cfg, is_train):
    """The dataset mapper that fits the model: polygons for ``TextDetector``, rotated boxes for RRPN models."""
    if cfg.MODEL.META_ARCHITECTURE == "TextDetector":
        from ..data.text_mapper import TextDatasetMapper

        return TextDatasetMapper(cfg, is_train)
    if cfg.MODEL.PROPOSAL_GENERATOR.NAME == "RRPN" or cfg.MODEL.ROI_HEADS.NAME == "RROIHeads":
        from ..data.rotated_mapper import RotatedDatasetMapper

        return RotatedDatasetMapper(cfg, is_train)
    return DatasetMapper(cfg, is_train)


def load_lexicons_from_config(cfg, protocol: str):
    """The lexicons ``TEST.FASTTCM.LEXICON_DIR`` / ``LEXICON_STRONG`` / ``_WEAK`` / ``_GENERIC`` / ``_FULL`` name for
    ``protocol`` (those the protocol does not report are skipped with a warning), or None when none is set."""
    from ..evaluation import lexicon as lx

    t = cfg.TEST.FASTTCM
    given = {"strong": t.LEXICON_STRONG, "weak": t.LEXICON_WEAK, "generic": t.LEXICON_GENERIC,
             "full": t.LEXICON_FULL}
    protocol = lx.te.canonical_protocol(protocol)
    unused = [k for k, v in given.items() if v and k not in lx.DATASET_LEXICONS[protocol]]
    if unused:
        logging.getLogger(__name__).warning(
            f"TEST.FASTTCM.LEXICON_{'/'.join(u.upper() for u in unused)} set, but protocol {protocol} reports only "
            f"{lx.DATASET_LEXICONS[protocol]} lexicons: ignored")
    explicit = {k: v for k, v in given.items() if v and k in lx.DATASET_LEXICONS[protocol]}
    if not t.LEXICON_DIR and not explicit:
        return None
    return lx.load_lexicons(protocol, t.LEXICON_DIR or None, **explicit)


def build_evaluator_for_dataset(cfg, dataset_name, output_folder=None):
    """Pick the evaluator from ``MetadataCatalog.get(dataset_name).evaluator_type``.

    ``icdar15``/``totaltext``/``ctw1500`` -> ``TextDetEvaluator``; ``dota`` -> ``DOTAEvaluator``; ``coco`` ->
    Detectron2's ``COCOEvaluator`` with its defaults (its fast path runs on fasttcm's numpy ``COCOeval`` ops when
    detectron2 has no compiled extension).
    Artefacts go to ``OUTPUT_DIR/inference/<dataset>/``.
    """
    if output_folder is None:
        output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
    evaluator_type = getattr(MetadataCatalog.get(dataset_name), "evaluator_type", None)
    if evaluator_type in ("icdar15", "totaltext", "ctw1500"):
        from ..evaluation.text_evaluator import TextDetEvaluator

        t = cfg.TEST.FASTTCM
        lexicons = load_lexicons_from_config(cfg, evaluator_type)
        return TextDetEvaluator(
            dataset_name, output_dir=output_folder, score_threshold=t.SCORE_THRESHOLD, lexicons=lexicons,
            lexicon_rule=t.LEXICON_RULE, lexicon_on_missing=t.LEXICON_ON_MISSING,
            lexicon_max_distance="default" if t.LEXICON_MAX_DISTANCE < 0 else t.LEXICON_MAX_DISTANCE,
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
    """DefaultTrainer (hooks, checkpoints, ``metrics.json``, TensorBoard) with fasttcm's data and optimizer.

    It builds the same pieces as ``DefaultTrainer`` in the same order, with these differences:

    * checkpoints are read and written by :class:`fasttcm.checkpoint.FastTCMCheckpointer` (no unpickling of
      arbitrary objects, one key-mismatch summary, atomic saves);
    * with several processes the model is wrapped in ``DistributedDataParallel`` for its device: ``device_ids``
      is the local rank on CUDA and ``None`` on the CPU (``tools/train_net.py --num-gpus N`` on a machine without
      GPUs runs N CPU processes on gloo, see :mod:`fasttcm.engine.launch`);
    * checkpoints carry the optimizer's state, so ``--resume`` continues the same optimisation.
    """

    def __init__(self, cfg):
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        model = self.wrap_distributed(model)
        loop = AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer
        self._trainer = loop(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = FastTCMCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    def state_dict(self):
        """Detectron2 0.6's ``DefaultTrainer`` saves the iteration and hook states only, so ``--resume`` would
        restart AdamW/SGD momentum from zero; the inner loop's state (optimizer, AMP grad scaler) is saved too."""
        ret = super().state_dict()
        ret["_trainer"] = self._trainer.state_dict()
        return ret

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if "_trainer" in state_dict:  # checkpoints written before this was saved resume without it
            self._trainer.load_state_dict(state_dict["_trainer"])

    @staticmethod
    def wrap_distributed(model):
        """``model`` itself in a single process, else ``DistributedDataParallel`` on the model's device."""
        if comm.get_world_size() == 1:
            return model
        device = next(model.parameters()).device
        ids = [comm.get_local_rank()] if device.type == "cuda" else None
        # buffers stay rank-local during training, as DefaultTrainer's broadcast_buffers=False
        if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
            return DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=False)
        return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)

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
