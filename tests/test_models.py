"""Models: forward shapes, and real params / MACs against the analytic spaces.

Shapes and costs come from ``jax.eval_shape`` (nothing is computed); the few
forward passes use numpy-filled variables, since initialising on CPU spends
most of its time compiling one random sampler per parameter shape.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fbnet_jax import errors
from fbnet_jax import models
from fbnet_jax import spaces
from fbnet_jax.spaces import ofa


def _shapes(model, input_shape):
  x = jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)
  return jax.eval_shape(
      lambda inp: model.init_with_output(jax.random.key(0), inp, train=False),
      x)


def _variables(model, input_shape, seed=0):
  """Variables shaped as ``init`` makes them: random kernels, BN at init."""
  _, shapes = _shapes(model, input_shape)
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    if "'var'" in name or "'scale'" in name:
      return np.ones(leaf.shape, np.float32)
    if "'mean'" in name or "'bias'" in name:
      return np.zeros(leaf.shape, np.float32)
    fan_in = np.prod(leaf.shape[:-1])
    return (rng.standard_normal(leaf.shape) / np.sqrt(fan_in)).astype(
        np.float32)

  return jax.tree_util.tree_map_with_path(fill, shapes)


def _forward(model, variables, x):
  return jax.jit(lambda v, inp: model.apply(v, inp, train=False))(variables, x)


def test_fbnet_model_cifar_forward():
  arch = spaces.get_space('fbnet').sample(np.random.default_rng(0), 1)[0]
  model = models.FBNetModel(tuple(arch))
  x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 32, 32, 3)),
                  jnp.float32)
  logits = _forward(model, _variables(model, x.shape), x)
  chex.assert_shape(logits, (2, 100))
  chex.assert_tree_all_finite(logits)
  assert not np.allclose(logits[0], logits[1])


@pytest.mark.parametrize('macro,arch', [
    ('cifar', [0] * 22),
    ('cifar', [8, 8, 3, 1, 5, 7, 2, 8, 4, 6, 0, 8, 3, 1, 2, 8, 5, 7, 6, 4,
               8, 1]),
    ('imagenet', [5, 8, 8, 0, 3, 8, 7, 1, 8, 6, 2, 4, 8, 3, 0, 8, 5, 8, 7, 2,
                  6, 8]),
])
def test_fbnet_model_params_and_macs_match_the_space(macro, arch):
  space = spaces.get_space('fbnet', macro=macro)
  model = models.FBNetModel(tuple(arch), macro=macro)
  size = space.macro.input_size
  logits, variables = _shapes(model, (1, size, size, 3))
  assert logits.shape == (1, space.macro.num_classes)
  assert models.count_params(variables) == space.params(arch)
  assert models.count_macs(model, (1, size, size, 3)) == space.flops(arch)


def test_fbnet_model_arch_forms_and_errors():
  names = ['k3_e1'] * 21 + ['skip']
  names[2] = 'skip'
  model = models.FBNetModel(names, num_classes=10)
  assert model.arch == (0, 0, 8) + (0,) * 18 + (8,)
  logits, variables = _shapes(model, (1, 32, 32, 3))
  assert logits.shape == (1, 10)
  assert variables['params']['classifier']['kernel'].shape == (1504, 10)
  # An identity skip has no parameters; one that changes channels has some.
  assert 'layer2' not in variables['params']
  assert set(variables['params']['layer21']) == {'conv', 'bn'}
  with pytest.raises(spaces.ArchitectureError,
                     match=r'FBNetModel.arch: unit 3 \(layer3\)'):
    models.FBNetModel((0, 0, 0, 9) + (0,) * 18)
  with pytest.raises(spaces.ArchitectureError, match='22 units'):
    models.FBNetModel((0,) * 21)
  with pytest.raises(errors.InputError,
                     match="config.macro: unknown FBNet macro 'cifar10'"):
    models.FBNetModel((0,) * 22, macro='cifar10')


def _ofa_arch(depths, resolution, seed=0):
  """An OFA architecture with the given stage depths and resolution."""
  rng = np.random.default_rng(seed)
  ks = rng.choice(ofa.KERNELS, (1, 20))
  e = rng.choice(ofa.EXPANSIONS, (1, 20))
  arch = spaces.get_space('ofa').from_native(ks, e, [depths], [resolution])
  return tuple(int(a) for a in arch[0])


def test_ofa_model_forward_at_128():
  arch = _ofa_arch([2, 3, 4, 2, 3], 128)
  model = models.OFAModel(arch)
  assert model.input_size == 128
  x = jnp.asarray(np.random.default_rng(2).standard_normal((1, 128, 128, 3)),
                  jnp.float32)
  variables = _variables(model, x.shape)
  params = variables['params']
  assert {'stage1_block2', 'stage3_block4', 'stage5_block3'} <= set(params)
  assert 'stage1_block3' not in params and 'stage5_block4' not in params
  assert 'bias' not in params['feature_mix']  # OFA's feature mix has none
  logits = _forward(model, variables, x)
  chex.assert_shape(logits, (1, 1000))
  chex.assert_tree_all_finite(logits)


@pytest.mark.parametrize('depths,resolution', [
    ([2, 2, 2, 2, 2], 160), ([4, 4, 4, 4, 4], 224)])
def test_ofa_model_params_and_macs_match_the_space(depths, resolution):
  space = spaces.get_space('ofa')
  arch = _ofa_arch(depths, resolution, seed=sum(depths))
  model = models.OFAModel(arch)
  shape = (1, resolution, resolution, 3)
  logits, variables = _shapes(model, shape)
  assert logits.shape == (1, 1000)
  assert models.count_params(variables) == space.params(arch)
  assert models.count_macs(model, shape) == space.flops(arch)


def test_ofa_model_rejects_a_broken_stage_prefix():
  arch = list(_ofa_arch([4, 4, 4, 4, 4], 128))
  arch[2] = spaces.get_space('ofa').skip_index  # slot 3 skipped, 4 present
  with pytest.raises(spaces.ArchitectureError,
                     match='OFAModel.arch: a stage of OFA is a prefix'):
    models.OFAModel(tuple(arch))


@pytest.mark.parametrize('build,params_m,exact_params,macs_m', [
    # Paper (Howard et al. 2019, Table 3): 5.4M / 219M MAdds and 2.5M / 56M;
    # torchvision's implementations hold exactly 5,483,032 and 2,542,856.
    (models.mobilenet_v3_large, 5.4, 5_483_032, 219),
    (models.mobilenet_v3_small, 2.5, 2_542_856, 56),
])
def test_mobilenet_v3_reference_sizes(build, params_m, exact_params, macs_m):
  model = build()
  logits, variables = _shapes(model, (1, 224, 224, 3))
  assert logits.shape == (1, 1000)
  params = models.count_params(variables)
  assert abs(params / 1e6 - params_m) / params_m < 0.05
  assert params == exact_params
  macs = models.count_macs(model, (1, 224, 224, 3))
  assert abs(macs / 1e6 - macs_m) / macs_m < 0.02


def test_count_params_counts_the_params_collection_only():
  model = models.mobilenet_v3_small(num_classes=10)
  _, variables = _shapes(model, (1, 64, 64, 3))
  assert 'batch_stats' in variables
  only_params = {'params': variables['params']}
  assert models.count_params(variables) == models.count_params(only_params)
  with pytest.raises(ValueError, match='"params" collection'):
    models.count_params({'batch_stats': variables['batch_stats']})
