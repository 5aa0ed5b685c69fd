"""Tests for the input pipelines (fbnet_jax/data.py, fbnet_jax/augment.py).

digits runs for real (it ships inside scikit-learn). CIFAR-10/100 and
ImageNet run through ``tfds.testing.mock_data``, which replaces what
``tfds.data_source`` reads with generated examples (no TensorFlow, no files).
"""

import collections
import itertools
from unittest import mock

import numpy as np
import pytest

from fbnet_jax import augment
from fbnet_jax import data

tfds = pytest.importorskip('tensorflow_datasets')

_MOCK_EXAMPLES = 23  # Size of every mocked split (odd, to exercise padding).


def _take(iterator, num_batches):
  return list(itertools.islice(iterator, num_batches))


def _flatten(batches):
  return np.concatenate([b['image'] for b in batches]), np.concatenate(
      [b['label'] for b in batches])


def _fingerprints(images, labels):
  return collections.Counter(
      (int(label), image.tobytes()) for image, label in zip(images, labels))


def _mock(num_examples=_MOCK_EXAMPLES):
  return tfds.testing.mock_data(
      num_examples=num_examples, policy=tfds.testing.MockPolicy.USE_CODE)


# ---------------------------------------------------------------------------
# Names, info and argument checks.
# ---------------------------------------------------------------------------


def test_dataset_info():
  digits = data.dataset_info('digits')
  assert (digits.num_classes, digits.image_size, digits.channels) == (10, 32, 3)
  assert digits.num_train + digits.num_eval == 1797
  assert abs(digits.num_eval - 0.2 * 1797) < 10
  assert data.dataset_info('digits', image_size=16).image_size == 16
  assert data.dataset_info('cifar100') == data.DatasetInfo(
      'cifar100', 100, 32, 3, 50_000, 10_000)
  imagenet = data.dataset_info('imagenet2012')
  assert (imagenet.num_classes, imagenet.image_size) == (1000, 224)


@pytest.mark.parametrize('call', [
    lambda: data.dataset_info('mnist'),
    lambda: data.train_batches('mnist', split='train', batch_size=2, seed=0),
    lambda: data.eval_batches('mnist', batch_size=2),
])
def test_unknown_dataset_lists_known_names(call):
  with pytest.raises(ValueError, match='mnist.*digits, cifar10, cifar100'):
    call()


@pytest.mark.parametrize('kwargs, message', [
    (dict(split='val'), "split 'val'.*weights"),
    (dict(batch_size=0), 'batch_size must be a positive integer'),
    (dict(seed=-1), 'seed must be a non-negative integer'),
    (dict(start_step=-3), 'start_step must be a non-negative integer'),
    (dict(image_size=0), 'image_size must be a positive integer'),
])
def test_bad_arguments(kwargs, message):
  args = dict(split='weights', batch_size=4, seed=0) | kwargs
  with pytest.raises(ValueError, match=message):
    data.train_batches('digits', **args)


# ---------------------------------------------------------------------------
# Splits.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize('num_train', [10, 1438, 50_000])
def test_split_indices_disjoint_and_covering(num_train):
  weights = data.split_indices('weights', num_train)
  arch = data.split_indices('arch', num_train)
  assert len(weights) == round(0.8 * num_train)
  assert not set(weights) & set(arch)
  np.testing.assert_array_equal(
      np.sort(np.concatenate([weights, arch])), np.arange(num_train))
  np.testing.assert_array_equal(data.split_indices('train', num_train),
                                np.arange(num_train))
  # Fixed: does not depend on anything but the size.
  np.testing.assert_array_equal(weights, data.split_indices('weights',
                                                            num_train))
  assert not np.array_equal(weights, np.arange(len(weights)))


def test_split_too_small():
  with pytest.raises(ValueError, match='too small'):
    data.split_indices('arch', 1)


def test_digits_weights_and_arch_streams_partition_train():
  """One epoch of each stream: weights + arch == train, as multisets."""
  info = data.dataset_info('digits', image_size=8)
  num_weights = len(data.split_indices('weights', info.num_train))
  epochs = {}
  for split, size in [('weights', num_weights),
                      ('arch', info.num_train - num_weights),
                      ('train', info.num_train)]:
    stream = data.train_batches('digits', split=split, batch_size=size,
                                seed=3, image_size=8, augment=False)
    epochs[split] = _fingerprints(*_flatten(_take(stream, 1)))
    assert sum(epochs[split].values()) == size
    assert max(epochs[split].values()) == 1  # A permutation: no repeats.
  assert epochs['weights'] + epochs['arch'] == epochs['train']
  assert not set(epochs['weights']) & set(epochs['arch'])


# ---------------------------------------------------------------------------
# digits.
# ---------------------------------------------------------------------------


def test_digits_shapes_dtypes_and_normalisation():
  info = data.dataset_info('digits')
  batch = next(data.train_batches('digits', split='weights', batch_size=16,
                                  seed=0))
  assert batch['image'].shape == (16, 32, 32, 3)
  assert batch['image'].dtype == np.float32
  assert batch['label'].shape == (16,) and batch['label'].dtype == np.int32
  assert set(batch['label']) <= set(range(info.num_classes))
  # Grey digits replicated to three channels.
  np.testing.assert_array_equal(batch['image'][..., 0], batch['image'][..., 2])
  # Normalised with the training split's statistics.
  epoch = _take(data.train_batches('digits', split='train',
                                   batch_size=info.num_train, seed=0,
                                   augment=False), 1)[0]['image']
  epoch = epoch.astype(np.float64)
  np.testing.assert_allclose(epoch.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
  np.testing.assert_allclose(epoch.std(axis=(0, 1, 2)), 1.0, atol=1e-4)


def test_digits_deterministic_and_reshuffled_each_epoch():
  def stream(seed):
    return data.train_batches('digits', split='arch', batch_size=40,
                              seed=seed, image_size=8)
  first, again, other = (_take(stream(s), 15) for s in (0, 0, 1))
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a['image'], b['image'])
    np.testing.assert_array_equal(a['label'], b['label'])
  assert not np.array_equal(first[0]['label'], other[0]['label'])
  # 'arch' has ~288 examples; epochs 1 and 2 hold the same examples in a new
  # order.
  labels = np.concatenate([b['label'] for b in first])
  size = len(data.split_indices('arch', data.dataset_info('digits').num_train))
  epoch1, epoch2 = labels[:size], labels[size:2 * size]
  np.testing.assert_array_equal(np.bincount(epoch1), np.bincount(epoch2))
  assert not np.array_equal(epoch1, epoch2)


def test_start_step_resumes_the_same_stream():
  def stream(start_step):
    return data.train_batches('digits', split='weights', batch_size=24,
                              seed=5, image_size=16, start_step=start_step)
  full = _take(stream(0), 60)  # Crosses the epoch boundary (~1150 / 24).
  resumed = _take(stream(45), 15)
  for a, b in zip(full[45:], resumed):
    np.testing.assert_array_equal(a['image'], b['image'])
    np.testing.assert_array_equal(a['label'], b['label'])
  # Skipping is index arithmetic, not iteration: a batch 10**9 steps on
  # reads its own 24 examples (prefetching reads a few batches ahead).
  reads = []
  read = data._ArraySource.__getitem__  # pylint: disable=protected-access
  with mock.patch.object(data._ArraySource, '__getitem__',  # pylint: disable=protected-access
                         lambda self, i: reads.append(i) or read(self, i)):
    next(stream(10**9))
  assert 24 <= len(reads) <= 24 * 16, len(reads)


def test_a_shard_reads_its_rows_of_each_batch():
  """A process's rows of the global stream: row block ``index`` of every
  batch, from any start step, augmented as in the whole batch."""
  kwargs = dict(split='weights', batch_size=8, seed=3)
  whole = _take(data.train_batches('digits', **kwargs), 5)
  for index in range(4):
    parts = _take(data.train_batches('digits', shard=(index, 4), **kwargs), 5)
    resumed = _take(data.train_batches('digits', shard=(index, 4),
                                       start_step=3, **kwargs), 2)
    for k, part in enumerate(parts):
      rows = slice(2 * index, 2 * index + 2)
      np.testing.assert_array_equal(part['label'], whole[k]['label'][rows])
      np.testing.assert_array_equal(part['image'], whole[k]['image'][rows])
    np.testing.assert_array_equal(resumed[0]['image'], parts[3]['image'])
  with pytest.raises(ValueError, match=r'count dividing batch_size \(8\)'):
    data.train_batches('digits', shard=(0, 3), **kwargs)
  with pytest.raises(ValueError, match='0 <= index < count'):
    data.train_batches('digits', shard=(2, 2), **kwargs)


def test_digits_augmentation_is_a_small_translation_without_flip():
  kwargs = dict(split='weights', batch_size=32, seed=2, image_size=16)
  plain = next(data.train_batches('digits', augment=False, **kwargs))
  augmented = next(data.train_batches('digits', augment=True, **kwargs))
  np.testing.assert_array_equal(plain['label'], augmented['label'])
  background = plain['image'].min()  # Zero ink, normalised.
  max_shift = 16 // 8
  moved = 0
  for image, shifted in zip(plain['image'], augmented['image']):
    padded = np.pad(image, ((max_shift,) * 2, (max_shift,) * 2, (0, 0)),
                    constant_values=background)
    matches = [
        (dy, dx) for dy in range(2 * max_shift + 1)
        for dx in range(2 * max_shift + 1)
        if np.allclose(padded[dy:dy + 16, dx:dx + 16], shifted, atol=1e-5)]
    assert matches, 'augmented image is not a translation of the original'
    moved += (max_shift, max_shift) not in matches
  assert moved > 0


def test_digits_eval_pads_and_masks_exactly():
  info = data.dataset_info('digits', image_size=8)
  batches = list(data.eval_batches('digits', batch_size=64, image_size=8))
  assert len(batches) == -(-info.num_eval // 64)
  for batch in batches:
    assert batch['image'].shape == (64, 8, 8, 3)
    assert batch['label'].shape == batch['mask'].shape == (64,)
    assert batch['mask'].dtype == np.float32
  assert sum(b['mask'].sum() for b in batches) == info.num_eval
  last = batches[-1]
  num_real = info.num_eval % 64
  np.testing.assert_array_equal(last['mask'], np.arange(64) < num_real)
  assert not last['image'][num_real:].any()
  # Deterministic order, and `limit`.
  again = list(data.eval_batches('digits', batch_size=64, image_size=8))
  np.testing.assert_array_equal(batches[2]['image'], again[2]['image'])
  limited = list(data.eval_batches('digits', batch_size=64, image_size=8,
                                   limit=100))
  assert [b['mask'].sum() for b in limited] == [64, 36]


# ---------------------------------------------------------------------------
# tfds datasets, mocked.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize('name, num_classes, mean, std', [
    ('cifar10', 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    ('cifar100', 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
])
def test_cifar_mocked(name, num_classes, mean, std, monkeypatch):
  monkeypatch.setattr(data, '_SAID_SIZE', set())  # whatever ran before
  with _mock(), mock.patch.object(data.logging, 'warning') as warn:
    raw = tfds.data_source(name, split='test')
    train = _take(data.train_batches(name, split='weights', batch_size=8,
                                     seed=0), 4)
    again = _take(data.train_batches(name, split='weights', batch_size=8,
                                     seed=0, start_step=2), 2)
    arch = next(data.train_batches(name, split='arch', batch_size=8, seed=0))
    evals = list(data.eval_batches(name, batch_size=10))
    raw_images = np.stack([raw[i]['image'] for i in range(_MOCK_EXAMPLES)])
    raw_labels = np.array([raw[i]['label'] for i in range(_MOCK_EXAMPLES)])
  # The mock's train split is not the published 50,000: said, once.
  said = [c[0][1:] for c in warn.call_args_list
          if 'the prepared train split has' in c[0][0]]
  assert said == [(name, _MOCK_EXAMPLES, 50_000, 50_000)]
  for batch in train + [arch]:
    assert batch['image'].shape == (8, 32, 32, 3)
    assert batch['image'].dtype == np.float32
    assert batch['label'].dtype == np.int32
    assert batch['label'].min() >= 0 and batch['label'].max() < num_classes
  np.testing.assert_array_equal(train[2]['image'], again[0]['image'])
  np.testing.assert_array_equal(train[3]['label'], again[1]['label'])
  # Eval: exact order, exact normalisation, padding and mask.
  assert [b['mask'].sum() for b in evals] == [10, 10, 3]
  images = np.concatenate([b['image'] for b in evals])[:_MOCK_EXAMPLES]
  labels = np.concatenate([b['label'] for b in evals])[:_MOCK_EXAMPLES]
  np.testing.assert_array_equal(labels, raw_labels)
  np.testing.assert_allclose((images * std + mean) * 255, raw_images,
                             atol=1e-3)


def test_cifar_augmentation_is_crop_and_flip():
  with _mock():
    kwargs = dict(split='train', batch_size=_MOCK_EXAMPLES, seed=4)
    plain = next(data.train_batches('cifar10', augment=False, **kwargs))
    augmented = next(data.train_batches('cifar10', **kwargs))
  np.testing.assert_array_equal(plain['label'], augmented['label'])
  background = (0 - np.array((0.4914, 0.4822, 0.4465))) / np.array(
      (0.2470, 0.2435, 0.2616))
  flips = 0
  for image, crop in zip(plain['image'], augmented['image']):
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0)))
    padded[:4], padded[-4:], padded[:, :4], padded[:, -4:] = (background,) * 4
    found = set()
    for dy, dx, flip in itertools.product(range(9), range(9), (False, True)):
      candidate = padded[dy:dy + 32, dx:dx + 32]
      if np.allclose(candidate[:, ::-1] if flip else candidate, crop,
                     atol=1e-4):
        found.add(flip)
    assert found, 'augmented image is not a padded crop (+flip) of the original'
    flips += found == {True}
  assert 0 < flips < _MOCK_EXAMPLES


def test_imagenet_mocked():
  with _mock():
    train = _take(data.train_batches('imagenet2012', split='weights',
                                     batch_size=4, seed=0, image_size=32), 3)
    again = _take(data.train_batches('imagenet2012', split='weights',
                                     batch_size=4, seed=0, image_size=32), 3)
    evals = list(data.eval_batches('imagenet2012', batch_size=8,
                                   image_size=32))
  for a, b in zip(train, again):
    assert a['image'].shape == (4, 32, 32, 3)
    assert np.isfinite(a['image']).all()
    assert a['label'].max() < 1000
    np.testing.assert_array_equal(a['image'], b['image'])
  assert [b['image'].shape for b in evals] == [(8, 32, 32, 3)] * 3
  assert sum(b['mask'].sum() for b in evals) == _MOCK_EXAMPLES


@pytest.mark.parametrize('height, width', [(10, 25), (300, 200), (5, 400)])
def test_random_resized_crop_box_fits(height, width):
  rng = np.random.default_rng(0)
  areas = []
  for _ in range(200):
    top, left, crop_h, crop_w = augment.random_resized_crop_box(
        height, width, rng)
    assert 0 < crop_h and 0 < crop_w
    assert 0 <= top and top + crop_h <= height
    assert 0 <= left and left + crop_w <= width
    # Aspect within 3/4..4/3, up to the rounding of each side.
    assert 3 / 4 * (crop_h - 1) <= crop_w + 1 and crop_w - 1 <= 4 / 3 * (
        crop_h + 1)
    areas.append(crop_h * crop_w / (height * width))
  if min(height, width) >= 100:  # boxes fit (else the central fallback)
    # Area at least 8% of the image, up to the rounding of each side.
    assert min(areas) >= 0.08 - (height + width) / (height * width)
    # Not always one box: the area fraction is spread over 8%..100%.
    assert min(areas) < 0.3 and max(areas) > 0.7


@pytest.mark.parametrize('name, hint', [
    ('cifar10', 'tfds build cifar10'),
    ('imagenet2012', 'downloads/manual'),
])
def test_unprepared_dataset_error(tmp_path, name, hint):
  with pytest.raises(data.DatasetNotPreparedError) as error:
    data.train_batches(name, split='weights', batch_size=4, seed=0,
                       data_dir=tmp_path)
  message = str(error.value)
  assert repr(name) in message and str(tmp_path) in message
  assert hint in message and '--file_format=array_record' in message
  assert not list(tmp_path.iterdir())  # Nothing was downloaded.


def test_empty_data_dir_is_the_tfds_default(tmp_path, monkeypatch):
  """The configs' data_dir '' means tfds' default directory (here
  TFDS_DATA_DIR), not the working directory."""
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path / 'tfds'))
  monkeypatch.chdir(tmp_path)
  with pytest.raises(data.DatasetNotPreparedError,
                     match=f"not prepared under '{tmp_path}/tfds'"):
    data.train_batches('cifar10', split='weights', batch_size=4, seed=0,
                       data_dir='')
