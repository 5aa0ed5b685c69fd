"""NAS-Bench-201 cells (Dong & Yang, ICLR 2020): 6 edges x 5 operations.

A cell has 4 nodes; edge ``j<-i`` applies one op to node i's output and node j
sums its incoming edges. The canonical string lists the edges as
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (edges into node 1, 2, 3), which is
also the unit order here. The macro network (CIFAR setting, as measured by
HW-NAS-Bench): stem conv3x3 16 ch; 3 stages of 5 cells with 16/32/64 channels
at 32/16/8 pixels, joined by ResNet reduction blocks; BN-ReLU, pool, linear.
"""

from __future__ import annotations

import re

import numpy as np

from fbnet_jax.spaces import base

OP_NAMES = ('none', 'skip_connect', 'nor_conv_1x1', 'nor_conv_3x3',
            'avg_pool_3x3')
# (source node, target node) of each edge, in the canonical string's order.
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
# The cell's input->output paths, as indices into EDGES: 0->3, 0->1->3,
# 0->2->3, 0->1->2->3.
PATHS = ((3,), (0, 4), (1, 5), (0, 2, 5))
STAGES = ((16, 32), (32, 16), (64, 8))  # (channels, spatial size)
CELLS_PER_STAGE = 5
NUM_CLASSES = 10

_ARCH_RE = re.compile(r'^\|(\w+)~0\|\+\|(\w+)~0\|(\w+)~1\|\+\|(\w+)~0\|(\w+)~1\|'
                      r'(\w+)~2\|$')


def op_graph() -> tuple[np.ndarray, list[str]]:
  """The cell as a graph of operations (BRP-NAS / HELP, before their
  pruning of ``none`` and ``skip_connect`` nodes).

  Nodes: 0 = cell input, 1..6 = the six edge operations, 7 = cell output.
  An op node feeds another op node when the first one's target is the second
  one's source.

  Returns:
    adjacency: float32 [8, 8], adjacency[i, j] = 1 for a connection i -> j.
    node_names: names of the 8 nodes.
  """
  n = len(EDGES) + 2
  adj = np.zeros((n, n), np.float32)
  for e, (src, dst) in enumerate(EDGES):
    if src == 0:
      adj[0, e + 1] = 1
    if dst == 3:
      adj[e + 1, n - 1] = 1
    for f, (src2, _) in enumerate(EDGES):
      if src2 == dst:
        adj[e + 1, f + 1] = 1
  names = ['input'] + [f'edge{s}->{d}' for s, d in EDGES] + ['output']
  return adj, names


def live_edges(arch: np.ndarray) -> np.ndarray:
  """Edges that lie on some input->output path of non-``none`` operations."""
  arch = np.asarray(arch)
  on = arch != 0
  reach_fwd, reach_bwd = {0}, {3}
  for e, (s, d) in enumerate(EDGES):
    if on[e] and s in reach_fwd:
      reach_fwd.add(d)
  for e in reversed(range(len(EDGES))):
    s, d = EDGES[e]
    if on[e] and d in reach_bwd:
      reach_bwd.add(s)
  return np.array([on[e] and s in reach_fwd and d in reach_bwd
                   for e, (s, d) in enumerate(EDGES)])


class NASBench201Space(base.SearchSpace):
  """The 15,625 cells of NAS-Bench-201."""

  name = 'nasbench201'

  def __init__(self):
    super().__init__([base.Unit(f'edge{s}->{d}', OP_NAMES) for s, d in EDGES])

  # ---------------------------------------------------------------- strings
  def from_string(self, arch_str: str) -> np.ndarray:
    """``'|nor_conv_3x3~0|+|...|'`` -> int32 [6]."""
    m = _ARCH_RE.match(arch_str.strip())
    if not m:
      raise base.ArchitectureError(
          f'{arch_str!r} is not a NAS-Bench-201 string; expected '
          '|op~0|+|op~0|op~1|+|op~0|op~1|op~2| with ops from '
          f'{", ".join(OP_NAMES)}.')
    return self.validate(list(m.groups()), where=repr(arch_str))

  def to_string(self, arch) -> str:
    o = self.names(arch)
    return f'|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|'

  # ------------------------------------------------------------------ costs
  def _edge_cost(self, op: int, channels: int, size: int) -> tuple[float, float]:
    name = OP_NAMES[op]
    if name == 'nor_conv_1x1':
      return size * size * channels * channels, channels * channels + 2 * channels
    if name == 'nor_conv_3x3':
      return (size * size * channels * channels * 9,
              9 * channels * channels + 2 * channels)
    return 0., 0.

  def _fixed(self) -> tuple[float, float]:
    macs = 32 * 32 * 3 * 16 * 9
    params = 3 * 16 * 9 + 2 * 16
    for (cin, _), (cout, size) in zip(STAGES[:-1], STAGES[1:]):
      macs += size * size * cout * (cin * 9 + cout * 9 + cin)
      # Reduction block: two ReLU-conv-BN units (3x3) and a shortcut of
      # average pooling and a bias-free 1x1 convolution without BN.
      params += cin * cout * 9 + cout * cout * 9 + cin * cout + 4 * cout
    last = STAGES[-1][0]
    macs += last * NUM_CLASSES
    params += 2 * last + last * NUM_CLASSES + NUM_CLASSES
    return macs, params

  def cost_tables(self) -> tuple[np.ndarray, np.ndarray]:
    """Per-(edge, op) MACs and params summed over the 15 cells."""
    macs = np.zeros((6, 5))
    params = np.zeros((6, 5))
    for e in range(6):
      for o in range(5):
        for channels, size in STAGES:
          m, p = self._edge_cost(o, channels, size)
          macs[e, o] += CELLS_PER_STAGE * m
          params[e, o] += CELLS_PER_STAGE * p
    return macs, params

  def flops(self, arch) -> float:
    arch = self.validate(arch)
    macs, _ = self.cost_tables()
    return self._fixed()[0] + float(macs[np.arange(6), arch].sum())

  def params(self, arch) -> float:
    arch = self.validate(arch)
    _, params = self.cost_tables()
    return self._fixed()[1] + float(params[np.arange(6), arch].sum())

  def path_features(self, archs) -> np.ndarray:
    """BANANAS' path encoding (White et al., AAAI 2021): for each of the
    cell's four input->output paths, a one-hot of the sequence of
    operations along it, all zero when a ``none`` edge cuts it.

    4 + 16 + 16 + 64 = 100 features; what one-hot edge features miss is
    that a cell's accuracy depends on which paths stay connected.
    """
    archs = np.asarray(np.atleast_2d(archs), np.int64)
    blocks = []
    for path in PATHS:
      ops = archs[:, path] - 1  # the four non-none ops: 0..3
      alive = (ops >= 0).all(-1)
      index = (np.clip(ops, 0, 3) * 4 ** np.arange(len(path))[::-1]).sum(-1)
      block = np.zeros((len(archs), 4 ** len(path)), np.float32)
      block[np.arange(len(archs)), index] = alive
      blocks.append(block)
    return np.concatenate(blocks, axis=1)

  def unit_features(self):
    macs, params = self.cost_tables()
    names = (tuple(f'op_{o}' for o in OP_NAMES) +
             ('src0', 'src1', 'src2', 'dst1', 'dst2', 'dst3', 'macs', 'params'))
    feats = np.zeros((6, 5, len(names)), np.float32)
    for e, (s, d) in enumerate(EDGES):
      for o in range(5):
        feats[e, o, o] = 1
        feats[e, o, 5 + s] = 1
        feats[e, o, 8 + d - 1] = 1
        feats[e, o, 11] = macs[e, o] / macs.max()
        feats[e, o, 12] = params[e, o] / params.max()
    return feats, names
