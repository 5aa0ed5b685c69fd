r"""Speed of meta-training and of adaptation + prediction (issue: HELP).

    python -m benchmarks.meta_speed [--episodes=4000] [--out=runs/meta_speed.json]

Meta-trains the FBNet predictor at HELP's size (4000 episodes, 8 tasks, 2
inner steps, second order) and times it wall-clock, compilation included;
then times adaptation to one device (10 references + 10 samples) plus
prediction of 10,000 architectures, after compilation (median of 20 runs).
"""

import json
import os
import platform
import tempfile
import time

from absl import app
from absl import flags
import jax
import numpy as np

import benchmarks
from configs import help_fbnet
from fbnet_jax import spaces
from meta import latency_data
from meta import train

_EPISODES = flags.DEFINE_integer('episodes', 4000, 'Meta-training episodes.')
_OUT = flags.DEFINE_string('out', 'runs/meta_speed.json', 'Result file.')


def main(argv):
  del argv
  config = help_fbnet.get_config()
  config.meta.num_episodes = _EPISODES.value
  assert config.meta.tasks_per_episode == 8 and config.meta.inner_steps == 2
  assert not config.meta.first_order
  with tempfile.TemporaryDirectory() as workdir:
    t0 = time.perf_counter()
    predictor = train.train_and_evaluate(config, workdir)
    train_s = time.perf_counter() - t0
    with open(os.path.join(workdir, train.HISTORY)) as f:
      steady = json.load(f)['episodes_per_s_compiled']

  dev = latency_data.bundled_device('fbnet', 'raspi4')
  rng = np.random.default_rng(0)
  support = np.r_[dev.reference_rows(),
                  rng.choice(np.nonzero(~dev.is_query)[0], 10, replace=False)]
  archs = latency_data.load_space_data('fbnet').archs
  candidates = archs[rng.integers(0, len(archs), 10_000)]
  probs = spaces.get_space('fbnet').one_hot(candidates)

  def adapt_and_predict():
    adapted = predictor.adapt(dev.archs[support], dev.latency_ms[support])
    return jax.block_until_ready(adapted.predict_ms_soft(probs))

  adapt_and_predict()  # compile
  times = []
  for _ in range(20):
    t0 = time.perf_counter()
    adapt_and_predict()
    times.append(time.perf_counter() - t0)
  adapt_s = float(np.median(times))
  result = {
      'machine': f'{platform.node()} ({os.cpu_count()} CPUs, '
                 f'{jax.devices()[0].platform})',
      'meta_train_episodes': _EPISODES.value,
      'meta_train_wall_s_including_compile': train_s,
      'meta_train_episodes_per_s_overall': _EPISODES.value / train_s,
      'meta_train_episodes_per_s_steady': steady,
      'adapt_plus_predict_10k_s': adapt_s,
      'predictions_per_s': 10_000 / adapt_s,
  }
  print(json.dumps(result, indent=1))
  benchmarks.write_json(_OUT.value, result)


if __name__ == '__main__':
  app.run(main)
