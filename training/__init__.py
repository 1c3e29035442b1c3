"""Training service: dataset builder, recipes, trainer, evaluation, packaging and the training API."""
