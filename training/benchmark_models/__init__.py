"""Model benchmark (``python -m training.benchmark_models``, ``make bench``): size, compute and CPU time.

It counts the parameters, fp16 weight size and MACs of every model variant, times the served variant's model
pass on the CPU, and splits the time a 12-megapixel and a 1-megapixel photo spend in each stage of the
inference path. The report is JSON (docs/benchmarks/models.json), optionally with markdown tables next to it.

The modules: ``counting`` (parameters, fp16 bytes, MACs), ``timing`` (repeated wall-clock timings and their
summary), ``photo`` (the synthetic test photo), ``inference`` (the model pass and the photo time split),
``report`` (the whole benchmark as a JSON-ready dict), ``tables`` (the report as markdown and as terminal
text) and ``cli`` (the command line; ``__main__`` runs it). Callers import from those modules.
"""
