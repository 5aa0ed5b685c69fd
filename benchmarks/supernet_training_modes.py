r"""Which ways of training the quickstart supernet leave single paths that work.

    python -m benchmarks.supernet_training_modes [--workdir=runs/training_modes] \
        [--modes=gumbel,gumbel_tau0.6,...] [--num_random=8] \
        [--out=runs/training_modes.json]

The quickstart search (``configs/quickstart.py``: digits at 8x8, all 9
FBNet candidates, 5 epochs = 175 weight steps), weights only (no
architecture steps, the distribution stays uniform), under each mode:

- ``gumbel``: every example its own soft Gumbel sample, temperature
  5.0 x 0.8 per epoch (the quickstart's, ends at 2.0);
- ``gumbel_tau0.6``: the same, x 0.6 per epoch (ends at 0.65: nearly single
  paths in the last epochs);
- ``gumbel_hard``: straight-through hard samples (one path per example);
- ``uniform``: the whole batch one sub-network drawn uniformly per step
  (``config.search.weight_paths = 'uniform'``, SPOS);
- ``uniform_lr0.01``: the same at a fifth of the learning rate;
- ``fixed``: every step the same one sub-network (``uniform``'s first
  draw): a standalone network trained inside the supernet's code, the
  control that tells weight sharing from a fault of the single-path
  computation.

For each: training cross-entropy and accuracy per epoch, the mixture's
accuracy (``mixture_accuracy``) and, with inherited weights and batch-norm
statistics recalibrated for each, the evaluation-split accuracy of
``--num_random`` uniformly random architectures (the same ones for every
mode) and of ``fixed``'s sub-network. Each mode resumes in its own
subfolder of ``--workdir``. About 4 minutes a mode on the 2-core VM.
"""

import json
import os

from absl import app
from absl import flags
import numpy as np

from benchmarks import write_json
from configs import quickstart
from fbnet_jax import evolve
from fbnet_jax import search
from fbnet_jax import searcher as searcher_lib
from fbnet_jax import spaces

MODES = {
    'gumbel': {},
    'gumbel_tau0.6': {'search.tau_decay': 0.6},
    'gumbel_hard': {'search.hard': True},
    'uniform': {'search.weight_paths': 'uniform'},
    'uniform_lr0.01': {'search.weight_paths': 'uniform',
                       'optim.weight_lr': 0.01},
    'fixed': {'search.weight_paths': 'uniform'},
}

_WORKDIR = flags.DEFINE_string('workdir', 'runs/training_modes',
                               'One subfolder per mode.')
_MODES = flags.DEFINE_list('modes', list(MODES), 'Modes to run, in order.')
_NUM_RANDOM = flags.DEFINE_integer('num_random', 8,
                                   'Random architectures scored per mode.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the random architectures.')
_OUT = flags.DEFINE_string('out', 'runs/training_modes.json', 'Results.')


def mode_config(mode: str):
  config = quickstart.get_config()
  config.search.warmup_epochs = config.epochs  # weights only
  for key, value in MODES[mode].items():
    group, field = key.split('.')
    config[group][field] = value
  return config


def run_mode(mode: str, workdir: str, random_archs: np.ndarray) -> dict:
  config = mode_config(mode)
  sample_path = searcher_lib.Searcher.sample_path
  if mode == 'fixed':  # every step the sub-network of step 0
    searcher_lib.Searcher.sample_path = lambda self, step: sample_path(self, 0)
  try:
    result = search.train_and_evaluate(config, workdir, desc=mode)
    searcher = searcher_lib.Searcher(config)
    fixed_arch = sample_path(searcher, 0).argmax(-1)
  finally:
    searcher_lib.Searcher.sample_path = sample_path
  state = evolve.restore_supernet(searcher, workdir)
  limit = config.data.get('eval_limit')
  random_acc = [searcher.accuracy(state, a, limit) for a in random_archs]
  # A random architecture that is the fixed path is not a random one for
  # the fixed mode (before a fix of 2026-12-04, step 0's path was the first
  # draw of default_rng(config.seed), and so random_archs[0]).
  others = [acc for a, acc in zip(random_archs, random_acc)
            if not np.array_equal(a, fixed_arch)]
  with open(os.path.join(workdir, 'history.json')) as f:
    history = json.load(f)
  return {
      'overrides': MODES[mode],
      'paths': ("step 0's path at every step" if mode == 'fixed' else
                'one drawn per step' if
                config.search.weight_paths == 'uniform' else 'Gumbel'),
      'fixed_arch': fixed_arch.tolist(),
      'ce_by_epoch': [h['ce'] for h in history],
      'train_accuracy_by_epoch': [h['accuracy'] for h in history],
      'tau_by_epoch': [h['tau'] for h in history],
      'mixture_accuracy': result.get('mixture_accuracy'),
      'random_arch_accuracy': random_acc,
      'random_arch_accuracy_mean': float(np.mean(random_acc)),
      'random_arch_accuracy_mean_without_fixed_arch': float(np.mean(others)),
      'fixed_arch_accuracy': searcher.accuracy(state, fixed_arch, limit),
  }


def main(argv):
  del argv
  unknown = sorted(set(_MODES.value) - set(MODES))
  if unknown:
    raise app.UsageError(f'--modes: unknown {unknown}; expected some of '
                         f'{list(MODES)}.')
  random_archs = spaces.get_space('fbnet').sample(
      np.random.default_rng(_SEED.value), _NUM_RANDOM.value)
  out = {'command': 'python -m benchmarks.supernet_training_modes',
         'config': 'configs/quickstart.py, weights only (warmup_epochs = '
                   'epochs = 5)',
         'random_archs': random_archs.tolist(), 'modes': {}}
  for mode in _MODES.value:
    out['modes'][mode] = run_mode(mode, os.path.join(_WORKDIR.value, mode),
                                  random_archs)
    print(mode, json.dumps({k: v for k, v in out['modes'][mode].items()
                            if k != 'random_arch_accuracy'}))
    write_json(_OUT.value, out)


if __name__ == '__main__':
  app.run(main)
