"""Export standalone networks to ONNX, and run them with ONNX Runtime.

Deployment runtimes do not run JAX: a found network reaches a phone or an
accelerator as an ONNX (or TFLite, ...) graph. :func:`to_onnx` converts any
network of :mod:`fbnet_jax.models` with its variables through ``jax2onnx``;
:func:`onnxruntime_session` and :func:`onnxruntime_forward` load and call
the graph on ONNX Runtime's CPU provider, which is how the measurement
harness (``MeasureConfig.runtime='onnxruntime'``) times a network "as
deployed", a separate device from the same machine's JAX backend.

The graph is traced with XLA's native convolutions
(:func:`fbnet_jax.blocks.conv_implementation`), so it holds ``Conv`` nodes
(depthwise and group convolutions included) that the runtime fuses with
batch norm and activations, not the matmuls and shifted sums that
:class:`fbnet_jax.blocks.Conv` uses under XLA's CPU backend.

Needs the optional ``onnx`` extra (``pip install -e '.[onnx]'``: jax2onnx
and onnxruntime).
"""

from __future__ import annotations

import collections
import importlib
import importlib.metadata
import os
from typing import Any, Callable, Optional, Sequence, Union

import jax
import ml_collections
import numpy as np
import tqdm

from fbnet_jax import blocks
from fbnet_jax import data as data_lib
from fbnet_jax import retrain
from fbnet_jax import workdirs

# How far ONNX Runtime's logits may be from JAX's, relative to the largest
# logit's magnitude (at least 1): float32 convolutions in other orders
# differ by ~1e-5 (3.1e-5 on a retrained digits network, logits ~10).
LOGIT_TOLERANCE = 1e-3

_EXTRA = ("ONNX export needs the optional 'onnx' extra: pip install -e "
          "'.[onnx]' (jax2onnx and onnxruntime).")


def _require(module: str):
  try:
    return importlib.import_module(module)
  except ImportError as e:
    raise ImportError(f'{_EXTRA} ({module}: {e})') from e


def available() -> bool:
  """Whether jax2onnx and onnxruntime can be imported."""
  try:
    for module in ('jax2onnx', 'onnxruntime'):
      importlib.import_module(module)
  except ImportError:
    return False
  return True


def to_onnx(model, variables: Any, input_shape: Sequence[Union[int, str]], *,
            path: Optional[str] = None, name: str = 'fbnet_jax'):
  """The inference graph of ``model`` with ``variables`` as an ONNX model.

  Args:
    model: a flax module called as ``model.apply(variables, x, train=False)``
      on NHWC float32 images (every network of :mod:`fbnet_jax.models`).
    variables: its ``params`` and ``batch_stats``; baked into the graph.
    input_shape: ``(batch, height, width, channels)``; a string batch (e.g.
      ``'B'``) makes the batch dimension dynamic.
    path: also write the model there (``.onnx``).
    name: the graph's name.

  Returns:
    ``onnx.ModelProto`` with one input (NHWC images) and one output (logits).
  """
  jax2onnx = _require('jax2onnx')
  if len(input_shape) != 4:
    raise ValueError(f'to_onnx: input_shape must be (batch, height, width, '
                     f'channels), got {tuple(input_shape)}.')

  def forward(x):
    return model.apply(variables, x, train=False)

  with blocks.conv_implementation('xla'):
    proto = jax2onnx.to_onnx(forward, [tuple(input_shape)], model_name=name,
                             input_names=['images'], output_names=['logits'])
  # jax2onnx declares some intermediate shapes NHWC where its Conv lowering
  # computes NCHW: ONNX's strict shape inference, and converters built on
  # it, reject such a graph (ONNX Runtime warns once per tensor).
  # Intermediate shapes are optional in ONNX; left to be inferred.
  del proto.graph.value_info[:]
  if path:
    with workdirs.atomic_open(path, 'wb') as f:
      f.write(proto.SerializeToString())
  return proto


def cached(directory: str, key: str, build: Callable[[], Any]) -> bytes:
  """The serialised ONNX model of ``key`` in ``directory``, exported with
  ``build()`` (a ModelProto) and written there if missing; ``directory``
  '' means no cache. The key should name everything the graph depends on;
  the jax2onnx version is added to it."""
  _require('jax2onnx')  # the extra's message, not a missing-metadata one
  if not directory:
    return build().SerializeToString()
  version = importlib.metadata.version('jax2onnx')
  path = os.path.join(directory, f'{key}_jax2onnx-{version}.onnx')
  if os.path.exists(path):
    with open(path, 'rb') as f:
      return f.read()
  data = build().SerializeToString()
  os.makedirs(directory, exist_ok=True)
  # Atomic: concurrent sessions never read half a file.
  with workdirs.atomic_open(path, 'wb') as f:
    f.write(data)
  return data


def onnxruntime_session(model, *, threads: int = 0):
  """An ONNX Runtime CPU session of ``model`` (ModelProto, bytes or path).

  ``threads``: intra-op threads; 0 leaves ONNX Runtime's default (one per
  physical core), as a deployment would.
  """
  ort = _require('onnxruntime')
  options = ort.SessionOptions()
  options.intra_op_num_threads = threads
  options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
  options.log_severity_level = 3  # shape-merge notices are not errors
  if hasattr(model, 'SerializeToString'):
    model = model.SerializeToString()
  return ort.InferenceSession(model, options,
                              providers=['CPUExecutionProvider'])


def onnxruntime_forward(session, images: np.ndarray
                        ) -> Callable[[], np.ndarray]:
  """A zero-argument call of ``session`` on ``images``, ready to time."""
  feed = {session.get_inputs()[0].name: np.asarray(images, np.float32)}
  return lambda: session.run(None, feed)[0]


def export_retrained(config: ml_collections.ConfigDict, arch: Sequence[int],
                     retrain_dir: str, path: str, *,
                     progress: bool = True) -> dict:
  """Exports ``arch`` as retrained in ``retrain_dir`` to ``path`` and checks it.

  The graph takes a batch of any size. The check runs the eval split (at
  most ``config.data.eval_limit`` images) through ONNX Runtime and through
  JAX: the two accuracies and the largest logit difference are returned
  with the graph's size and node counts, whether the retraining had
  finished (and its own accuracy), and ``agree``: the largest difference
  is within :data:`LOGIT_TOLERANCE` of the largest logit's magnitude.
  """
  model, variables, step = retrain.load_trained(config, arch, retrain_dir)
  info = data_lib.dataset_info(config.data.name, config.data.image_size)
  # Before the graph is written: no unchecked model.onnx is left behind.
  data_lib.check_prepared(config.data.name, config.data.get('data_dir'))
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  proto = to_onnx(model, variables, ('B', info.image_size, info.image_size,
                                     info.channels), path=path)
  session = onnxruntime_session(proto)
  apply = jax.jit(lambda x: model.apply(variables, x, train=False))
  correct = {'onnxruntime': 0.0, 'jax': 0.0}
  count, max_diff, max_logit = 0.0, 0.0, 0.0
  batches = data_lib.eval_batches(
      config.data.name, batch_size=config.retrain.batch_size,
      image_size=config.data.image_size, data_dir=config.data.get('data_dir'),
      limit=config.data.get('eval_limit'))
  num_eval = min(info.num_eval, config.data.get('eval_limit') or
                 info.num_eval)
  for batch in tqdm.tqdm(batches, desc='check', unit='batch',
                         total=-(-num_eval // config.retrain.batch_size),
                         disable=not progress):
    images = np.asarray(batch['image'], np.float32)
    mask = np.asarray(batch['mask']) > 0
    logits = {'onnxruntime': session.run(None, {'images': images})[0],
              'jax': np.asarray(apply(images))}
    for runtime, out in logits.items():
      correct[runtime] += float(
          ((out.argmax(-1) == np.asarray(batch['label'])) & mask).sum())
    max_diff = max(max_diff, float(np.abs(
        logits['onnxruntime'] - logits['jax'])[mask].max(initial=0.0)))
    max_logit = max(max_logit, float(np.abs(logits['jax'])[mask].max(
        initial=0.0)))
    count += float(mask.sum())
  retrained = workdirs.read_json(os.path.join(retrain_dir,
                                              retrain.RESULT_FILE))
  return {'path': os.path.abspath(path), 'checkpoint_step': step,
          'retrain_finished': retrained is not None,
          'retrain_accuracy': (retrained or {}).get('accuracy'),
          'onnx_megabytes': os.path.getsize(path) / 1e6,
          'onnx_nodes': dict(collections.Counter(
              node.op_type for node in proto.graph.node).most_common()),
          'num_eval': int(count),
          'accuracy_onnxruntime': correct['onnxruntime'] / max(count, 1.0),
          'accuracy_jax': correct['jax'] / max(count, 1.0),
          'max_abs_logit_difference': max_diff,
          'max_abs_logit': max_logit,
          'agree': max_diff <= LOGIT_TOLERANCE * max(1.0, max_logit)}
