"""Image input pipelines for DNAS: weight training, arch training, evaluation.

FBNet trains the supernet's weights on 80% of the training split and its
architecture parameters on the other 20%; accuracy is reported on the
dataset's test (CIFAR) or validation (ImageNet) split. This module gives the
trainer those three streams as iterators of numpy batches (and retraining
the whole training split, ``split='train'``)::

  info = data.dataset_info('cifar10')
  weights = data.train_batches('cifar10', split='weights', batch_size=128,
                               seed=0)
  arch = data.train_batches('cifar10', split='arch', batch_size=128, seed=1)
  for batch in data.eval_batches('cifar10', batch_size=500):
    ...  # batch['image'], batch['label'], batch['mask']

Datasets:

* ``digits``: scikit-learn's 1,797 real 8x8 handwritten digits, shipped inside
  scikit-learn, so it needs no download. Upsampled bilinearly to
  ``image_size`` (default 32) and replicated to 3 channels, with a fixed,
  seeded, stratified 80/20 train/eval split. The default for smoke tests.
* ``cifar10``, ``cifar100``, ``imagenet2012``: read with
  ``tfds.data_source`` (array_record random access; TensorFlow is needed only
  once, to prepare the files, never to read them).

All pipelines are ``grain.MapDataset`` graphs: random access to the source,
a seeded global shuffle that differs each epoch, per-example augmentation
with a generator seeded from (seed, example position), batching, and a thread
pool that prefetches whole batches. Because every batch is a pure function of
its position in the stream, ``start_step`` resumes a stream by index
arithmetic, without reading the skipped examples. The per-example transforms
(normalisation and each dataset's augmentation) are in
:mod:`fbnet_jax.augment`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
import dataclasses
import functools
import glob
import os
from typing import Any

from absl import logging
import grain
import numpy as np

from fbnet_jax import augment
from fbnet_jax import errors

KNOWN_DATASETS = ('digits', 'cifar10', 'cifar100', 'imagenet2012')
TRAIN_SPLITS = ('weights', 'arch', 'train')
# Fraction of the training split used to train weights (FBNet, Sec. 4.1);
# the rest trains the architecture parameters.
WEIGHTS_FRACTION = 0.8

# Seed of the fixed permutation that divides the training split into the
# 'weights' and 'arch' subsets. It does not depend on the run's seed, so every
# run (and every resumed run) sees the same division.
_SPLIT_SEED = 0
# Seed of the digits train/eval split.
_DIGITS_SPLIT_SEED = 0
_DIGITS_EVAL_FRACTION = 0.2
_Preprocess = Callable[..., augment.Example]


class DatasetNotPreparedError(FileNotFoundError):
  """A tfds dataset that has not been prepared (as array_record) on disk."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """Static facts about a dataset, as the trainer needs them.

  Attributes:
    name: dataset name, one of ``KNOWN_DATASETS``.
    num_classes: number of label classes.
    image_size: side S of the square [S, S, channels] images the pipelines
      yield.
    channels: image channels (always 3).
    num_train: examples in the full training split (``split='train'``); the
      canonical size of the published dataset, not read from disk.
    num_eval: examples in the evaluation split.
  """
  name: str
  num_classes: int
  image_size: int
  channels: int
  num_train: int
  num_eval: int


@dataclasses.dataclass(frozen=True)
class _TfdsSpec:
  num_classes: int
  image_size: int
  num_train: int
  num_eval: int
  eval_split: str
  mean: tuple[float, float, float]
  std: tuple[float, float, float]


_TFDS_SPECS = {
    'cifar10': _TfdsSpec(
        num_classes=10, image_size=32, num_train=50_000, num_eval=10_000,
        eval_split='test', mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616)),
    'cifar100': _TfdsSpec(
        num_classes=100, image_size=32, num_train=50_000, num_eval=10_000,
        eval_split='test', mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762)),
    'imagenet2012': _TfdsSpec(
        num_classes=1000, image_size=224, num_train=1_281_167,
        num_eval=50_000, eval_split='validation', mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225)),
}
_DIGITS_IMAGE_SIZE = 32


# ----------------------------------------------------------------------------
# Public API.
# ----------------------------------------------------------------------------


def dataset_info(name: str, image_size: int | None = None) -> DatasetInfo:
  """Returns the static description of dataset `name`.

  Args:
    name: one of ``KNOWN_DATASETS``.
    image_size: side of the images the pipelines will yield; ``None`` for the
      dataset's default (32 for digits and CIFAR, 224 for ImageNet).

  Raises:
    errors.InputError: for an unknown name or a non-positive image size.
  """
  _check_name(name)
  if name == 'digits':
    train_idx, eval_idx = _digits_split()
    return DatasetInfo(
        name=name, num_classes=10,
        image_size=_resolve_image_size(image_size, _DIGITS_IMAGE_SIZE),
        channels=3, num_train=len(train_idx), num_eval=len(eval_idx))
  spec = _TFDS_SPECS[name]
  return DatasetInfo(
      name=name, num_classes=spec.num_classes,
      image_size=_resolve_image_size(image_size, spec.image_size), channels=3,
      num_train=spec.num_train, num_eval=spec.num_eval)


def split_indices(split: str, num_train: int) -> np.ndarray:
  """Indices into a training split of `num_train` examples that form `split`.

  'weights' is the first ``WEIGHTS_FRACTION`` of a permutation of
  ``range(num_train)`` drawn with a fixed seed, 'arch' the rest, 'train'
  everything. 'weights' and 'arch' are disjoint and together cover the split.

  Args:
    split: one of ``TRAIN_SPLITS``.
    num_train: size of the training split.

  Returns:
    Sorted int64 indices.

  Raises:
    ValueError: for an unknown split, or a training split too small to give
      both subsets at least one example.
  """
  if split not in TRAIN_SPLITS:
    raise ValueError(
        f'Unknown training split {split!r}; expected one of {TRAIN_SPLITS}.')
  if split == 'train':
    return np.arange(num_train)
  num_weights = int(round(WEIGHTS_FRACTION * num_train))
  if num_weights < 1 or num_weights >= num_train:
    raise ValueError(
        f'A training split of {num_train} examples is too small to divide '
        f'{WEIGHTS_FRACTION:.0%}/{1 - WEIGHTS_FRACTION:.0%} into non-empty '
        "'weights' and 'arch' subsets; use split='train' or more data.")
  permutation = np.random.default_rng(_SPLIT_SEED).permutation(num_train)
  if split == 'weights':
    return np.sort(permutation[:num_weights])
  return np.sort(permutation[num_weights:])


def train_batches(
    name: str,
    *,
    split: str,
    batch_size: int,
    seed: int,
    image_size: int | None = None,
    augment: bool = True,
    data_dir: str | os.PathLike[str] | None = None,
    start_step: int = 0,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[dict[str, np.ndarray]]:
  """An infinite stream of training batches.

  The stream reshuffles the examples every epoch and is a deterministic
  function of (`name`, `split`, `batch_size`, `seed`, `image_size`,
  `augment`): batch k is the same whoever asks for it, so a job resumed at
  step k passes ``start_step=k`` and continues the same stream (the skip is
  index arithmetic; nothing is read). Batches may straddle epochs.

  Args:
    name: one of ``KNOWN_DATASETS``.
    split: 'weights' (80% of the training split, for the supernet weights),
      'arch' (the other 20%, for the architecture parameters) or 'train'.
    batch_size: examples per batch.
    seed: non-negative seed of the shuffle and the augmentation.
    image_size: image side; ``None`` for the dataset's default.
    augment: random translation (digits), pad-crop + flip (CIFAR) or
      random-resized-crop + flip (ImageNet); ``False`` gives the evaluation
      preprocessing.
    data_dir: tfds data directory (``None``: tfds' default,
      ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``). Unused for digits.
    start_step: index of the first batch to yield.
    shard: ``(index, count)``: only rows ``[index * B / count, (index + 1) *
      B / count)`` of each batch are read, decoded and returned (a
      multi-host job's process ``index`` of ``count``); the global stream
      is the same for every count.

  Returns:
    An iterator of ``{'image': float32 [B / count, S, S, 3] normalised with
    the dataset's per-channel mean and std, 'label': int32 [B / count]}``.

  Raises:
    errors.InputError: for an unknown dataset or a bad argument.
    ValueError: for an unknown split.
    DatasetNotPreparedError: when a tfds dataset is not prepared in
      `data_dir`; the message gives the command that prepares it.
  """
  _check_name(name)
  if split not in TRAIN_SPLITS:
    raise ValueError(
        f'Unknown training split {split!r}; expected one of {TRAIN_SPLITS}.')
  _check_positive_int('batch_size', batch_size)
  _check_non_negative_int('seed', seed)
  _check_non_negative_int('start_step', start_step)
  index, count = shard
  _check_positive_int('shard count', count)
  if not 0 <= index < count or batch_size % count:
    raise errors.InputError(
        f'shard {shard}: expected (index, count) with 0 <= index < count '
        f'and count dividing batch_size ({batch_size}).')
  info = dataset_info(name, image_size)
  source, preprocess_train, preprocess_eval = _source_and_transforms(
      name, 'train', info.image_size, data_dir)
  _warn_if_not_published_size(name, len(source), info.num_train)
  indices = split_indices(split, len(source))
  shuffle_seed, augment_seed = np.random.SeedSequence(
      [seed, TRAIN_SPLITS.index(split)]).generate_state(2)

  ds = grain.MapDataset.source(_Subset(source, indices))
  ds = ds.shuffle(seed=int(shuffle_seed)).repeat(None)
  if augment:
    ds = ds.random_map(preprocess_train, seed=int(augment_seed))
  else:
    ds = ds.map(preprocess_eval)
  # Batch k of the global stream is part-batches k * count ... k * count +
  # count - 1 of the same stream cut finer: this process's is one of them,
  # and only its rows are read (the dataset is lazy).
  ds = ds.batch(batch_size // count, drop_remainder=True)
  ds = ds[start_step * count + index::count]
  return iter(ds.to_iter_dataset(_read_options()))


def eval_batches(
    name: str,
    *,
    batch_size: int,
    image_size: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    limit: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
  """One pass, in order, over the evaluation split.

  Every batch has `batch_size` rows: the last one is padded with zeros, and
  ``mask`` marks the real rows, so ``sum(mask * correct) / sum(mask)`` is the
  exact accuracy.

  Args:
    name: one of ``KNOWN_DATASETS``.
    batch_size: rows per batch.
    image_size: image side; ``None`` for the dataset's default.
    data_dir: tfds data directory; unused for digits.
    limit: evaluate only the first `limit` examples, or all of them if
      there are fewer (``None``: all).

  Returns:
    An iterator of ``{'image': float32 [B, S, S, 3], 'label': int32 [B],
    'mask': float32 [B]}``.

  Raises:
    errors.InputError: for an unknown dataset or a bad argument.
    DatasetNotPreparedError: when a tfds dataset is not prepared in
      `data_dir`.
  """
  _check_name(name)
  _check_positive_int('batch_size', batch_size)
  if limit is not None:
    _check_positive_int('limit', limit)
  info = dataset_info(name, image_size)
  source, _, preprocess_eval = _source_and_transforms(
      name, 'eval', info.image_size, data_dir)
  ds = grain.MapDataset.source(source)
  if limit is not None:
    ds = ds[:limit]
  ds = ds.map(preprocess_eval).batch(batch_size, drop_remainder=False)
  ds = ds.map(functools.partial(_pad_batch, batch_size=batch_size))
  return iter(ds.to_iter_dataset(_read_options()))


# ----------------------------------------------------------------------------
# Argument checks.
# ----------------------------------------------------------------------------


def check_prepared(name: str,
                   data_dir: str | os.PathLike[str] | None = None) -> None:
  """Raises :class:`DatasetNotPreparedError` (where it looked, how to
  prepare it) unless both splits of ``name`` can be read; the embedded
  digits always can. For a job to call before it writes its workdir."""
  _check_name(name)
  if name == 'digits':
    return
  for split in ('train', _TFDS_SPECS[name].eval_split):
    _tfds_source(name, split, data_dir)


def _check_name(name: str) -> None:
  if name not in KNOWN_DATASETS:
    raise errors.InputError(
        f'config.data.name: unknown dataset {name!r}; expected one of '
        f'{", ".join(KNOWN_DATASETS)}.')


def _is_int(value: Any) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_positive_int(field: str, value: Any) -> None:
  if not _is_int(value) or value < 1:
    raise errors.InputError(
        f'{field} must be a positive integer, got {value!r}.')


def _check_non_negative_int(field: str, value: Any) -> None:
  if not _is_int(value) or value < 0:
    raise errors.InputError(
        f'{field} must be a non-negative integer, got {value!r}.')


def _resolve_image_size(image_size: int | None, default: int) -> int:
  if image_size is None:
    return default
  _check_positive_int('image_size', image_size)
  return int(image_size)


# ----------------------------------------------------------------------------
# Pipeline pieces.
# ----------------------------------------------------------------------------


class _Subset(Sequence):
  """Random-access view of `source` restricted to `indices`."""

  def __init__(self, source: Sequence[Any], indices: np.ndarray):
    self._source = source
    self._indices = indices

  def __len__(self) -> int:
    return len(self._indices)

  def __getitem__(self, index):
    return self._source[int(self._indices[index])]


class _ArraySource(Sequence):
  """In-memory random-access source of {'image', 'label'} examples."""

  def __init__(self, images: np.ndarray, labels: np.ndarray):
    self._images = images
    self._labels = labels

  def __len__(self) -> int:
    return len(self._labels)

  def __getitem__(self, index):
    return {'image': self._images[index], 'label': self._labels[index]}


def _read_options() -> grain.ReadOptions:
  # Threads prefetch whole batches: per-element hand-offs between threads
  # cost more than the cheap CIFAR/digits transforms themselves, while
  # batch-level threads still overlap ImageNet's JPEG decoding and resizing
  # (PIL releases the GIL).
  num_threads = min(8, os.cpu_count() or 1)
  return grain.ReadOptions(num_threads=num_threads,
                           prefetch_buffer_size=num_threads)


def _pad_batch(batch: augment.Example, batch_size: int) -> augment.Example:
  """Pads a (last, short) batch to `batch_size` rows and adds 'mask'."""
  num_real = len(batch['label'])
  mask = np.zeros([batch_size], np.float32)
  mask[:num_real] = 1.0
  if num_real == batch_size:
    return {**batch, 'mask': mask}
  padded = {}
  for key, value in batch.items():
    pad = np.zeros((batch_size - num_real,) + value.shape[1:], value.dtype)
    padded[key] = np.concatenate([value, pad])
  padded['mask'] = mask
  return padded


_SAID_SIZE: set = set()


def _warn_if_not_published_size(name: str, size: int, published: int):
  """Epoch lengths and the validation count are taken from the published
  size (:func:`dataset_info`); a prepared split of another size is said,
  once: the searches' epochs are then not passes over it."""
  if size != published and (name, size) not in _SAID_SIZE:
    _SAID_SIZE.add((name, size))
    logging.warning(
        '%s: the prepared train split has %d examples, the published one '
        '%d; epoch lengths and the validation image count use %d (a '
        'partial or mock dataset?).', name, size, published, published)


def _source_and_transforms(
    name: str, which: str, image_size: int,
    data_dir: str | os.PathLike[str] | None,
) -> tuple[Sequence[Any], _Preprocess, _Preprocess]:
  """Returns (source, train_fn(example, rng), eval_fn(example))."""
  if name == 'digits':
    arrays = _digits_arrays(image_size)
    images, labels = arrays[which]
    normalize = functools.partial(
        augment.normalize_image, mean=arrays['mean'], std=arrays['std'])
    return (_ArraySource(images, labels),
            functools.partial(augment.digits_train, normalize=normalize),
            functools.partial(augment.digits_eval, normalize=normalize))
  spec = _TFDS_SPECS[name]
  split = 'train' if which == 'train' else spec.eval_split
  source = _tfds_source(name, split, data_dir)
  normalize = functools.partial(
      augment.normalize_image, mean=np.asarray(spec.mean, np.float32) * 255,
      std=np.asarray(spec.std, np.float32) * 255)
  if name == 'imagenet2012':
    return (source,
            functools.partial(augment.imagenet_train, image_size=image_size,
                              normalize=normalize),
            functools.partial(augment.imagenet_eval, image_size=image_size,
                              normalize=normalize))
  return (source,
          functools.partial(augment.cifar_train, image_size=image_size,
                            normalize=normalize),
          functools.partial(augment.cifar_eval, image_size=image_size,
                            normalize=normalize))


# --- digits -----------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _digits_raw() -> tuple[np.ndarray, np.ndarray]:
  """Returns scikit-learn's digits: images float32 [1797, 8, 8] in [0, 1]."""
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  digits = datasets.load_digits()
  return ((digits.images / 16.0).astype(np.float32),
          digits.target.astype(np.int32))


@functools.lru_cache(maxsize=1)
def _digits_split() -> tuple[np.ndarray, np.ndarray]:
  """Fixed stratified split: (train indices, eval indices), both sorted."""
  _, labels = _digits_raw()
  rng = np.random.default_rng(_DIGITS_SPLIT_SEED)
  eval_idx = []
  for label in np.unique(labels):
    members = rng.permutation(np.flatnonzero(labels == label))
    eval_idx.append(members[:int(round(_DIGITS_EVAL_FRACTION * len(members)))])
  eval_idx = np.sort(np.concatenate(eval_idx))
  train_idx = np.setdiff1d(np.arange(len(labels)), eval_idx)
  return train_idx, eval_idx


@functools.lru_cache(maxsize=2)
def _digits_arrays(image_size: int) -> dict[str, Any]:
  """Upsampled digits [N, S, S] in [0, 1] per split, and train mean/std."""
  import jax  # pylint: disable=g-import-not-at-top
  raw_images, labels = _digits_raw()
  try:  # this process's own CPU (under jax.distributed, devices('cpu')[0]
    # is process 0's)
    cpu = jax.local_devices(backend='cpu')[0]
  except RuntimeError:  # CPU backend disabled (JAX_PLATFORMS): use default.
    cpu = None
  resized = jax.image.resize(
      jax.device_put(raw_images, cpu),
      (len(raw_images), image_size, image_size), method='bilinear')
  images = np.clip(np.asarray(resized), 0.0, 1.0)
  train_idx, eval_idx = _digits_split()
  train_images = images[train_idx]
  return {
      'train': (train_images, labels[train_idx]),
      'eval': (images[eval_idx], labels[eval_idx]),
      'mean': np.float32(train_images.mean(dtype=np.float64)),
      'std': np.float32(train_images.std(dtype=np.float64)),
  }


# --- tfds -------------------------------------------------------------------


def _prepare_instructions(name: str, data_dir: str) -> str:
  build = (f'pip install tensorflow && tfds build {name} '
           f'--data_dir={data_dir} --file_format=array_record')
  if name == 'imagenet2012':
    return (
        'ImageNet cannot be downloaded automatically: register at '
        'https://image-net.org/download-images, put ILSVRC2012_img_train.tar '
        f'and ILSVRC2012_img_val.tar in {data_dir}/downloads/manual/, then '
        f'run once: {build}')
  return f'Prepare it once with: {build}'


def _tfds_source(name: str, split: str,
                 data_dir: str | os.PathLike[str] | None) -> Sequence[Any]:
  """`tfds.data_source(name, split)`, never downloading; clear errors."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        f'Dataset {name!r} is read with tensorflow-datasets, which is not '
        'installed: pip install tensorflow-datasets array_record pillow') from e
  # '' (the configs' default) and None both mean tfds' default directory;
  # tfds itself would read '' as the working directory.
  data_dir = os.path.expanduser(os.fspath(data_dir)) if data_dir else None
  searched = data_dir if data_dir is not None else (
      os.environ.get('TFDS_DATA_DIR')
      or os.path.expanduser('~/tensorflow_datasets'))
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir,
                            download=False)
  except (KeyError, ValueError, NotImplementedError, OSError,
          AssertionError) as e:
    prepared = sorted(glob.glob(
        os.path.join(glob.escape(searched), name, '*', 'dataset_info.json')))
    if prepared:
      reason = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
      problem = (f'is prepared under {searched!r} but cannot be read with '
                 f'random access (tfds said: {reason}); it must be prepared '
                 'in the array_record format')
    else:
      problem = (f'is not prepared under {searched!r} (no '
                 f'{os.path.join(searched, name)}/<version>/'
                 'dataset_info.json)')
    raise DatasetNotPreparedError(
        f'Dataset {name!r} (split {split!r}) {problem}. '
        f'{_prepare_instructions(name, searched)}') from None
