"""``python -m agilecls.cli``: the same as the ``agilecls`` command."""

from . import app

app()
