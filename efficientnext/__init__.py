"""EfficientNext: a reproducible pipeline for five-class NSFW image classification.

Importing the package registers the timm models `efficientnext`, `efficientnext_paper`
and the baselines, so `timm.create_model('efficientnext_paper', num_classes=5)` works.
"""

from efficientnext import models  # noqa: F401  (registers the timm entry points)

__version__ = "0.1.0"
