"""What using a trained classifier needs besides its weights: classes, input preprocessing and the moderation
operating point. `export` writes it into models/model.onnx's metadata (one JSON value per key, readable with
onnxruntime alone: `InferenceSession(path).get_modelmeta().custom_metadata_map`); `predict` builds it from
a checkpoint, params.yaml and metrics/test.json (torch backend) or reads it back from the ONNX file.

Torch-free: the ONNX path of `predict` imports it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from efficientnext.config import UserError

KEY_PREFIX = "efficientnext."


@dataclass(frozen=True)
class ModelCard:
    classes: list[str]  # the output columns, in order
    image_size: int  # the model's input side
    short_side: int  # the prepared cache's short side (prepare.short_side), the first resize
    mean: list[float]  # input normalisation, per RGB channel
    std: list[float]
    unsafe_classes: list[str]  # summed into the unsafe score
    threshold: float | None  # the default decision threshold on the unsafe score (evaluate's operating point)

    def preprocessing(self) -> str:
        """The input recipe, in words, for users of the ONNX file without this package."""
        return (f"decode to RGB (EXIF orientation applied, transparency composited on white); resize the short side "
                f"to {self.short_side} (Pillow bicubic) and round to uint8; resize the short side to {self.image_size} "
                f"(torchvision antialiased bilinear, uint8), centre-crop {self.image_size}x{self.image_size}; scale to "
                f"[0, 1], subtract mean {self.mean}, divide by std {self.std}; NCHW float32")

    def metadata(self) -> dict[str, str]:
        values = {**asdict(self), "preprocessing": self.preprocessing()}
        return {f"{KEY_PREFIX}{name}": json.dumps(value) for name, value in values.items()}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], source: str) -> ModelCard:
        try:
            return cls(**{f.name: json.loads(metadata[f"{KEY_PREFIX}{f.name}"]) for f in fields(cls)})
        except KeyError as exc:
            raise UserError(f"{source} has no {exc.args[0]} metadata: export it with `efficientnext export`") from None

    def with_threshold(self, threshold: float | None) -> ModelCard:
        return ModelCard(**{**asdict(self), "threshold": threshold})
