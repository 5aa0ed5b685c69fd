r"""Why a single path scores chance in a short soft DNAS search.

    python -m benchmarks.oneshot_paths --workdir=runs/quickstart \
        [--out=runs/oneshot_paths.json]

Takes a finished search of ``configs/quickstart.py`` (its last checkpoint
and ``result.json``) and scores, on the digits' evaluation split:

- the path from the mixture the search trained to the derived architecture:
  every layer weighted ``(1 - lam) * p + lam * onehot(derived)`` for
  ``lam`` in ``--lams`` (``p``: the final architecture distribution, no
  noise; ``lam = 0`` is ``mixture_accuracy``, ``lam = 1`` the derived
  architecture);
- the derived architecture with its branches scaled as in the mixture: in
  a residual layer ``x + p_c * block_c(x)`` (``'residual'``), also a
  non-residual layer's output times ``p_c`` (``'all'``); each is a
  standalone network whose last batch norm's affine is scaled by ``p_c``.

Each row with the search's batch-norm statistics and with them
recalibrated for its weights (10 batches of the 'weights' split, as
``Searcher.recalibrate``). Writes ``--out``.
"""

import json
import os

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from configs import quickstart
from fbnet_jax import data as data_lib
from fbnet_jax import search
from fbnet_jax import searcher as searcher_lib
from fbnet_jax import workdirs
from fbnet_jax.spaces import fbnet

_WORKDIR = flags.DEFINE_string('workdir', 'runs/quickstart',
                               'A finished quickstart search.')
_LAMS = flags.DEFINE_list('lams', ['0', '0.25', '0.5', '0.75', '0.9', '1'],
                          'Steps from the mixture (0) to the derived arch (1).')
_OUT = flags.DEFINE_string('out', 'runs/oneshot_paths.json', 'Results.')


def scaled_weights(arch, probs, scope):
  """``[U, C]`` weights: the derived ``arch`` with each chosen branch
  scaled by its probability (residual layers only, or ``'all'``)."""
  skip = fbnet.OP_NAMES.index('skip')
  shapes = fbnet.layer_shapes(fbnet.MACROS['cifar'])
  w = np.zeros(probs.shape, np.float32)
  for unit, c in enumerate(arch):
    cin, cout, stride, _ = shapes[unit]
    a = probs[unit, c]
    if stride == 1 and cin == cout:  # out = x * sum(w) + sum(w_c y_c)
      w[unit, c] = a if c != skip else 1.0
      w[unit, skip] += 1.0 - a if c != skip else 0.0
    else:
      w[unit, c] = a if scope == 'all' else 1.0
  return w


def main(argv):
  del argv
  workdir = _WORKDIR.value
  config = quickstart.get_config()
  searcher = searcher_lib.Searcher(config)
  state = searcher.init_state()
  manager = ocp.CheckpointManager(os.path.abspath(
      os.path.join(workdir, 'checkpoints')))
  step = manager.latest_step()
  state = manager.restore(step, args=ocp.args.StandardRestore(state))
  with open(os.path.join(workdir, search.RESULT_FILE)) as f:
    result = json.load(f)
  arch = np.asarray(result['arch_index'])
  probs = searcher.probs(state)
  onehot = searcher.space.one_hot(arch)

  def recalibrated(weights, num_batches=10):
    sums = jax.tree.map(jnp.zeros_like, state.batch_stats)
    batches = data_lib.train_batches(
        config.data.name, split='weights', batch_size=config.batch_size,
        seed=config.seed, image_size=config.data.image_size, augment=False)
    for _ in range(num_batches):
      batch = jax.tree.map(searcher.put_batch, next(batches))
      sums = searcher.calib_step(state, batch, jnp.asarray(weights), sums)
    return state.replace(batch_stats=jax.tree.map(
        lambda x: x / num_batches, sums))

  def score(name, weights):
    row = {'weights': name,
           'search_bn': searcher._accuracy(state, weights, None),  # pylint: disable=protected-access
           'recalibrated_bn': searcher._accuracy(  # pylint: disable=protected-access
               recalibrated(weights), weights, None)}
    print(f'{name:>22}: search BN {row["search_bn"]:.3f}, recalibrated '
          f'{row["recalibrated_bn"]:.3f}', flush=True)
    return row

  rows = [score(f'lam={lam}', (1 - float(lam)) * probs + float(lam) * onehot)
          for lam in _LAMS.value]
  rows += [score(f'derived, scaled {s}', scaled_weights(arch, probs, s))
           for s in ('residual', 'all')]
  out = {'workdir': workdir, 'step': int(step), 'arch': result['arch'],
         'chosen_probability': probs[np.arange(len(arch)), arch].tolist(),
         'rows': rows, 'environment': workdirs.environment()}
  os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
  workdirs.write_json(_OUT.value, out)


if __name__ == '__main__':
  app.run(main)
