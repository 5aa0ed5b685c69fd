"""ONNX export: native convolutions in the graph, same outputs as JAX, timed
by the harness on ONNX Runtime, retrained weights exported and checked."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import quickstart
from fbnet_jax import blocks
from fbnet_jax import export
from fbnet_jax import initializers
from fbnet_jax import measure
from fbnet_jax import models
from fbnet_jax import retrain
from fbnet_jax import spaces

needs_onnx = pytest.mark.skipif(not export.available(),
                                reason="needs the 'onnx' extra")

# One real block per network, the rest skips: exports in seconds.
_ARCH_A = [8] * 22
_ARCH_A[5] = 0  # k3_e1
_ARCH_B = [8] * 22
_ARCH_B[9] = 7  # k5_e6


def test_conv_implementation_is_scoped(monkeypatch):
  monkeypatch.setenv('FBNET_JAX_CONV', 'fast')
  assert blocks.fast_conv_enabled()
  with blocks.conv_implementation('xla'):
    assert not blocks.fast_conv_enabled()
    with blocks.conv_implementation('fast'):
      assert blocks.fast_conv_enabled()
    assert not blocks.fast_conv_enabled()
  assert blocks.fast_conv_enabled()
  with pytest.raises(ValueError, match="expected 'xla' or 'fast'"):
    with blocks.conv_implementation('cudnn'):
      pass


def test_conv_implementation_changes_the_traced_graph(monkeypatch):
  monkeypatch.setenv('FBNET_JAX_CONV', 'fast')
  model = models.FBNetModel(tuple(_ARCH_B), macro='cifar')
  x = jnp.zeros((1, 32, 32, 3))
  variables = initializers.fast_init(model, 0, x, train=False)

  def convolutions():
    jaxpr = jax.make_jaxpr(lambda x: model.apply(variables, x,
                                                 train=False))(x)
    return str(jaxpr).count('conv_general_dilated')

  fast = convolutions()
  with blocks.conv_implementation('xla'):
    native = convolutions()
  # The stem and the 3 convolutions of the k5_e6 block (two 1x1 group
  # convolutions and the depthwise one) are native under 'xla'.
  assert native >= fast + 3


def test_measure_config_rejects_an_unknown_runtime():
  with pytest.raises(ValueError, match='MeasureConfig.runtime'):
    measure.MeasureConfig(runtime='tflite')
  with pytest.raises(ValueError, match='float32'):
    measure.MeasureConfig(runtime='onnxruntime', dtype='bfloat16')


def test_missing_extra_is_a_clear_error(monkeypatch):
  real = export.importlib.import_module

  def fake(name, *args):
    if name == 'jax2onnx':
      raise ImportError('No module named jax2onnx')
    return real(name, *args)

  monkeypatch.setattr(export.importlib, 'import_module', fake)
  assert not export.available()
  with pytest.raises(ImportError, match=r"pip install -e '\.\[onnx\]'"):
    export.to_onnx(None, None, (1, 32, 32, 3))
  # The measuring path's cache too (it looked up jax2onnx's version first).
  with pytest.raises(ImportError, match=r"pip install -e '\.\[onnx\]'"):
    export.cached('/tmp/unused', 'key', lambda: None)


@needs_onnx
def test_onnx_graph_has_native_convolutions_and_matches_jax():
  model = models.FBNetModel(tuple(_ARCH_B), macro='cifar', num_classes=10)
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 32, 32, 3))
  variables = initializers.fast_init(model, 0, x, train=False)
  # Non-trivial batch-norm statistics, so that folding them is tested.
  variables = jax.tree.map(lambda v: v * 1.3 + 0.05, variables)
  proto = export.to_onnx(model, variables, ('B', 32, 32, 3))
  ops = [node.op_type for node in proto.graph.node]
  with blocks.conv_implementation('xla'):
    jaxpr = str(jax.make_jaxpr(lambda x: model.apply(variables, x,
                                                     train=False))(x))
  # Every convolution of the network is one Conv node (stem, the skips'
  # 1x1 projections, the block's three, the head), no matmul emulation.
  assert ops.count('Conv') == jaxpr.count('conv_general_dilated') >= 5
  assert 'Einsum' not in ops
  # A valid graph for other tools too (converters to TFLite or TensorRT):
  # ONNX's strict shape inference accepts it (jax2onnx's own intermediate
  # shapes are dropped, some being NHWC where the graph computes NCHW).
  import onnx  # pylint: disable=g-import-not-at-top
  onnx.checker.check_model(proto)
  onnx.shape_inference.infer_shapes(proto, strict_mode=True)
  session = export.onnxruntime_session(proto)
  for batch in (1, 3):  # the batch dimension is dynamic
    got = export.onnxruntime_forward(session, np.asarray(x[:batch]))()
    want = model.apply(variables, x[:batch], train=False)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@needs_onnx
def test_harness_times_onnxruntime_as_its_own_device():
  archs = np.array([_ARCH_A, _ARCH_B], np.int32)
  config = measure.MeasureConfig(runtime='onnxruntime', warmup=1,
                                 repeats_per_round=3, min_rounds=2,
                                 max_rounds=2)
  device = measure.measure_archs(archs, config, reference_rows=[0],
                                 name='here_onnxruntime', progress=False)
  assert np.all(np.isfinite(device.latency_ms))
  assert np.all(device.latency_ms > 0)
  assert list(device.meta['num_timings']) == [6, 6]
  assert str(device.meta['backend']) == 'onnxruntime_cpu'
  assert str(device.meta['runtime']) == 'onnxruntime'


@needs_onnx
def test_export_retrained_network_agrees_with_jax(tmp_path, monkeypatch):
  config = quickstart.get_config('smoke')
  config.retrain.steps_per_epoch = 5
  retrained = retrain.train_and_evaluate(
      config, _ARCH_A, str(tmp_path / 'retrain'), progress=False)
  out = tmp_path / 'retrain' / 'model.onnx'
  report = export.export_retrained(config, _ARCH_A, str(tmp_path / 'retrain'),
                                   str(out), progress=False)
  assert out.exists() and report['checkpoint_step'] == 5
  assert report['num_eval'] == 32
  assert report['accuracy_onnxruntime'] == report['accuracy_jax']
  assert report['accuracy_jax'] == retrained['accuracy']
  assert report['retrain_finished'] and report['agree']
  assert report['retrain_accuracy'] == retrained['accuracy']
  assert report['max_abs_logit_difference'] < 1e-3
  json.dumps(report)  # what experiments.export writes
  # A graph whose outputs are off is reported as not agreeing (the command
  # then exits with an error).
  real_session = export.onnxruntime_session

  class _Off:

    def __init__(self, proto):
      self._session = real_session(proto)

    def run(self, names, feed):
      out = self._session.run(names, feed)
      return [out[0] + 0.01 * (1.0 + np.abs(out[0]).max())]

  monkeypatch.setattr(export, 'onnxruntime_session', _Off)
  off = export.export_retrained(config, _ARCH_A, str(tmp_path / 'retrain'),
                                str(tmp_path / 'off.onnx'), progress=False)
  assert not off['agree']
  assert off['max_abs_logit_difference'] > (
      export.LOGIT_TOLERANCE * off['max_abs_logit'])


def test_load_trained_rejects_another_architecture(tmp_path):
  config = quickstart.get_config('smoke')
  config.retrain.steps_per_epoch = 1
  config.retrain.epochs = 1
  retrain.train_and_evaluate(config, _ARCH_A, str(tmp_path / 'r'),
                             progress=False)
  _, variables, step = retrain.load_trained(config, _ARCH_A,
                                                str(tmp_path / 'r'))
  assert step == 1 and 'batch_stats' in variables
  # Its settings.json names what differs: another architecture, another
  # retraining config (even one whose parameter shapes match).
  with pytest.raises(ValueError, match='another arch than'):
    retrain.load_trained(config, _ARCH_B, str(tmp_path / 'r'))
  other = quickstart.get_config('smoke')
  other.retrain.update(steps_per_epoch=1, epochs=1, lr=0.5)
  with pytest.raises(ValueError, match='another retrain.lr'):
    retrain.load_trained(other, _ARCH_A, str(tmp_path / 'r'))
  # Without settings.json (older workdirs) the shapes are still checked.
  os.remove(tmp_path / 'r' / retrain.SETTINGS_FILE)
  with pytest.raises(ValueError, match='not those of the architecture') as e:
    retrain.load_trained(config, _ARCH_B, str(tmp_path / 'r'))
  # One line, and no advice to remove the retraining's checkpoints.
  assert '\n' not in str(e.value) and 'remove' not in str(e.value)
  with pytest.raises(FileNotFoundError, match='experiments.train'):
    retrain.load_trained(config, _ARCH_A, str(tmp_path / 'none'))


def test_closed_loop_compares_only_files_of_the_same_runtime(
    tmp_path, file_measured_here):
  from configs import closed_loop as closed_loop_config
  from fbnet_jax import closed_loop
  path = str(tmp_path / 'ort.npz')
  device = file_measured_here(
      path, name='mine_onnxruntime', runtime='onnxruntime',
      device_kind=measure.device_kind('onnxruntime'))
  config = closed_loop_config.get_config('smoke')
  with pytest.raises(ValueError, match=r"field runtime is 'onnxruntime'.*"
                     r"would use 'jax'"):
    closed_loop.check_measured_here(config, device, path)
  config.measure.runtime = 'onnxruntime'
  closed_loop.check_measured_here(config, device, path)  # comparable
  assert closed_loop.measure_config(config).runtime == 'onnxruntime'
  assert 'mine_onnxruntime' in closed_loop.device_label(device)


@needs_onnx
def test_exported_graphs_are_cached_by_key(tmp_path):
  model = models.FBNetModel(tuple(_ARCH_A), macro='cifar')
  x = jnp.zeros((1, 32, 32, 3))
  variables = initializers.fast_init(model, 0, x, train=False)
  builds = []

  def build():
    builds.append(1)
    return export.to_onnx(model, variables, x.shape)

  first = export.cached(str(tmp_path), 'a', build)
  again = export.cached(str(tmp_path), 'a', build)
  assert first == again and len(builds) == 1
  assert len(list(tmp_path.glob('a_jax2onnx-*.onnx'))) == 1
  export.cached('', 'a', build)  # no cache: exported again
  assert len(builds) == 2


@needs_onnx
def test_mobilenet_v3_blocks_export_exactly():
  """Squeeze-excite, hard-sigmoid and h-swish (OFA's blocks) survive the
  export; the smallest OFA resolution keeps it quick."""
  space = spaces.get_space('ofa')
  arch = space.sample(np.random.default_rng(0), 1)[0]
  arch[-1] = 0  # the smallest resolution
  model = models.OFAModel(tuple(int(a) for a in arch), num_classes=10)
  x = jax.random.normal(jax.random.PRNGKey(0),
                        (2, model.input_size, model.input_size, 3))
  variables = initializers.fast_init(model, 0, x, train=False)
  # Batch norm and biases away from their neutral values, kernels as
  # initialised: scaling the kernels too saturated every squeeze-excite
  # gate (outputs ~1e15), where a wrong hard-sigmoid slope would pass.
  variables = jax.tree_util.tree_map_with_path(
      lambda p, v: v if 'kernel' in jax.tree_util.keystr(p) else
      v * 1.3 + 0.05, variables)
  proto = export.to_onnx(model, variables, ('B',) + x.shape[1:])
  got = export.onnxruntime_forward(export.onnxruntime_session(proto),
                                   np.asarray(x))()
  want = model.apply(variables, x, train=False)
  assert 1e-3 < np.abs(np.asarray(want)).max() < 1e3  # neither vanishing
  np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)  # nor exploding


def test_export_cli_rejects_a_result_of_another_macro(tmp_path):
  """experiments.export: an ImageNet-macro result.json with a CIFAR config
  is an error naming the file and field, not the CIFAR network exported."""
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  path = tmp_path / 'result.json'
  path.write_text(json.dumps({'space': 'fbnet', 'macro': 'imagenet',
                              'arch_index': _ARCH_A}))
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.export', f'--arch={path}',
       '--config=configs/quickstart.py:smoke'], cwd=root,
      capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert ("result.json: field macro is 'imagenet', the config's is 'cifar'"
          in proc.stderr), proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr
