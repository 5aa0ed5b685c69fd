"""Multi-host data parallelism, on two local CPU processes joined by
``jax.distributed`` (as ``experiments.search --multihost`` runs on several
hosts): an evaluation batch is read whole by every process, each
contributing its own rows; a training stream is read in part, each process
only its rows of each batch. Either way the sharded batch is the global
batch, each row once."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np

_SCRIPT = textwrap.dedent('''
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    jax.distributed.initialize(coordinator_address=sys.argv[1],
                               num_processes=2, process_id=int(sys.argv[2]))
    from configs import quickstart
    from fbnet_jax import data, searcher as searcher_lib
    config = quickstart.get_config('smoke')
    config.search.ops = ('skip',)
    searcher = searcher_lib.Searcher(config)
    batch = next(data.train_batches(
        config.data.name, split='weights', batch_size=config.batch_size,
        seed=config.seed, image_size=config.data.image_size))
    labels = searcher.put_batch(batch['label'])
    total = jax.jit(jnp.sum, out_shardings=searcher.replicated)(labels)
    local = next(data.train_batches(
        config.data.name, split='weights', batch_size=config.batch_size,
        seed=config.seed, image_size=config.data.image_size,
        shard=searcher.shard))
    from_local = searcher.put_local(local['label'])
    print(json.dumps({
        'local': local['label'].tolist(),
        'local_sum': int(jax.jit(jnp.sum, out_shardings=searcher.replicated)(
            from_local)),
        'local_shards': [[sh.index[0].start, np.asarray(sh.data).tolist()]
                         for sh in from_local.addressable_shards],
        'devices': len(jax.devices()), 'global': batch['label'].tolist(),
        'shape': list(labels.shape), 'sum': int(total),
        'shards': [[sh.index[0].start, np.asarray(sh.data).tolist()]
                   for sh in labels.addressable_shards]}))
''')


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def test_two_processes_split_the_global_batch(tmp_path):
  script = tmp_path / 'host.py'
  script.write_text(_SCRIPT)
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             XLA_FLAGS='--xla_force_host_platform_device_count=2',
             PYTHONPATH=os.path.dirname(os.path.dirname(
                 os.path.abspath(__file__))))
  address = f'localhost:{_free_port()}'
  procs = [subprocess.Popen([sys.executable, str(script), address, str(i)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env) for i in range(2)]
  outs = []
  for p in procs:
    out, err = p.communicate(timeout=240)
    assert p.returncode == 0, err[-2000:]
    outs.append(json.loads(out.strip().splitlines()[-1]))
  batch = outs[0]['global']
  assert outs[1]['global'] == batch  # one stream, read by every process
  rows = {}
  for out in outs:
    assert out['devices'] == 4 and out['shape'] == [len(batch)]
    assert out['sum'] == int(np.sum(batch))  # a global reduction
    for start, labels in out['shards']:
      rows[start] = labels
  # Each row of the global batch once, where the mesh puts it.
  assert [x for start in sorted(rows) for x in rows[start]] == batch
  # Read in part: each process read only its half, and the global array
  # made from the halves is the same.
  half = len(batch) // 2
  assert outs[0]['local'] == batch[:half] and outs[1]['local'] == batch[half:]
  assert {start: labels for out in outs
          for start, labels in out['local_shards']} == rows
  assert all(out['local_sum'] == int(np.sum(batch)) for out in outs)
