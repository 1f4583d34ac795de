"""fitgpt's machinery: everything the scripts at the repository root (train.py, sample.py, bench.py,
plan.py, export.py, data/*/prepare.py) call into. One module per concern; see docs/architecture.md.

Nothing is imported here, so `import fitgpt.memory` stays free of torch (plan.py relies on it).
"""
