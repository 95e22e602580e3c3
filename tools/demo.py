#!/usr/bin/env python
"""Run a fasttcm model on images, folders or a video and draw its predictions (see --help)."""
import sys

from fasttcm.utils.demo import main

if __name__ == "__main__":
    sys.exit(main())
