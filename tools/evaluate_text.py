#!/usr/bin/env python
"""Evaluate a scene-text submission with the official RRC rules (ICDAR 2015, Total-Text, CTW1500); see --help.

Same as `python -m fasttcm.evaluation.text_eval`; needs only numpy and shapely (no torch, no detectron2).

Example:
  python tools/evaluate_text.py --protocol icdar15 --gt gt.zip --det submit.zip --json result.json
"""
import sys

from fasttcm.evaluation.text_eval import main

if __name__ == "__main__":
    sys.exit(main())
