"""Model families: importing this package registers every family with the registry."""

from colorizers.models import bigcolor, coloria, deoldify, exemplar, wallner, zhang  # noqa: F401
