"""``edgekit inspect``: what a model contains, what a target's back end can run of it, and the
structure plugins recognise in it (``edgekit_describe_model``: one table per plugin)."""

from __future__ import annotations

from typing import Any

from edgekit.context import BuildContext
from edgekit.registry import Registry


def inspect_model(model_text: str, registry: Registry, target_name: str | None,
                  input_shapes: list[str]) -> dict[str, Any]:
    from edgekit.frontends import ModelSource, export_to_onnx
    from edgekit.model import (fix_input_shapes, graph_inputs, infer_shapes, model_stats, node_macs, numpy_dtype,
                               op_key, tensor_dims, value_shapes)

    target = registry.target(target_name) if target_name else None
    context = BuildContext(target=target, registry=registry, options={"input_shapes": input_shapes})
    source = ModelSource.parse(model_text)
    _, model = export_to_onnx(source, context)
    if input_shapes:
        model = fix_input_shapes(model, input_shapes, source.text)
    try:
        shapes = value_shapes(infer_shapes(model, strict=False))
    except Exception:  # shapes are informative here: dynamic models still get listed
        shapes = value_shapes(model)
    backend = registry.get("backends", target.backend) if target else None
    supported = backend.supported_ops(target) if backend else None
    ops: dict[str, dict[str, Any]] = {}
    for node in model.graph.node:
        entry = ops.setdefault(op_key(node), {"count": 0, "macs": 0, "nodes": []})
        entry["count"] += 1
        entry["macs"] += node_macs(node, shapes)
        entry["nodes"].append(node.name)
        if supported is not None:
            entry["supported"] = op_key(node) in supported
    descriptions, warnings = describe_model(model, context)
    return {
        "model": source.text,
        "inputs": [{"name": v.name, "shape": tensor_dims(v), "dtype": numpy_dtype(v).name}
                   for v in graph_inputs(model)],
        "outputs": [{"name": v.name, "shape": tensor_dims(v), "dtype": numpy_dtype(v).name}
                    for v in model.graph.output],
        "stats": model_stats(model).as_dict(),
        "ops": dict(sorted(ops.items())),
        "target": target.name if target else None,
        "backend": backend.name if backend else None,
        "supported_ops": sorted(supported) if supported is not None else None,
        "descriptions": descriptions,
        "warnings": warnings,
    }


def describe_model(model, context: BuildContext) -> tuple[list[dict[str, Any]], list[str]]:
    """Every plugin's ``edgekit_describe_model`` table (``{"plugin", "title", "columns", "rows"}``)
    and one warning line per plugin whose hook raised or returned a malformed table: one plugin's
    failure never stops the inspection."""
    import onnx

    from edgekit.hookspecs import DESCRIBE_HOOK

    host = context.registry.host
    tables: list[dict[str, Any]] = []
    warnings: list[str] = []

    def own_copy() -> dict[str, Any]:
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return {"model": copy, "context": context}

    for plugin, table in host.call_each_guarded(DESCRIBE_HOOK, warnings, "table", own_copy):
        if table is None:
            continue
        problem = _table_problem(table)
        if problem:
            warnings.append(f"plugin '{plugin}': {DESCRIBE_HOOK} {problem}; its table is left out")
            continue
        tables.append({"plugin": plugin, "title": table["title"], "columns": list(table["columns"]),
                       "rows": [list(row) for row in table["rows"]]})
    return tables, warnings


def _table_problem(table: Any) -> str:
    """Why ``table`` is not ``{"title": str, "columns": [str], "rows": [[cell]]}`` ("" when it is)."""
    if not isinstance(table, dict):
        return f"returned {type(table).__name__}, expected a dict or None"
    if not isinstance(table.get("title"), str):
        return "returned a table without a 'title' string"
    columns, rows = table.get("columns"), table.get("rows")
    if not isinstance(columns, (list, tuple)) or not all(isinstance(c, str) for c in columns):
        return "returned a table whose 'columns' is not a list of strings"
    if not isinstance(rows, (list, tuple)):
        return "returned a table whose 'rows' is not a list"
    for n, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or len(row) != len(columns):
            return f"returned row {n} with {len(row) if isinstance(row, (list, tuple)) else 'no'} cells " \
                   f"for {len(columns)} columns"
    return ""


def dry_run_passes(model_text: str, registry: Registry, target_name: str | None,
                   input_shapes: list[str]) -> list[dict[str, Any]]:
    """Run every registered pass alone on the model (after constant folding, without verification) and
    say what it would match: its notes and the node, parameter and MAC counts it would change."""
    import onnx

    from edgekit.errors import one_line
    from edgekit.frontends import ModelSource, export_to_onnx
    from edgekit.model import fix_input_shapes, model_stats

    target = registry.target(target_name) if target_name else None
    context = BuildContext(target=target, registry=registry, options={"input_shapes": input_shapes})
    source = ModelSource.parse(model_text)
    _, model = export_to_onnx(source, context)
    model = fix_input_shapes(model, input_shapes, source.text)
    passes = registry.passes
    if "fold-constants" in passes:
        model = passes["fold-constants"](model, context)
        context.take_notes()
    before = model_stats(model)
    results = []
    for name, pass_ in sorted(passes.items()):
        entry: dict[str, Any] = {"pass": name, "plugin": pass_.plugin}
        missing = sorted(need for need in pass_.needs if context.option(need) is None)
        if missing:
            entry["skipped"] = f"needs {', '.join(missing)}"
            results.append(entry)
            continue
        working = onnx.ModelProto()
        working.CopyFrom(model)
        try:
            after = model_stats(pass_(working, context))
        except Exception as exc:  # a dry run reports every pass, even a failing one
            entry["failed"] = f"{type(exc).__name__}: {one_line(exc)}"
            context.take_notes()
            results.append(entry)
            continue
        entry.update(notes=context.take_notes(), before=before.as_dict(), after=after.as_dict())
        results.append(entry)
    return results
