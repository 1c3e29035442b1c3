"""``python -m training.benchmark_models``: runs the command line of ``training.benchmark_models.cli``."""

from training.benchmark_models.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
