"""Measuring elsewhere: ONNX models out, a timings.csv back, a device file."""

import csv
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from fbnet_jax import elsewhere
from fbnet_jax import errors
from fbnet_jax import export
from fbnet_jax import spaces
from meta import latency_data

ROOT = pathlib.Path(__file__).resolve().parents[1]
needs_onnx = pytest.mark.skipif(not export.available(),
                                reason="needs the 'onnx' extra")


def _archs():
  # One real block each, the rest skips: exports in seconds.
  archs = np.full((3, 22), 8, np.int32)
  archs[0, 5] = 0
  archs[1, 9] = 7
  archs[2, 3] = 2
  return archs


def _fill(csv_path, latencies):
  with open(csv_path, newline='') as f:
    rows = list(csv.DictReader(f))
  for row, value in zip(rows, latencies):
    row['latency_ms'] = value
  with open(csv_path, 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp('phone'))
  space = spaces.space_for('fbnet', 'cifar')
  elsewhere.export_plan(directory, space, _archs(),
                        np.array([False, False, True]), progress=False)
  return directory


@pytest.fixture
def plan(exported, tmp_path):
  """A fresh copy of the exported folder for each test: (folder, CSV)."""
  directory = str(tmp_path / 'plan')
  shutil.copytree(exported, directory)
  return directory, os.path.join(directory, elsewhere.TIMINGS_FILE)


@needs_onnx
def test_exported_models_run_and_the_csv_lists_them(plan):
  directory, csv_path = plan
  import onnx  # pylint: disable=g-import-not-at-top
  with open(csv_path, newline='') as f:
    rows = list(csv.DictReader(f))
  assert [r['model'] for r in rows] == [elsewhere.model_name(i)
                                        for i in range(3)]
  assert [r['is_query'] for r in rows] == ['0', '0', '1']
  assert {r['input_shape'] for r in rows} == {'1x32x32x3'}
  assert all(r['latency_ms'] == '' for r in rows)
  for r in rows:
    path = os.path.join(directory, r['model'])
    onnx.shape_inference.infer_shapes(onnx.load(path), strict_mode=True)
    session = export.onnxruntime_session(path)
    logits = export.onnxruntime_forward(
        session, np.zeros((1, 32, 32, 3), np.float32))()
    assert logits.shape == (1, 100) and np.isfinite(logits).all()


@needs_onnx
def test_an_export_resumes_and_refuses_another_plan(plan):
  directory, csv_path = plan
  space = spaces.space_for('fbnet', 'cifar')
  before = {f: os.path.getmtime(os.path.join(directory, f))
            for f in os.listdir(directory) if f.endswith('.onnx')}
  _fill(csv_path, ['1.5', '', ''])  # timings being filled are kept
  elsewhere.export_plan(directory, space, _archs(),
                        np.array([False, False, True]), progress=False)
  assert before == {f: os.path.getmtime(os.path.join(directory, f))
                    for f in before}
  with open(csv_path) as f:
    assert '1.5' in f.read()
  other = _archs()
  other[0, 0] = 1
  with pytest.raises(errors.InputError, match='holds another plan'):
    elsewhere.export_plan(directory, space, other,
                          np.array([False, False, True]), progress=False)


@needs_onnx
def test_filled_timings_make_a_device_file(plan, tmp_path, caplog):
  _, csv_path = plan
  _fill(csv_path, ['2.5', '', '3.25'])
  device = elsewhere.device_from_timings(csv_path, 'my_phone')
  assert 'left out' in caplog.text  # a row not measured is said, not hidden
  np.testing.assert_array_equal(device.archs, _archs()[[0, 2]])
  np.testing.assert_array_equal(device.latency_ms, [2.5, 3.25])
  np.testing.assert_array_equal(device.is_query, [False, True])
  out = str(tmp_path / 'my_phone.npz')
  latency_data.save_device_file(out, device)
  again = latency_data.load_device_file(out)
  assert again.name == 'my_phone' and again.space == 'fbnet'
  np.testing.assert_array_equal(again.archs, device.archs)
  assert str(again.meta['runtime']) == 'elsewhere'
  assert str(again.meta['macro']) == 'cifar'


@needs_onnx
@pytest.mark.parametrize('latencies, message', [
    (['2.5', 'fast', '3'], r"line 3: column latency_ms is 'fast'"),
    (['2.5', '-1', '3'], r"line 3: column latency_ms is '-1'"),
    (['', '', ''], 'empty on every row'),
    # A decimal comma, quoted by the spreadsheet: named.
    (['2.5', '1,5', '3'], r"line 3: column latency_ms is '1,5'; expected "
     'milliseconds, a number > 0 with a decimal point, not a comma'),
])
def test_bad_timings_name_the_line_and_column(plan, latencies, message):
  _, csv_path = plan
  _fill(csv_path, latencies)
  with pytest.raises(errors.InputError, match=message):
    elsewhere.device_from_timings(csv_path)


@needs_onnx
def test_timings_of_another_plan_are_refused(plan, tmp_path):
  directory, csv_path = plan
  with open(csv_path) as f:
    lines = f.read().splitlines()
  short = tmp_path / 'short'
  short.mkdir()
  (short / elsewhere.PLAN_FILE).write_bytes(
      pathlib.Path(directory, elsewhere.PLAN_FILE).read_bytes())
  (short / elsewhere.TIMINGS_FILE).write_text('\n'.join(lines[:-1]) + '\n')
  with pytest.raises(errors.InputError, match='no row for 1 of the plan'):
    elsewhere.device_from_timings(str(short / elsewhere.TIMINGS_FILE))
  alone = tmp_path / 'alone.csv'
  alone.write_text('\n'.join(lines) + '\n')
  with pytest.raises(errors.InputError, match='no plan.npz beside it'):
    elsewhere.device_from_timings(str(alone))
  # Another plan of the same size (same model names, is_query and
  # reference columns): told apart by the plan column.
  other = tmp_path / 'other'
  other.mkdir()
  with np.load(pathlib.Path(directory, elsewhere.PLAN_FILE)) as npz:
    settings = dict(npz)
  settings['arch'] = settings['arch'].copy()
  settings['arch'][0, 0] = 0  # one op changed
  np.savez(other / elsewhere.PLAN_FILE, **settings)
  _fill(csv_path, ['2.5', '2.75', '3.25'])
  (other / elsewhere.TIMINGS_FILE).write_text(pathlib.Path(csv_path).read_text())
  with pytest.raises(errors.InputError, match='this one is of another plan'):
    elsewhere.device_from_timings(str(other / elsewhere.TIMINGS_FILE))
  # A CSV of older code, without the plan column, is read as before.
  with open(csv_path, newline='') as f:
    rows = [r[:len(elsewhere.COLUMNS)] for r in csv.reader(f)]
  with open(csv_path, 'w', newline='') as f:
    csv.writer(f).writerows(rows)
  assert len(elsewhere.device_from_timings(csv_path).archs) == 3


@needs_onnx
def test_measure_command_reads_timings_back(plan, tmp_path):
  _, csv_path = plan
  _fill(csv_path, ['2.5', '2.75', '3.25'])
  out = tmp_path / 'phone.npz'
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.measure',
       f'--from_timings={csv_path}', '--name=phone', f'--out={out}'],
      cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert '3 measured architectures (1 query)' in proc.stdout
  assert '10 of 10 reference architectures missing' in proc.stdout
  assert latency_data.load_device_file(str(out)).name == 'phone'


@needs_onnx
def test_timings_saved_by_a_spreadsheet_are_read(plan):
  # A byte-order mark, spaces around fields, CRLF, rows sorted by latency,
  # a blank row: what saving from a spreadsheet does.
  _, csv_path = plan
  with open(csv_path, newline='') as f:
    rows = list(csv.reader(f))
  header, body = rows[0], rows[1:]
  ms = header.index('latency_ms')
  body[0][ms], body[1][ms], body[2][ms] = '3.0', ' 1.5 ', '2.0'
  body.sort(key=lambda r: float(r[ms]))
  text = '\r\n'.join(', '.join(r) for r in [header] + body + [[''] * 7])
  with open(csv_path, 'w', encoding='utf-8-sig', newline='') as f:
    f.write(text + '\r\n')
  device = elsewhere.device_from_timings(csv_path)
  np.testing.assert_array_equal(device.archs, _archs())
  np.testing.assert_array_equal(device.latency_ms, [3.0, 1.5, 2.0])


@needs_onnx
@pytest.mark.parametrize('edit, message', [
    (lambda rows: rows.__setitem__(2, rows[1]), 'model model_0000.onnx again'),
    (lambda rows: rows.pop(), 'no row for 1 of the plan'),
    (lambda rows: rows[1].__setitem__(3, '1'),
     'column is_query is .1. for model_0000.onnx; the plan says 0'),
    (lambda rows: rows[1].__setitem__(1, 'other.onnx'),
     "column model is 'other.onnx'"),
    # Two rows' models swapped (their row column kept).
    (lambda rows: (rows[1].__setitem__(1, 'model_0001.onnx'),
                   rows[2].__setitem__(1, 'model_0000.onnx')),
     r"column row is '0' for model_0001.onnx; expected 1"),
    (lambda rows: [r.__setitem__(-1, '0123456789ab') for r in rows[1:]],
     r"column plan is '0123456789ab', .*plan.npz is plan '[0-9a-f]{12}'; "
     'expected the timings.csv that --export_onnx wrote beside'),
])
def test_timings_that_are_not_the_plans_are_refused(plan, edit, message):
  _, csv_path = plan
  _fill(csv_path, ['2.5', '2.75', '3.25'])
  with open(csv_path, newline='') as f:
    rows = list(csv.reader(f))
  edit(rows)
  with open(csv_path, 'w', newline='') as f:
    csv.writer(f).writerows(rows)
  with pytest.raises(errors.InputError, match=message):
    elsewhere.device_from_timings(csv_path)


@needs_onnx
def test_separators_a_spreadsheet_may_use_are_named(plan):
  _, csv_path = plan
  _fill(csv_path, ['2.5', '2.75', '3.25'])
  with open(csv_path, newline='') as f:
    rows = list(csv.reader(f))
  with open(csv_path, 'w', newline='') as f:
    csv.writer(f, delimiter='\t').writerows(rows)
  with pytest.raises(errors.InputError, match='saved with tabs: save as CSV '
                     'with commas'):
    elsewhere.device_from_timings(csv_path)
  # An unquoted decimal comma splits the number: more fields than columns.
  text = pathlib.Path(csv_path).read_text().replace('\t', ',')
  pathlib.Path(csv_path).write_text(text.replace(',2.75,', ',2,75,'))
  with pytest.raises(errors.InputError, match=r"line 3: 1 more field\(s\) "
                     r"than the header \('[0-9a-f]{12}'\); expected 7 \(a "
                     'decimal comma'):
    elsewhere.device_from_timings(csv_path)


@needs_onnx
def test_only_query_rows_timed_is_refused(plan):
  _, csv_path = plan
  _fill(csv_path, ['', '', '3.25'])
  with pytest.raises(errors.InputError, match='only on query rows'):
    elsewhere.device_from_timings(csv_path)


@needs_onnx
def test_measure_command_refuses_flags_it_would_ignore(plan, tmp_path):
  _, csv_path = plan
  _fill(csv_path, ['2.5', '2.75', '3.25'])
  out = tmp_path / 'kept.npz'
  out.write_bytes(b'a file that must survive a refusal')
  for args, message in (
      ([f'--from_timings={csv_path}', '--runtime=onnxruntime'],
       'error: --from_timings: --runtime not used with it'),
      ([f'--from_timings={csv_path}', '--batch_size=4'],
       'error: --from_timings: --batch_size not used with it'),
  ):
    proc = subprocess.run(
        [sys.executable, '-m', 'experiments.measure', *args, f'--out={out}'],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(message)
  assert out.read_bytes() == b'a file that must survive a refusal'
