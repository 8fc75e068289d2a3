"""connrad against Orthanc: STOW-RS throughput and QIDO-RS latency, same workload, same run.

Run with ``make bench`` or ``.venv/bin/python -m bench.run --help``.
"""
