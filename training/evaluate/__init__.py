"""Evaluation (``python -m training evaluate``): every model colourises the greyscale of the same colour photos.

The outputs are scored against the photos (mean CIEDE2000, PSNR, colourfulness, latency) next to a grey-output
baseline, and the report folder gets report.json, report.md, grid.png and delta_e00.png.

The modules, in the order an evaluation uses them: ``inputs`` (the photos and the models to evaluate),
``scoring`` (the scores of one output, their means, the acceptance verdicts), ``colorize`` (each model, and the
grey baseline, over the photos through the serving pipeline), ``pictures`` (the image grid and the bar chart),
``markdown`` (report.md and the docs page), ``report`` (the whole evaluation, writing the report folder) and
``cli`` (the command line). Callers import from those modules.
"""
