"""fasttcm: FastTCM (CLIP turned into a scene-text spotter / oriented detector) for Detectron2.

Detectron2 itself is not listed here: it has no wheels on PyPI. `make setup` (or
`python tools/install_detectron2.py`) keeps a compiled detectron2 when one is installed, otherwise installs
the verified `pb1-detectron2==0.6` sdist without compiled extensions; fasttcm then supplies `detectron2._C`.
"""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "fasttcm" / "__init__.py").read_text()).group(1)

install_requires = [
    "torch>=2.0",
    "torchvision>=0.15",
    "open_clip_torch>=2.20",
    "numpy>=1.23",
    "shapely>=2.0",  # vectorized geometry (polygon IoU, clipping, unclip)
    "scipy>=1.9",  # Total-Text legacy .mat ground truth
    "opencv-python-headless>=4.5",
    "pycocotools>=2.0.2",
    "tqdm>=4.29",
    "matplotlib>=3.5",  # detectron2's Visualizer; also ships the DejaVu fonts of the synthetic text set
    # --- detectron2 0.6 runtime dependencies (its sdist is installed without resolving them) ---
    "Pillow>=7.1,<10",  # ceiling: detectron2 0.6 uses Image.LINEAR, removed in Pillow 10
    "setuptools<81",  # ceiling: detectron2 0.6 imports pkg_resources, removed from setuptools 81
    "fvcore>=0.1.5,<0.1.6",  # ceiling: detectron2 0.6 pins fvcore<0.1.6
    "iopath>=0.1.7,<0.1.10",  # ceiling: detectron2 0.6 pins iopath<0.1.10
    "termcolor>=1.1",
    "yacs>=0.1.8",
    "tabulate>=0.8",
    "cloudpickle>=1.6",
    "tensorboard>=2.8",
    "omegaconf>=2.1",
    "hydra-core>=1.1",
]

setup(
    name="fasttcm",
    version=VERSION,
    description="FastTCM: a CLIP model turned into a scene-text detector/spotter and oriented detector, on Detectron2",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["fasttcm", "fasttcm.*"]),
    include_package_data=True,
    install_requires=install_requires,
    extras_require={"dev": ["pytest>=7"]},
)
