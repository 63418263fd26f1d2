"""Registers the clean-up passes."""

import edgekit
from edgekit.plugins.cleanup.dead_code import eliminate_dead_code
from edgekit.plugins.cleanup.fold_constants import fold_constants


@edgekit.hookimpl
def edgekit_register_passes():
    return [fold_constants, eliminate_dead_code]
