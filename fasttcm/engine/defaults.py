"""Config setup for fasttcm's tools, in Detectron2's order: get_cfg -> add_fasttcm_config -> file -> opts.

YAML files are read by :func:`read_config_file` (safe loader, ``_BASE_`` chains resolved here) so that every
failure names the file, and the key where there is one: a syntax error (with line and column), an empty file, a
file that is not a mapping, a ``_BASE_`` that is missing or that forms a cycle, an unknown key, a value of the
wrong type, and unsafe tags (``!!python/...``), which the safe loader refuses. A file without ``VERSION`` is read
as the current version (Detectron2's own rule) without Detectron2's warning, which reads like a problem with a
valid file; old-style (v1) files still go through Detectron2's upgrade.
"""
import logging
import os
import re
from pathlib import Path
from typing import Dict, Tuple

import yaml
from detectron2.config import CfgNode, get_cfg
from detectron2.config.compat import guess_version
from detectron2.engine import default_setup
from detectron2.utils.logger import setup_logger

from ..config import add_fasttcm_config


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the file (and key)."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class ConfigKeyError(ConfigError, KeyError):
    """An unknown config key (a ``KeyError`` too, as yacs raises)."""


_MISMATCH = re.compile(r"Type mismatch \((.+?) vs\. (.+?)\) with values \((.*) vs\. (.*)\) for config key: (\S+)$", re.S)


def _readable(msg: str) -> str:
    """yacs' ``Type mismatch (<class 'float'> vs. <class 'str'>) with values (0.001 vs. abc) for config key: K``
    as ``key K: expected float (default 0.001), got str 'abc'``."""
    m = _MISMATCH.match(msg)
    if not m:
        return msg
    want, got, default, value, key = m.groups()
    name = lambda t: t.replace("<class '", "").replace("'>", "")  # noqa: E731
    shown = repr(value) if name(got) == "str" else value
    return f"key {key}: expected {name(want)} (default {default}), got {name(got)} {shown}"


def _read_yaml(path: str, chain: Tuple[str, ...]) -> Tuple[dict, Dict[str, str]]:
    """``(mapping, origin)`` of one file with its ``_BASE_`` chain merged in; ``origin`` maps each dotted key to
    the file that set it last."""
    if path in chain:
        cycle = " -> ".join(list(chain[chain.index(path):]) + [path])
        raise ConfigError(f"{chain[-1]}: _BASE_ chain forms a cycle: {cycle}")
    where = chain[-1] if chain else None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{where}: _BASE_ {path} not found" if where else f"config file {path} does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 ({e})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        if "python/" in str(e):
            problem = f"{problem} (unsafe YAML tags are refused: a config file cannot run code)"
        raise ConfigError(f"{path}: YAML error{at}: {problem}") from None
    if data is None:
        raise ConfigError(f"{path}: the config file is empty")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of keys (KEY: value), got a "
                          f"{type(data).__name__}")
    base = data.pop("_BASE_", None)
    origin: Dict[str, str] = {}
    merged: dict = {}
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: _BASE_ must be one file name, got {base!r}")
        base_path = os.path.expanduser(base)
        if not os.path.isabs(base_path):
            base_path = os.path.join(os.path.dirname(path), base_path)
        merged, origin = _read_yaml(os.path.normpath(base_path), chain + (path,))
    _merge_into(merged, data, origin, path, "")
    return merged, origin


def _merge_into(dst: dict, src: dict, origin: Dict[str, str], path: str, prefix: str) -> None:
    for k, v in src.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge_into(dst[k], v, origin, path, key + ".")
        else:
            dst[k] = v
            origin[key] = path
            if isinstance(v, dict):
                for sub in _dotted(v, key + "."):
                    origin[sub] = path


def _dotted(d: dict, prefix: str):
    for k, v in d.items():
        yield prefix + str(k)
        if isinstance(v, dict):
            yield from _dotted(v, f"{prefix}{k}.")


def read_config_file(config_file: str) -> Tuple[dict, Dict[str, str]]:
    """Read a YAML config and its ``_BASE_`` chain safely: ``(mapping, {dotted key: file that set it})``."""
    return _read_yaml(os.path.normpath(os.path.abspath(config_file)), ())


def _yacs_key(message: str) -> str:
    """The dotted key a yacs/Detectron2 merge error names (``... for config key: A.B`` or ``... key: A.B``)."""
    for marker in ("config key: ", "key: "):
        if marker in message:
            return message.rsplit(marker, 1)[1].strip().strip("'\"")
    return ""


def merge_config_file(cfg: CfgNode, config_file: str) -> None:
    """Merge ``config_file`` (see :func:`read_config_file`) into ``cfg``; errors name the file and the key."""
    data, origin = read_config_file(config_file)
    if data.get("VERSION", None) is None:
        quiet = logging.getLogger("detectron2.config.compat")
        level, quiet.level = quiet.level, logging.ERROR
        try:
            version = guess_version(CfgNode(data), config_file)
        finally:
            quiet.setLevel(level)
        if version != cfg.VERSION:  # an old-style file: Detectron2 upgrades it (and says so)
            cfg.merge_from_file(config_file, allow_unsafe=False)
            return
        data["VERSION"] = cfg.VERSION
    try:
        cfg.merge_from_other_cfg(CfgNode(data))
    except (KeyError, ValueError, TypeError, AssertionError) as e:
        msg = str(e.args[0]) if e.args else str(e)
        key = _yacs_key(msg)
        source = origin.get(key, config_file)
        kind = ConfigKeyError if isinstance(e, KeyError) else ConfigError
        raise kind(f"{source}: {_readable(msg)}") from None


def load_config(config_file=None, opts=None, freeze=True):
    """Build a config from fasttcm's defaults, a YAML file and ``KEY VALUE`` overrides.

    The YAML (and its ``_BASE_`` chain) is loaded with a safe loader (a config file cannot run code). Every
    failure raises :class:`ConfigError` (a ``ValueError``) or ``FileNotFoundError`` naming the file and, where
    there is one, the key: for overrides the message starts with ``command-line opts``.
    """
    cfg = get_cfg()
    add_fasttcm_config(cfg)
    if config_file:
        if not Path(config_file).is_file():
            raise FileNotFoundError(f"config file {config_file} does not exist")
        merge_config_file(cfg, str(config_file))
    if opts:
        opts = list(opts)
        if len(opts) % 2:
            raise ConfigError(f"command-line opts: KEY VALUE pairs expected, got an odd number of words: {opts}")
        try:
            cfg.merge_from_list(opts)
        except (KeyError, ValueError, TypeError, AssertionError) as e:
            kind = ConfigKeyError if isinstance(e, (KeyError, AssertionError)) else ConfigError
            msg = str(e.args[0]) if e.args else str(e)
            raise kind(f"command-line opts: {_readable(msg)}") from None
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
