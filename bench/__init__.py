"""Benchmarks of agilecls, grouped by the question they answer, run from the repository root as
modules: ``python -m bench.GROUP.NAME --help``.

- :mod:`bench.quality`: how good the models are, against what a user would pick instead;
- :mod:`bench.defaults`: why each default is what it is, chosen on validation rows;
- :mod:`bench.speed`: how fast, and at what cost, on this machine.

Every script parses its options with :func:`bench.common.bench_parser`, applies them with
:func:`bench.common.setup` and writes its JSON under ``bench/results/`` through
:func:`bench.common.write_results`, which records the command line, a UTC timestamp and the
machine's facts beside the numbers. The scripts run offline: importing this package sets
``HF_HUB_OFFLINE=1`` (unless the environment sets it) before a script imports anything that reads
it; ``--online`` lets a script reach the Hugging Face hub.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
