"""Per-example image transforms of the input pipelines: normalisation and
augmentation, per dataset.

Each dataset has an evaluation transform ``<dataset>_eval(example, ...,
normalize)`` and a training transform ``<dataset>_train(example, rng, ...,
normalize)`` (augmentation with a per-example ``np.random.Generator``) that
map one ``{'image', 'label'}`` example to a normalised float32 [S, S, 3]
image and an int32 label; :mod:`fbnet_jax.data` binds them to its sources
and splits.

- digits: random translation by up to S/8 pixels (zero fill); no flips.
- CIFAR: random crop of the 4-pixel zero-padded image, random flip.
- ImageNet: Inception-style random-resized crop, random flip; evaluation
  resizes the shorter side to S / 0.875 and takes the central crop.
"""

from __future__ import annotations

from collections.abc import Callable
import math
from typing import Any

import numpy as np

# ImageNet evaluation resizes the shorter side to image_size / this, then
# takes the central image_size x image_size crop (224 -> 256 -> 224).
_IMAGENET_CENTER_CROP_FRACTION = 0.875
_CIFAR_PADDING = 4

# One example or one batch: {'image': ..., 'label': ...[, 'mask': ...]}.
Example = dict[str, np.ndarray]
Normalize = Callable[[np.ndarray], np.ndarray]


def normalize_image(image: np.ndarray, mean: np.ndarray,
                    std: np.ndarray) -> np.ndarray:
  return ((image.astype(np.float32) - mean) / std).astype(np.float32)


def _example(image: np.ndarray, label: Any) -> Example:
  return {'image': image, 'label': np.int32(label)}


def _random_translate(image: np.ndarray, max_shift: int,
                      rng: np.random.Generator) -> np.ndarray:
  """A random crop of `image` zero-padded by `max_shift` on each side.

  Same result as ``np.pad`` followed by a random same-size crop, without
  building the padded copy.
  """
  dy, dx = rng.integers(-max_shift, max_shift + 1, size=2)
  height, width = image.shape[:2]
  out = np.zeros_like(image)
  out[max(0, -dy):height - max(0, dy), max(0, -dx):width - max(0, dx)] = (
      image[max(0, dy):height + min(0, dy), max(0, dx):width + min(0, dx)])
  return out


# --- digits -----------------------------------------------------------------


def _digits_max_shift(image_size: int) -> int:
  # One original pixel at the default 32 (4x upsampling): 4 pixels.
  return max(1, image_size // 8)


def digits_eval(example: Example, normalize: Normalize) -> Example:
  image = normalize(example['image'])
  return _example(np.repeat(image[:, :, None], 3, axis=-1), example['label'])


def digits_train(example: Example, rng: np.random.Generator,
                 normalize: Normalize) -> Example:
  """Random translation by up to S/8 pixels (zero fill); no flips."""
  image = example['image']
  image = _random_translate(image, _digits_max_shift(image.shape[0]), rng)
  return _example(np.repeat(normalize(image)[:, :, None], 3, axis=-1),
                  example['label'])


# --- CIFAR ------------------------------------------------------------------


def _resize(image: np.ndarray, size: int) -> np.ndarray:
  """Bilinear resize of a uint8 [H, W, 3] image to [size, size, 3]."""
  if image.shape[:2] == (size, size):
    return image
  from PIL import Image  # pylint: disable=g-import-not-at-top
  return np.asarray(
      Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def cifar_eval(example: Example, image_size: int,
               normalize: Normalize) -> Example:
  image = _resize(np.asarray(example['image']), image_size)
  return _example(normalize(image), example['label'])


def cifar_train(example: Example, rng: np.random.Generator, image_size: int,
                normalize: Normalize) -> Example:
  """Random 32x32 crop of the 4-pixel zero-padded image, random flip."""
  image = _random_translate(np.asarray(example['image']), _CIFAR_PADDING, rng)
  if rng.random() < 0.5:
    image = image[:, ::-1]
  image = _resize(np.ascontiguousarray(image), image_size)
  return _example(normalize(image), example['label'])


# --- ImageNet ---------------------------------------------------------------


def _to_rgb(image: np.ndarray) -> np.ndarray:
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[:, :, None]
  if image.shape[-1] == 1:
    return np.repeat(image, 3, axis=-1)
  return image[:, :, :3]


def random_resized_crop_box(
    height: int, width: int, rng: np.random.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    attempts: int = 10,
) -> tuple[int, int, int, int]:
  """Inception-style crop box (top, left, height, width).

  Samples an area fraction uniformly in `scale` and an aspect ratio
  log-uniformly in `ratio` until the box fits (at most `attempts` times),
  else falls back to the largest central box with a ratio inside `ratio`
  (as torchvision's RandomResizedCrop).
  """
  area = height * width
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(attempts):
    target_area = area * rng.uniform(*scale)
    aspect = math.exp(rng.uniform(*log_ratio))
    crop_w = int(round(math.sqrt(target_area * aspect)))
    crop_h = int(round(math.sqrt(target_area / aspect)))
    if 0 < crop_w <= width and 0 < crop_h <= height:
      top = int(rng.integers(0, height - crop_h + 1))
      left = int(rng.integers(0, width - crop_w + 1))
      return top, left, crop_h, crop_w
  in_ratio = width / height
  if in_ratio < ratio[0]:
    crop_w, crop_h = width, int(round(width / ratio[0]))
  elif in_ratio > ratio[1]:
    crop_h, crop_w = height, int(round(height * ratio[1]))
  else:
    crop_w, crop_h = width, height
  return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def imagenet_train(example: Example, rng: np.random.Generator,
                   image_size: int, normalize: Normalize) -> Example:
  """Random-resized crop to image_size, random horizontal flip."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  image = _to_rgb(example['image'])
  top, left, crop_h, crop_w = random_resized_crop_box(
      image.shape[0], image.shape[1], rng)
  image = np.asarray(Image.fromarray(image).resize(
      (image_size, image_size), Image.Resampling.BILINEAR,
      box=(left, top, left + crop_w, top + crop_h)))
  if rng.random() < 0.5:
    image = image[:, ::-1]
  return _example(normalize(image), example['label'])


def imagenet_eval(example: Example, image_size: int,
                  normalize: Normalize) -> Example:
  """Shorter side to image_size / 0.875, then the central crop."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  image = _to_rgb(example['image'])
  height, width = image.shape[:2]
  short = int(round(image_size / _IMAGENET_CENTER_CROP_FRACTION))
  if height <= width:
    new_h, new_w = short, max(short, int(round(width * short / height)))
  else:
    new_h, new_w = max(short, int(round(height * short / width))), short
  image = np.asarray(Image.fromarray(image).resize(
      (new_w, new_h), Image.Resampling.BILINEAR))
  top = (new_h - image_size) // 2
  left = (new_w - image_size) // 2
  image = image[top:top + image_size, left:left + image_size]
  return _example(normalize(image), example['label'])
