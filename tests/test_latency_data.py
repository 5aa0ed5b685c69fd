"""Latency data: bundled files, splits, device files and every bad input."""

from unittest import mock

import numpy as np
import pytest

from meta import latency_data as ld


def test_bundled_files_and_splits():
  for space, split in ld.SPLITS.items():
    data = ld.load_space_data(space)
    assert data.latency_ms.shape == (len(data.devices), len(data.archs))
    assert np.all(data.latency_ms[:, :split.query_rows[1]] > 0)
    assert len(data.reference_rows) == 10
    groups = [set(split.meta_train), set(split.meta_valid),
              set(split.meta_test)]
    for g in groups:
      assert g <= set(data.devices)
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or
                groups[1] & groups[2])


def test_bundled_device_rows():
  dev = ld.bundled_device('nasbench201', 'pixel2')
  data = ld.load_space_data('nasbench201')
  # All references are support rows, not query rows, even where they sit
  # outside the pool (NAS-Bench-201's row 1462 is in the query range).
  refs = dev.reference_rows()
  assert len(refs) == 10 and not dev.is_query[refs].any()
  assert 1462 in dev.meta['benchmark_rows'][refs]
  # A reference architecture inside the query range is not scored.
  rows = dev.meta['benchmark_rows']
  assert not np.isin(rows[dev.is_query], data.reference_rows).any()
  assert dev.is_query.sum() == 1000 - np.isin(
      np.arange(900, 1900), data.reference_rows).sum()


def test_unknown_device_and_space():
  with pytest.raises(ld.DeviceFileError,
                     match=r"Unknown device 'raspi5' for space 'fbnet' \(did "
                     r"you mean 'raspi4'\?\)"):
    ld.bundled_device('fbnet', 'raspi5')
  with pytest.raises(ld.DeviceFileError, match="Unknown device 'tpu_v9'.*raspi4"):
    ld.bundled_device('fbnet', 'tpu_v9')
  with pytest.raises(ld.DeviceFileError, match="Unknown space 'darts'"):
    ld.load_space_data('darts')


def test_trim_mask_keeps_the_middle():
  lat = np.arange(100.)[::-1]
  keep = ld.trim_mask(lat)
  assert keep.sum() == 80
  assert lat[keep].min() == 10 and lat[keep].max() == 89


def _device(tmp_path, filename='dev.npz', **overrides):
  rng = np.random.default_rng(0)
  arrays = dict(space=np.array('fbnet'),
                arch=rng.integers(0, 9, (30, 22)).astype(np.int8),
                latency_ms=rng.uniform(5, 10, 30).astype(np.float32),
                is_query=np.arange(30) >= 20)
  arrays.update(overrides)
  arrays = {k: v for k, v in arrays.items() if v is not None}
  path = str(tmp_path / filename)
  np.savez(path, **arrays)
  return path


def test_query_rows_that_repeat_a_support_architecture_are_not_scored(
    tmp_path):
  rng = np.random.default_rng(0)
  arch = rng.integers(0, 9, (30, 22)).astype(np.int8)
  arch[25] = arch[3]  # query row 25 measures non-query row 3's network again
  arch[27] = arch[26]  # two query rows alike: both still held out
  with mock.patch.object(ld.logging, 'warning') as warn:
    dev = ld.load_device_file(_device(tmp_path, arch=arch))
  assert not dev.is_query[25] and dev.is_query[26] and dev.is_query[27]
  assert dev.is_query.sum() == 9
  assert 'dev.npz' in warn.call_args[0][1] and warn.call_args[0][2] == 1
  # Every architecture with more than one row is said (rows 3 and 25, 26
  # and 27), not only the query rows that are no longer held out.
  repeated = warn.call_args_list[0][0]
  assert 'more than one row' in repeated[0]
  assert repeated[3:] == (2, '3, 25')


def test_a_reference_measured_twice_is_one_reference_and_never_a_sample(
    tmp_path):
  from meta import tasks as tasks_lib
  refs = ld.load_space_data('fbnet').reference_archs
  rng = np.random.default_rng(0)
  arch = np.concatenate([refs, refs[:1],  # reference 0 again, row 10
                         rng.integers(0, 9, (14, 22))]).astype(np.int8)
  ms = rng.uniform(5, 10, len(arch)).astype(np.float32)
  dev = ld.load_device_file(_device(tmp_path, arch=arch, latency_ms=ms,
                                    is_query=np.arange(len(arch)) >= 20))
  np.testing.assert_array_equal(dev.reference_rows(), np.arange(10))
  np.testing.assert_array_equal(dev.sample_rows(), np.arange(11, 20))
  # Support draws of 9 samples: all 9 other rows, never the repeat.
  for task in tasks_lib.make_tasks(dev, num_samples=9, seeds=[0, 1, 2],
                                   trim=False):
    assert len(task.support_archs) == 19
    assert (task.support_archs == refs[0]).all(1).sum() == 1
    np.testing.assert_array_equal(task.reference_ms, ms[:10])


def test_latencies_that_look_like_seconds_and_a_directory(tmp_path):
  with mock.patch.object(ld.logging, 'warning') as warn:
    ld.load_device_file(_device(tmp_path, latency_ms=np.linspace(.006, .01, 30)))
  assert 'if these are seconds, multiply them by 1000' in warn.call_args[0][0]
  with mock.patch.object(ld.logging, 'warning') as warn:
    ld.load_device_file(_device(tmp_path, latency_ms=np.linspace(2e7, 4e7, 30)))
  assert 'if these are microseconds (or nanoseconds)' in warn.call_args[0][0]
  # A file written only to be checked (measure --from_timings) is named
  # by what it was made from, in warnings and errors alike.
  made = _device(tmp_path, 'made.checking.npz',
                 latency_ms=np.linspace(.006, .01, 30))
  with mock.patch.object(ld.logging, 'warning') as warn:
    ld.load_device_file(made, label='phone.npz (from timings.csv)')
  assert warn.call_args[0][1] == 'phone.npz (from timings.csv)'
  made = _device(tmp_path, 'made.checking.npz', latency_ms=np.full(30, -1.0))
  with pytest.raises(ld.DeviceFileError, match=r"^phone\.npz \(from timings"
                     r"\.csv\): field 'latency_ms': row 0 is -1\.0"):
    ld.load_device_file(made, label='phone.npz (from timings.csv)')
  with mock.patch.object(ld.logging, 'warning') as warn:
    ld.load_device_file(_device(tmp_path))  # 5-10 ms
  warn.assert_not_called()
  with pytest.raises(ld.DeviceFileError, match=r'dir\.npz: a directory'):
    (tmp_path / 'dir.npz').mkdir()
    ld.load_device_file(str(tmp_path / 'dir.npz'))


def test_a_device_file_path_must_end_in_npz(tmp_path):
  dev = ld.load_device_file(_device(tmp_path))
  with pytest.raises(ld.DeviceFileError, match=r"does not end in \.npz.*"
                     r"mine\.dat\.npz"):
    ld.save_device_file(str(tmp_path / 'mine.dat'), dev)
  assert not list(tmp_path.glob('mine*'))


def test_device_file_round_trip(tmp_path):
  path = _device(tmp_path)
  dev = ld.load_device_file(path)
  assert dev.name == 'dev' and dev.space == 'fbnet'
  assert dev.archs.shape == (30, 22) and dev.is_query.sum() == 10
  out = str(tmp_path / 'copy.npz')
  ld.save_device_file(out, dev)
  again = ld.load_device_file(out)
  np.testing.assert_array_equal(again.archs, dev.archs)
  np.testing.assert_allclose(again.latency_ms, dev.latency_ms)
  np.testing.assert_array_equal(again.is_query, dev.is_query)


def test_a_device_of_int64_architectures_finds_its_references():
  bundled = ld.bundled_device('fbnet', 'raspi4')
  mine = ld.Device('mine', 'fbnet', bundled.archs.astype(np.int64),
                   bundled.latency_ms.astype(np.float64),
                   bundled.is_query.astype(np.int8))
  assert (bundled.reference_rows() >= 0).all()  # all 10 measured
  np.testing.assert_array_equal(mine.reference_rows(),
                                bundled.reference_rows())
  np.testing.assert_array_equal(mine.sample_rows(), bundled.sample_rows())
  assert (mine.archs.dtype, mine.latency_ms.dtype, mine.is_query.dtype) == (
      np.int32, np.float32, bool)


def test_get_device_takes_a_bundled_name_or_a_device_file(tmp_path):
  bundled = ld.get_device('fbnet', 'raspi4')
  np.testing.assert_array_equal(
      bundled.latency_ms, ld.bundled_device('fbnet', 'raspi4').latency_ms)
  path = _device(tmp_path)
  assert ld.get_device('fbnet', path).name == 'dev'
  with pytest.raises(ld.DeviceFileError,
                     match=r"dev\.npz: field 'space': is 'fbnet', but "
                     r"'nasbench201' was asked for"):
    ld.get_device('nasbench201', path)


def test_ofa_device_file_round_trip(tmp_path):
  dev = ld.bundled_device('ofa', 'titan_rtx_64')
  small = ld.Device('mine', 'ofa', dev.archs[:40], dev.latency_ms[:40],
                    np.arange(40) >= 30)
  path = str(tmp_path / 'ofa.npz')
  ld.save_device_file(path, small)
  np.testing.assert_array_equal(ld.load_device_file(path).archs, small.archs)


@pytest.mark.parametrize('overrides, field, message', [
    (dict(space=None), 'space', 'missing'),
    (dict(space=np.array('darts')), 'space', "'darts' is unknown"),
    (dict(latency_ms=None), 'latency_ms', 'missing'),
    (dict(arch=None), 'arch', 'missing'),
    (dict(arch=np.zeros((30, 6), np.int8)), 'arch', r'expected shape \[30, 22\]'),
    # Rows that disagree: neither field alone is wrong; named as one count.
    (dict(arch=np.zeros((29, 22), np.int8)), 'latency_ms',
     "30 latencies for the 29 rows of field 'arch'"),
    (dict(arch=np.zeros((29, 6), np.int8)), 'arch', '30 rows like latency'),
    (dict(arch=np.zeros((30, 22), np.float32)), 'arch', 'expected integers'),
    (dict(arch=np.full((30, 22), 9, np.int8)), 'arch', r'unit 0 .*0\.\.8'),
    (dict(arch=np.full((30, 22), -1, np.int8)), 'arch', 'choice index -1'),
    (dict(latency_ms=np.full(30, np.nan)), 'latency_ms', 'finite latency > 0'),
    (dict(latency_ms=np.full(30, -1.)), 'latency_ms', r'row 0 is -1\.0'),
    (dict(latency_ms=np.r_[np.ones(29), 0.]), 'latency_ms', 'row 29'),
    (dict(latency_ms=np.ones((30, 2))), 'latency_ms', '1-D'),
    (dict(is_query=np.ones(30, int)), 'is_query', 'expected bool'),
    (dict(is_query=np.ones(30, bool)), 'is_query', 'every row'),
    # A misspelt optional field is refused, not kept as metadata.
    (dict(is_query=None, is_querry=np.arange(30) >= 20), 'is_querry',
     "did you mean 'is_query'"),
    (dict(Is_Query=np.arange(30) >= 20), 'Is_Query', "did you mean 'is_query'"),
    # Object arrays: the file's error, not numpy's pickle message.
    (dict(notes=np.array([{'a': 1}], dtype=object)), 'notes', 'dtype object'),
    (dict(latency_ms=np.full(30, 5., dtype=object)), 'latency_ms',
     'dtype object'),
    # Range-checked before the int32 cast (2**32 + 1 would wrap to 1).
    (dict(arch=np.full((30, 22), 2 ** 32 + 1, np.int64)), 'arch',
     'choice index 4294967297'),
    # ... and an unsigned one above 2**63 is shown as it is, not wrapped.
    (dict(arch=np.full((30, 22), 2 ** 63 + 5, np.uint64)), 'arch',
     'choice index 9223372036854775813'),
    (dict(latency_ms=np.full(30, 5 + 1j)), 'latency_ms',
     'expected real numbers'),
    (dict(space=np.array(['fbnet'])), 'space', 'expected one string'),
    (dict(name=np.array(['a', 'b'])), 'name', 'expected one string'),
    (dict(index=np.arange(3)), 'index', r'expected int \[30\] >= 0'),
    (dict(index=np.full(30, -1)), 'index', 'min -1'),
    (dict(index=np.zeros(0, int)), 'index', r'expected int \[30\] >= 0'),
    (dict(index=np.array(['7'] * 30)), 'index', 'got <U1'),
    (dict(index=np.full(30, 5000)), 'index', r'max 5000; expected rows of '
     r'the fbnet benchmark list, 0\.\.4999'),
    # Valid float64, but not as the float32 the loader keeps.
    (dict(latency_ms=np.r_[np.ones(29), 1e300]), 'latency_ms',
     r"row 29 is 1e\+300, outside float32's range .* it would be inf"),
    (dict(latency_ms=np.r_[1e-300, np.ones(29)]), 'latency_ms',
     r'row 0 is 1e-300, outside float32'),
    (dict(name=np.array(' ')), 'name', 'is empty'),
])
def test_bad_device_files(tmp_path, overrides, field, message):
  path = _device(tmp_path, **overrides)
  with pytest.raises(ld.DeviceFileError) as e:
    ld.load_device_file(path)
  assert path in str(e.value)
  assert f"'{field}'" in str(e.value)
  assert e.match(message)


@pytest.mark.parametrize('field, change, message', [
    ('ks', lambda a: a[:, :19], r'expected shape \[40, 20\]'),
    ('d', lambda a: a[:, 0], r'expected shape \[40, 5\]'),
    ('r', lambda a: a[:, None], r'expected shape \[40\]'),
    ('ks', lambda a: a + 0.9, 'expected integers, got dtype float'),
    ('r', lambda a: a + 2, r"OFA field 'r', row 0: values must be in"),
    # One architecture field short: that field is named, not latency_ms.
    ('ks', lambda a: a[:39], r'expected shape \[40, 20\]'),
])
def test_bad_ofa_device_files(tmp_path, field, change, message):
  dev = ld.bundled_device('ofa', 'titan_rtx_64')
  good = str(tmp_path / 'good.npz')
  ld.save_device_file(good, ld.Device('mine', 'ofa', dev.archs[:40],
                                      dev.latency_ms[:40], np.arange(40) >= 30))
  with np.load(good) as npz:
    data = dict(npz)
  data[field] = change(data[field])
  path = str(tmp_path / 'bad.npz')
  np.savez(path, **data)
  with pytest.raises(ld.DeviceFileError) as e:
    ld.load_device_file(path)
  assert path in str(e.value) and f"'{field}'" in str(e.value)
  assert e.match(message)


def test_not_an_npz(tmp_path):
  path = tmp_path / 'x.npz'
  path.write_text('hello')
  with pytest.raises(ld.DeviceFileError,
                     match=r"not an .npz archive \(it starts with b'hello'\)"):
    ld.load_device_file(str(path))
  path.write_bytes(b'PK\x03\x04' + b'\x00' * 10)  # a zip cut short
  with pytest.raises(ld.DeviceFileError, match='not a readable .npz'):
    ld.load_device_file(str(path))
  with pytest.raises(ld.DeviceFileError, match='no such device file'):
    ld.load_device_file(str(tmp_path / 'missing.npz'))
  with pytest.raises(ld.DeviceFileError, match='an empty path'):
    ld.load_device_file('')


def test_a_misplaced_decimal_point_is_warned_about(tmp_path):
  lat = np.linspace(1.0, 2.0, 30)
  lat[7] = 13773.0  # 1.3773 typed without its point
  with mock.patch.object(ld.logging, 'warning') as warn:
    ld.load_device_file(_device(tmp_path, latency_ms=lat))
  (args,) = [c[0] for c in warn.call_args_list if 'decimal point' in c[0][0]]
  assert args[2] == 1 and args[5:7] == (7, 13773.0)
  # The bundled devices' own spread is not: NAS-Bench-201's nearly empty
  # cells are thousands of times faster than its median cell.
  for space, name in (('fbnet', 'fpga'), ('nasbench201', 'pixel3')):
    bundled = ld.bundled_device(space, name)
    path = str(tmp_path / f'{space}.npz')
    ld.save_device_file(path, bundled)
    with mock.patch.object(ld.logging, 'warning') as warn:
      ld.load_device_file(path)
    assert not [c for c in warn.call_args_list if 'decimal' in c[0][0]]


def test_a_path_without_npz_points_to_the_file(tmp_path):
  path = _device(tmp_path)
  with pytest.raises(ld.DeviceFileError,
                     match=rf'no such device file \(there is {path}\)'):
    ld.load_device_file(path[:-len('.npz')])


def test_a_damaged_member_is_called_damaged(tmp_path):
  path = _device(tmp_path)
  with np.load(path) as npz:  # where latency_ms's bytes lie in the zip
    data = {k: npz[k] for k in npz.files}
  raw = bytearray(open(path, 'rb').read())
  at = bytes(raw).index(data['latency_ms'].tobytes()[:16])
  raw[at:at + 8] = bytes(8)  # zeros where the latencies were: a bad CRC
  open(path, 'wb').write(bytes(raw))
  with pytest.raises(ld.DeviceFileError,
                     match=r"field 'latency_ms': cannot be read \(BadZipFile"
                     r'.*the file is damaged'):
    ld.load_device_file(path)


def test_constant_latencies(tmp_path, caplog):
  """Support rows that all measured the same are warned about; query rows
  that did cannot be ranked, an error where they are scored."""
  from meta import tasks  # pylint: disable=g-import-not-at-top
  is_query = np.arange(30) >= 20
  path = _device(tmp_path, latency_ms=np.where(is_query, np.arange(30.) + 1,
                                               7.0), is_query=is_query)
  with caplog.at_level('WARNING'):
    ld.load_device_file(path)
  assert 'all 20 non-query rows measured 7 ms' in caplog.text
  path = _device(tmp_path, latency_ms=np.where(is_query, 3.0,
                                               np.arange(30.) + 1),
                 is_query=is_query)
  with pytest.raises(ld.DeviceFileError,
                     match=r"field latency_ms: its 10 query rows all measured "
                     '3 ms; a Spearman correlation needs latencies that '
                     'differ'):
    tasks.make_tasks(ld.load_device_file(path), num_samples=5, seeds=[0],
                     trim=False)


def test_npy_is_not_a_device_file(tmp_path):
  path = str(tmp_path / 'x.npy')
  np.save(path, np.ones(3))
  with pytest.raises(ld.DeviceFileError, match='not an .npz archive') as e:
    ld.load_device_file(path)
  assert path in str(e.value)


def test_extra_metadata_fields_are_kept(tmp_path):
  # Fields unlike the format's (experiments.measure writes these) stay
  # metadata, even those sharing a prefix with latency_ms.
  extra = dict(latency_min_ms=np.full(30, 4.), latency_iqr_ms=np.ones(30),
               latency_median_ms=np.full(30, 5.), hostname=np.array('h'),
               index=np.arange(30), backend=np.array('cpu'))
  dev = ld.load_device_file(_device(tmp_path, **extra))
  assert set(dev.meta) == set(extra)


def test_another_spaces_architecture_field_is_warned_about(tmp_path):
  dev = ld.bundled_device('ofa', 'titan_rtx_64')
  path = str(tmp_path / 'ofa.npz')
  ld.save_device_file(path, ld.Device('mine', 'ofa', dev.archs[:40],
                                      dev.latency_ms[:40], np.arange(40) >= 30))
  with np.load(path) as npz:
    data = dict(npz)
  np.savez(path, arch=np.zeros((40, 22), np.int8), **data)
  with mock.patch.object(ld.logging, 'warning') as warn:
    assert 'arch' in ld.load_device_file(path).meta
  assert warn.call_args[0][1:] == (path, 'arch', 'ofa', 'ks, e, d, r')


def test_too_few_query_rows_say_how_to_get_more():
  """Measured here: measure more; timed elsewhere: fill the plan's rows."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  from meta import tasks  # pylint: disable=g-import-not-at-top
  dev = ld.bundled_device('fbnet', 'raspi4')
  dev = dataclasses.replace(dev, is_query=np.arange(len(dev.archs)) == 4999)
  with pytest.raises(ld.DeviceFileError, match=r'1 query rows; at least 2 .*'
                     r'measure more with experiments\.measure'):
    tasks.make_tasks(dev, num_samples=5, seeds=[0], trim=False)
  dev = dataclasses.replace(dev, meta={'runtime': np.array('elsewhere')})
  with pytest.raises(ld.DeviceFileError, match=r"fill their rows of its "
                     r'timings\.csv, or export a plan with more'):
    tasks.make_tasks(dev, num_samples=5, seeds=[0], trim=False)


def test_index_is_checked_against_the_benchmark_list(tmp_path):
  listed = ld.load_space_data('fbnet').archs
  path = _device(tmp_path, arch=listed[100:130], index=np.arange(100, 130))
  with mock.patch.object(ld.logging, 'warning') as warn:
    ld.load_device_file(path)
  warn.assert_not_called()
  path = _device(tmp_path, arch=listed[100:130], index=np.arange(30))
  with mock.patch.object(ld.logging, 'warning') as warn:
    ld.load_device_file(path)
  assert 'field index: %d of %d rows name a benchmark-list row of another ' \
      'architecture' in warn.call_args[0][0]
  assert warn.call_args[0][2:] == (30, 30, 0, 0)


def test_missing_references_are_reported(tmp_path):
  dev = ld.bundled_device('fbnet', 'raspi4')
  rows = dev.reference_rows()
  keep = np.ones(len(dev.archs), bool)
  keep[rows[:3]] = False
  partial = ld.Device('p', 'fbnet', dev.archs[keep], dev.latency_ms[keep],
                      dev.is_query[keep])
  got = partial.reference_rows()
  assert (got < 0).sum() == 3 and np.all(got[3:] >= 0)


def test_string_fields_may_be_bytes(tmp_path):
  path = _device(tmp_path, space=np.array(b'fbnet'), name=np.array(b'mine'),
                 index=np.arange(30))
  dev = ld.load_device_file(path)
  assert (dev.space, dev.name) == ('fbnet', 'mine')
  np.testing.assert_array_equal(dev.meta['index'], np.arange(30))
