"""Config setup for fasttcm's tools, in Detectron2's order: get_cfg -> add_fasttcm_config -> file -> opts."""
from pathlib import Path

from detectron2.config import get_cfg
from detectron2.engine import default_setup
from detectron2.utils.logger import setup_logger

from ..config import add_fasttcm_config


def load_config(config_file=None, opts=None, freeze=True):
    """Build a config from fasttcm's defaults, a YAML file and ``KEY VALUE`` overrides.

    The YAML (and its ``_BASE_`` chain) is loaded with ``allow_unsafe=False``: a config file cannot run code.
    A wrong key raises ``KeyError`` naming the key and the file it came from.
    """
    cfg = get_cfg()
    add_fasttcm_config(cfg)
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise FileNotFoundError(f"config file {config_file} does not exist")
        try:
            cfg.merge_from_file(str(path), allow_unsafe=False)
        except KeyError as e:
            raise KeyError(f"{config_file}: {e.args[0] if e.args else e}") from None
    if opts:
        try:
            cfg.merge_from_list(list(opts))
        except (KeyError, AssertionError) as e:  # yacs asserts on unknown keys given as opts
            raise KeyError(f"command-line opts: {e.args[0] if e.args else e}") from None
    if freeze:
        cfg.freeze()
    return cfg


def setup(args):
    """``tools/*`` entry: config from ``args.config_file`` and ``args.opts``, frozen, then ``default_setup``."""
    cfg = load_config(args.config_file, args.opts)
    default_setup(cfg, args)
    # fasttcm's own loggers (dataset load summaries, repair warnings, evaluation tables) to the console and log file
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=_rank(), name="fasttcm")
    return cfg


def _rank():
    from detectron2.utils import comm

    return comm.get_rank()
