"""Training recipes: one per catalogue model (networks, losses, optimisers, schedule, phases) for the one trainer.

The families live in this package's modules; this module is the catalogue, keyed by model id.
"""

from __future__ import annotations

from training.recipes.base import Recipe
from training.recipes.bigcolor import BigColorRecipe
from training.recipes.coloria import ColoriaRecipe
from training.recipes.deoldify import NoGANRecipe
from training.recipes.exemplar import ExemplarRecipe
from training.recipes.wallner import WallnerRecipe
from training.recipes.zhang import ZhangClassificationRecipe, ZhangHintsRecipe

RECIPES: dict[str, Recipe] = {
    r.model_id: r
    for r in (
        WallnerRecipe(
            "wallner-alpha",
            "overfit one picture (the tutorial's alpha demo): MSE on ab/128, RMSprop 1e-3, no augmentation",
            batch_size=1,
            cpu_batch_size=1,
            optimizer="rmsprop",
            ema_decay=0.99,
            augment=False,
            single_image=True,
            crop=None,
            cpu_crop=None,
            schedule="constant",
        ),
        WallnerRecipe(
            "wallner-beta",
            "MSE on ab/128, Adam 1e-3, flip/zoom/rotation/shear augmentation",
            batch_size=32,
            cpu_batch_size=8,
        ),
        WallnerRecipe(
            "wallner-full",
            "MSE on ab/128, the global embedding from the frozen pretrained classifier (compact) or trained jointly "
            "(tiny), Adam 1e-3",
            batch_size=32,
            cpu_batch_size=8,
        ),
        ZhangClassificationRecipe(
            "zhang-eccv16",
            "multinomial cross-entropy over 313 ab bins, soft-encoding (5 nearest, sigma 5), class rebalancing "
            "(lambda 0.5, prior from the training data), AdamW(0.9, 0.99) 3e-4",
            lr=3e-4,
            batch_size=32,
            cpu_batch_size=8,
            prepare_pictures=512,
        ),
        ZhangHintsRecipe(
            "zhang-siggraph17",
            "Huber on ab with simulated hints (geometric count p=1/8, Gaussian positions, 1-9 px patches), "
            "Adam(0.9, 0.99) 3e-4",
            lr=3e-4,
            batch_size=32,
            cpu_batch_size=8,
            find_unused_parameters=True,
        ),
        *(
            NoGANRecipe(
                model_id,
                "NoGAN: generator pretraining (L1 RGB + ab), critic pretraining (BCE), GAN phase with critic "
                "threshold 0.65",
            )
            for model_id in ("deoldify-artistic", "deoldify-stable")  # the same recipe; stable's encoder is bigger
        ),
        BigColorRecipe(
            "bigcolor",
            "L1 reconstruction (RGB and ab) for 15 % of the budget, then hinge GAN + L1 (exported), Adam(0, 0.999) "
            "G 1e-4 / D 3e-5, EMA 0.999",
            lr=1e-4,
            batch_size=16,
            cpu_batch_size=8,
            schedule="constant",
        ),
        ExemplarRecipe(
            "exemplar",
            "L1 on ab with the reference another crop/scale/mirror of the same photo (and another photo as an "
            "unrelated reference); trains the confidence gate only, Adam 1e-2",
            lr=1e-2,
            batch_size=16,
            cpu_batch_size=8,
            ema_decay=0.99,
            half=False,
        ),
        ColoriaRecipe(
            "coloria-cnn",
            "MAE on RGB, Adam 1e-3, flip/zoom/rotation/shear augmentation, 160 px",
            batch_size=32,
            cpu_batch_size=16,
            cpu_crop=None,
        ),
    )
}


def get_recipe(model_id: str) -> Recipe:
    try:
        return RECIPES[model_id]
    except KeyError:
        raise KeyError(f"no training recipe for {model_id!r}; recipes: {', '.join(sorted(RECIPES))}") from None
