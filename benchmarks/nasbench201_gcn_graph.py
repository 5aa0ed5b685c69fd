"""Model selection, on meta-valid devices only, of the NAS-Bench-201 GCN's
cell graph: 'fixed' (the default: the same wiring for every cell) against
'pruned' (closer to HELP's: links of ``none`` edges cut, the global node
only receives; ``meta.encodings.cell_graph``).

    python -m benchmarks.nasbench201_gcn_graph --workdir=runs/gcn_select \\
        --out=benchmarks/results/<machine>_<date>/nasbench201_gcn_graph.json

Meta-trains ``configs/help_nasbench201.py`` with each graph and each seed
and records the best meta-valid Spearman (what model selection sees). The
meta-test devices are not evaluated: the choice is made without them.
"""

import json
import os
import time

from absl import app
from absl import flags

from configs import help_nasbench201
from meta import train

_WORKDIR = flags.DEFINE_string('workdir', 'runs/gcn_select',
                               'Parent of one meta-training per run.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1'], 'Meta-training seeds.')
_OUT = flags.DEFINE_string('out', '', 'JSON result path.')


def main(argv):
  del argv
  out = {}
  for graph in ('fixed', 'pruned'):
    for seed in map(int, _SEEDS.value):
      config = help_nasbench201.get_config()
      config.model.gcn_graph = graph
      config.seed = seed
      workdir = os.path.join(_WORKDIR.value, f'{graph}_s{seed}')
      t0 = time.time()
      train.train_and_evaluate(config, workdir, progress=True)
      with open(os.path.join(workdir, train.HISTORY)) as f:
        history = json.load(f)
      out[f'{graph}_s{seed}'] = {
          'graph': graph, 'seed': seed,
          'best_valid_spearman': history['best_valid_spearman'],
          'best_episode': history['best_episode'],
          'seconds': time.time() - t0}
  runs = list(out.values())
  for graph in ('fixed', 'pruned'):
    scores = [r['best_valid_spearman'] for r in runs if r['graph'] == graph]
    out[f'{graph}_mean'] = sum(scores) / len(scores)
    print(f'{graph}: meta-valid Spearman {out[f"{graph}_mean"]:.5f} '
          f'(seeds: {", ".join(f"{s:.5f}" for s in scores)})')
  if _OUT.value:
    with open(_OUT.value, 'w') as f:
      json.dump(out, f, indent=1)


if __name__ == '__main__':
  app.run(main)
