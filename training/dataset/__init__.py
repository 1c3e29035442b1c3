"""Training data set builder (``python -m training dataset``): packages, photos, 256x256 crops, split, manifest.

The modules, in the order a build uses them: ``photos`` (the photo list and the photos extracted from it),
``fetch`` (packages downloaded once into a cache), ``split`` (which split a photo belongs to), ``crops``
(cutting a photo into crops), ``manifest`` (the record of a build and its hash), ``build`` (the whole build,
each step skipping what is already done) and ``cli`` (the command line). Callers import from those modules.
"""
