"""Benchmarks (``make bench``): how the cost of each stage grows with the work, against its
floor, measured in one run and written to BENCHMARKS.md.

- ``harness``: the synthetic data, the sandbox and warehouse, and one cycle of the whole job;
- ``stages``: the Python stages, each run as a script in a process of its own (its peak RSS
  is its own; with another revision on ``PYTHONPATH`` it measures that revision's code);
- ``report``: medians with min and max, targets, and the tables.
"""
