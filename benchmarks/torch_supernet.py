"""The same FBNet supernet in eager PyTorch, for a side-by-side speed check.

Written the way the public PyTorch FBNet/DNAS code is: nine candidate
blocks per layer (``nn.Conv2d`` with groups, BN, ReLU, channel shuffle), the
outputs summed with per-example Gumbel-softmax weights; a weight step (SGD,
cross-entropy) and an architecture step (Adam, cross-entropy + latency under
the raspi4 lookup table). Used by ``benchmarks/supernet_speed.py --torch``;
torch is imported only here (it is not a dependency of the project).
"""

import time

import numpy as np

from fbnet_jax.spaces import fbnet


def _build(macro_name, ops, num_classes, device):
  from torch import nn  # pylint: disable=g-import-not-at-top

  class Shuffle(nn.Module):
    def __init__(self, groups):
      super().__init__()
      self.groups = groups

    def forward(self, x):
      b, c, h, w = x.shape
      return x.view(b, self.groups, c // self.groups, h, w).transpose(
          1, 2).reshape(b, c, h, w)

  def block(op, shape):
    cin, cout, stride, _ = shape
    spec = fbnet.parse_op(op)
    if spec is None:
      if stride == 1 and cin == cout:
        return nn.Identity()
      return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                           nn.BatchNorm2d(cout), nn.ReLU())
    mid = cin * spec.expansion
    layers = [nn.Conv2d(cin, mid, 1, groups=spec.groups, bias=False),
              nn.BatchNorm2d(mid), nn.ReLU()]
    if spec.groups > 1:
      layers.append(Shuffle(spec.groups))
    layers += [nn.Conv2d(mid, mid, spec.kernel, stride, spec.kernel // 2,
                         groups=mid, bias=False), nn.BatchNorm2d(mid),
               nn.ReLU(),
               nn.Conv2d(mid, cout, 1, groups=spec.groups, bias=False),
               nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers)

  class Mixed(nn.Module):
    def __init__(self, shape):
      super().__init__()
      self.cands = nn.ModuleList([block(op, shape) for op in ops])
      self.residual = shape.stride == 1 and shape.in_channels == (
          shape.out_channels)
      self.is_block = [fbnet.parse_op(op) is not None for op in ops]

    def forward(self, x, w):
      out = 0
      for c, (cand, is_block) in enumerate(zip(self.cands, self.is_block)):
        y = cand(x)
        if is_block and self.residual:
          y = y + x
        out = out + w[:, c, None, None, None] * y
      return out

  class Supernet(nn.Module):
    def __init__(self):
      super().__init__()
      m = fbnet.MACROS[macro_name]
      self.stem = nn.Sequential(
          nn.Conv2d(3, m.stem_channels, 3, m.stem_stride, 1, bias=False),
          nn.BatchNorm2d(m.stem_channels), nn.ReLU())
      self.layers = nn.ModuleList([Mixed(s) for s in fbnet.layer_shapes(m)])
      self.head = nn.Sequential(
          nn.Conv2d(m.stage_channels[-1], m.head_channels, 1, bias=False),
          nn.BatchNorm2d(m.head_channels), nn.ReLU())
      self.fc = nn.Linear(m.head_channels, num_classes)

    def forward(self, x, w):
      x = self.stem(x)
      for l, layer in enumerate(self.layers):
        x = layer(x, w[:, l])
      return self.fc(self.head(x).mean((2, 3)))

  return Supernet().to(device)


def time_steps(macro, ops, batch, image_size, repeats, num_classes=10):
  """Median seconds of a weight step and an architecture step."""
  import torch  # pylint: disable=g-import-not-at-top
  from fbnet_jax import latency  # pylint: disable=g-import-not-at-top

  device = 'cuda' if torch.cuda.is_available() else 'cpu'
  torch.backends.cudnn.benchmark = True  # PyTorch's fastest eager setting
  net = _build(macro, ops, num_classes, device)
  theta = torch.zeros(22, len(ops), device=device, requires_grad=True)
  with np.load(latency.LUT_FILE) as npz:
    cols = [fbnet.OP_NAMES.index(o) for o in ops]
    table = torch.tensor(npz['raspi4_rel'][:, cols], dtype=torch.float32,
                         device=device)
  w_opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
  a_opt = torch.optim.Adam([theta], lr=0.01)
  x = torch.randn(batch, 3, image_size, image_size, device=device)
  y = torch.randint(0, num_classes, (batch,), device=device)
  ce = torch.nn.CrossEntropyLoss()

  def sample():
    g = -torch.log(-torch.log(torch.rand(batch, *theta.shape,
                                         device=device)))
    return torch.softmax((theta + g) / 1.0, -1)

  def weight_step():
    w = sample().detach()
    loss = ce(net(x, w), y)
    w_opt.zero_grad()
    loss.backward()
    w_opt.step()

  def arch_step():
    w = sample()
    lat = (w * table).sum((1, 2))
    loss = ce(net(x, w), y) + 0.1 * torch.log(lat).mean()
    a_opt.zero_grad()
    loss.backward()
    a_opt.step()

  out = {}
  for kind, step in (('weight', weight_step), ('arch', arch_step)):
    for _ in range(3):  # warm-up (cuDNN autotune, allocator)
      step()
    times = []
    for _ in range(repeats):
      if device == 'cuda':
        torch.cuda.synchronize()
      t0 = time.perf_counter()
      step()
      if device == 'cuda':
        torch.cuda.synchronize()
      times.append(time.perf_counter() - t0)
    out[kind] = float(np.median(times))
  return out
