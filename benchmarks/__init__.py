"""Scripts that print ratios measured in one run. Run each as a module from the repository root, nothing to set:

    .venv/bin/python -m benchmarks.<name> --help

(the root is then on Python's path, so `benchmarks.prefill` and `vlmscale` import from this checkout).
tests/test_benchmarks_cli.py runs every module here with --help and with a bad argument value.
"""
