#!/usr/bin/env python
"""Evaluate DOTA Task1 detection files as DOTA_devkit's Task1 scripts do (v1.0, or v1.5 with --v15); see --help.

Same as `python -m fasttcm.evaluation.dota_eval`; needs only numpy and shapely (no torch, no detectron2).

Example:
  python tools/evaluate_dota.py --det 'merged/Task1_{:s}.txt' --gt DOTA/val/labelTxt --imageset val.txt
"""
import sys

from fasttcm.evaluation.dota_eval import main

if __name__ == "__main__":
    sys.exit(main())
