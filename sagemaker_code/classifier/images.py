"""One picture in, one ``uint8`` tensor out: the preprocessing training and serving share.

Training decodes each file once into its cache and the endpoint decodes each request with
the very same function, so a model never sees pictures prepared differently from the ones it
was trained on. Normalisation happens later, on float batches (``normalize``).
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from PIL import Image, ImageOps

# ImageNet statistics: what torchvision's ResNet weights expect; harmless for simplecnn.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Pictures are shrunk to a few hundred pixels a side, so nothing needs more than a large phone
# photo (48 Mpx). Checked from the header, before a pixel is decoded: a 13000x13000 PNG would
# otherwise cost seconds and most of a gigabyte to throw away.
MAX_PICTURE_PIXELS = 50_000_000


class PictureTooLarge(OSError):
    """The picture has more pixels than MAX_PICTURE_PIXELS."""


def load_image(source: Path | bytes, size: int) -> torch.Tensor:
    """Decode a picture file or encoded bytes to a ``(3, size, size)`` uint8 RGB tensor.

    The shorter side is scaled to ``size`` and the centre is cropped square. Any mode
    Pillow reads (grayscale, palette, RGBA, CMYK) becomes RGB. Raises ``OSError`` (Pillow's
    ``UnidentifiedImageError`` included) when the data is not a readable picture, and
    ``PictureTooLarge`` (an ``OSError``) above ``MAX_PICTURE_PIXELS``.
    """
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
        width, height = image.size
        if width * height > MAX_PICTURE_PIXELS:
            raise PictureTooLarge(
                f"{width}x{height} pixels is more than the {MAX_PICTURE_PIXELS:,} pixels "
                "a picture may have"
            )
        # JPEG draft mode decodes at a reduced scale directly: far cheaper for big photos.
        image.draft("RGB", (size, size))
        rgb = image.convert("RGB")
    square = ImageOps.fit(rgb, (size, size), method=Image.Resampling.BILINEAR)
    pixels = torch.frombuffer(bytearray(square.tobytes()), dtype=torch.uint8)
    return pixels.view(size, size, 3).permute(2, 0, 1).contiguous()


def normalize(
    batch: torch.Tensor,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> torch.Tensor:
    """``(N, 3, H, W)`` uint8 -> float32 on the same device, scaled to [0, 1] and standardised."""
    scale = torch.tensor([1.0 / (255.0 * s) for s in std], device=batch.device).view(1, 3, 1, 1)
    shift = torch.tensor([m / s for m, s in zip(mean, std, strict=True)], device=batch.device)
    return batch.float().mul_(scale).sub_(shift.view(1, 3, 1, 1))
