"""Benchmarks of agilecls, run from the repository root as modules: ``python -m bench.NAME --help``.

Every script writes its JSON under ``bench/results/`` through :func:`bench.common.write_results`,
which records the command line, a UTC timestamp and the machine's facts beside the numbers.
"""
