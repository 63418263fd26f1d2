"""An example third-party edgekit plugin: the ``merge-transposes`` pass.

Rewrite: ``Transpose(Transpose(x, perm=p1), perm=p2)`` becomes ``Transpose(x, perm=p1∘p2)``, or
nothing at all when the composed permutation is the identity (exporters that convert NHWC models
leave such pairs behind). It is written with onnxscript's pattern rewriter through
``edgekit.model.rewrite``, the way first-party passes match patterns.
"""

from __future__ import annotations

import edgekit


def _transpose_pair(op, x, perm1, perm2):
    return op.Transpose(op.Transpose(x, perm=perm1), perm=perm2)


def _merged(op, x, perm1, perm2):
    composed = [perm1.value[axis] for axis in perm2.value]
    if composed == list(range(len(composed))):
        return op.Identity(x)
    return op.Transpose(x, perm=composed)


@edgekit.model_pass("merge-transposes", atol=0.0, rtol=0.0)
def merge_transposes(model, context):
    """Merge consecutive Transpose nodes into one (or none)."""
    from onnxscript.rewriter import pattern

    from edgekit.model import rewrite

    model, matches = rewrite(model, [pattern.RewriteRule(_transpose_pair, _merged)])
    if matches:
        context.note("merged Transpose pairs", matches=matches)
    return model


@edgekit.hookimpl
def edgekit_register_passes():
    return [merge_transposes]
