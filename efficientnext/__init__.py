"""EfficientNext: a reproducible pipeline for five-class NSFW image classification.

The package itself is light (the data stages need neither torch nor timm); `import efficientnext.models`
registers the timm models `efficientnext` and `efficientnext_paper`, so that
`timm.create_model('efficientnext_paper', num_classes=5)` works.
"""

__version__ = "0.1.0"
