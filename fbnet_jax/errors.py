"""The project's error for bad input."""


class InputError(ValueError):
  """A setting, file or workdir given to a run that does not fit it.

  The message starts with what it refuses (the file, ``config.<field>`` or
  ``--flag``) and says what was expected; the commands print it as one
  line, not a traceback (``experiments/cli.py``). The project's specific
  errors (a bad architecture, device file or latency setting) subclass it.
  """


def and_list(names) -> str:
  """``'fbnet, ofa and nasbench201'``: names for a message, in order."""
  names = [str(n) for n in names]
  return (', '.join(names[:-1]) + ' and ' + names[-1] if len(names) > 1
          else ''.join(names))
