"""A plugin that cannot be imported."""

import edgekit_dependency_that_does_not_exist  # noqa: F401
