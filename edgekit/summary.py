"""Rich tables for the terminal: build and run summaries, inspection, targets, plugins, passes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _n(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _err(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}"


def print_build_summary(report: dict[str, Any], out: Path, console: Console) -> None:
    table = Table(title=f"{report['model']['source']} → {report['target']['name']}", title_justify="left")
    for column in ("pass", "s", "nodes", "params", "MACs", "max abs err", "vs original"):
        table.add_column(column, justify="left" if column == "pass" else "right")
    for record in report.get("passes", []):
        before, after = record["before"], record["after"]
        table.add_row(
            record["name"], f"{record.get('seconds', 0):.2f}",
            f"{_n(before['nodes'])}→{_n(after['nodes'])}", f"{_n(before['parameters'])}→{_n(after['parameters'])}",
            f"{_n(before['macs'])}→{_n(after['macs'])}", _err(record["max_abs_error"]),
            _err(record["max_abs_error_vs_original"]))
    console.print(table)
    _print_quantization(report.get("quantization"), console)
    backend = report.get("backend", {})
    console.print(f"back end [bold]{backend.get('backend')}[/]: {len(backend.get('files', []))} files in {out}")
    for key in ("arena_bytes", "arena_lower_bound_bytes", "weights_bytes", "code_bytes"):
        value = backend.get(key)
        if isinstance(value, dict):
            value = ", ".join(f"{k} {_n(v)}" for k, v in value.items())
        if value is not None:
            console.print(f"  {key}: {_n(value)}")
    if "run" in report:
        print_run_summary(report["run"], console, backend.get("layers"))
    if "build_seconds" in report:
        console.print(f"built in {report['build_seconds']:.2f} s")


def _print_quantization(q: dict[str, Any] | None, console: Console) -> None:
    """The quantize plugin's figures: accuracy against the float model, sizes, layers kept float."""
    if not q:
        return
    weights = q.get("weights_bytes", {})
    line = f"quantization: {q.get('scheme', '')}; weights {_n(weights.get('before'))} → {_n(weights.get('after'))} B"
    if "output_sqnr_db" in q:
        top1 = q.get("top1_agreement")
        line += (f"; output SQNR {q['output_sqnr_db']} dB"
                 + (f", top-1 agreement {top1:.1%}" if isinstance(top1, float) else "")
                 + f" vs float on {q.get('validation', '')} ({q['calibration']['method']} calibration, "
                   f"{q['calibration']['samples']} samples of {q['calibration']['data']})")
    console.print(line)
    if q.get("float_layers"):
        console.print(f"  kept in float: {', '.join(q['float_layers'])}")
    if q.get("accuracy_known") is False:
        console.print("  [yellow]calibrated on random data: these accuracy figures say nothing about "
                      "real inputs; give --calibration[/]")


def print_run_summary(section: dict[str, Any], console: Console,
                      layers: list[dict[str, Any]] | None = None) -> None:
    measurements = section.get("measurements", {})
    per_layer = measurements.get("instructions_per_layer")
    if layers and per_layer and len(per_layer) == len(layers):
        table = Table(title="instructions per layer (emulated: instructions, not cycles)", title_justify="left")
        for column in ("#", "node", "op", "MACs", "instructions", "per MAC"):
            table.add_column(column, justify="right" if column in ("#", "MACs", "instructions", "per MAC") else "left")
        for layer, count in zip(layers, per_layer):
            macs = layer.get("macs") or 0
            table.add_row(str(layer["index"]), layer["node"], layer["op"], _n(macs), _n(count),
                          f"{count / macs:.2f}" if macs else "-")
        console.print(table)
    console.print(f"run on [bold]{section['runner']}[/]: {section['samples']} input(s), max abs error "
                  f"{_err(section['max_abs_error'])} vs onnxruntime (tolerance atol={section['tolerance']['atol']:g}, "
                  f"rtol={section['tolerance']['rtol']:g})")
    for output, ratio in sorted(section.get("exact_ratio", {}).items()):
        step = section["tolerance"].get("quantization_steps", {}).get(output, 0.0)
        exact64 = section.get("exact_ratio_float64", {}).get(output)
        within = f"the rest within {section['tolerance'].get('max_steps', 1):g} steps"
        if exact64 is None:
            console.print(f"  output {output}: quantized (step {step:.3g}); {ratio:.2%} of values identical "
                          f"to onnxruntime, {within}")
        else:  # judged by the exact arithmetic; onnxruntime's float32 evaluation for information
            console.print(f"  output {output}: quantized (step {step:.3g}); {exact64:.2%} of values identical "
                          f"to the model's exact (float64) arithmetic, {within}; {ratio:.2%} identical to "
                          f"onnxruntime's float32 evaluation")
    for key, value in sorted(measurements.items()):
        if not isinstance(value, (list, dict)):
            # one line each, however long: a value may be a path or a command line to copy
            console.print(f"  {key}: {escape(_n(value))}", soft_wrap=True)
    for reference in section.get("references", {}).values():
        style = {True: "green", False: "yellow", None: "dim"}[reference["agrees"]]
        judges = " (judges this run: the arithmetic it implements)" if reference.get("judges") else ""
        console.print(f"  vs {reference['reference']}{judges}: [{style}]{escape(reference['summary'])}[/]")
    for warning in section.get("reference_warnings", []):
        console.print(f"  [yellow]warning: {escape(warning)}[/]")


def print_inspection(info: dict[str, Any], console: Console) -> None:
    stats = info["stats"]
    console.print(f"{info['model']}: {stats['nodes']} nodes, {_n(stats['parameters'])} parameters, "
                  f"{_n(stats['macs'])} MACs")
    for kind in ("inputs", "outputs"):
        for value in info[kind]:
            console.print(f"  {kind[:-1]} {value['name']}: {value['dtype']} {value['shape']}")
    table = Table()
    for column in ("op", "count", "MACs"):
        table.add_column(column, justify="left" if column == "op" else "right")
    if info["backend"]:
        table.add_column(f"{info['backend']} on {info['target']}")
    for op, entry in info["ops"].items():
        row = [op, _n(entry["count"]), _n(entry["macs"])]
        if info["backend"]:
            row.append("[green]yes[/]" if entry["supported"] else "[red]no[/]")
        table.add_row(*row)
    console.print(table)
    unsupported = [op for op, e in info["ops"].items() if e.get("supported") is False]
    if unsupported:
        console.print(f"[red]not supported by {info['backend']}:[/] {', '.join(unsupported)}")
    for description in info.get("descriptions", []):
        print_description(description, console)


def print_description(description: dict[str, Any], console: Console) -> None:
    """A plugin's ``edgekit_describe_model`` table; numeric columns right-aligned, as the op table."""

    title = f"{description['title']} (plugin {description['plugin']})"
    table = Table(title=escape(title), title_justify="left", min_width=len(title))  # a title on one line
    rows = description["rows"]
    for i, column in enumerate(description["columns"]):
        numeric = bool(rows) and all(isinstance(row[i], (int, float)) and not isinstance(row[i], bool)
                                     for row in rows)
        table.add_column(escape(column), justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(_cell(value) for value in row))
    console.print(table)


def _cell(value: Any) -> str:

    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    return escape(_n(value))


def print_targets(registry, console: Console) -> None:
    table = Table()
    for column in ("target", "cpu", "features", "flash", "RAM", "back end", "runner", "description"):
        table.add_column(column)
    for name, t in sorted(registry.targets.items()):
        table.add_row(name, t.cpu, ",".join(t.features), _n(t.flash_bytes) if t.flash_bytes else "-",
                      _n(t.ram_bytes) if t.ram_bytes else "-", t.backend, t.runner or "(build only)",
                      t.description)
    console.print(table)


def print_plugins(registry, console: Console) -> None:
    from edgekit.hookspecs import DESCRIBE_HOOK, PROVIDES_FRONTEND

    for kind in ("passes", "targets", "backends", "runners", "kernel_libraries"):
        getattr(registry, kind)  # collect, so `provided` is complete
    table = Table()
    for column in ("plugin", "version", "module", "provides"):
        table.add_column(column)
    for name, info in sorted(registry.host.plugins.items()):
        provided = [f"{kind}: {', '.join(names)}" for kind, names in sorted(registry.provided.get(name, {}).items())]
        if PROVIDES_FRONTEND in info.hooks:
            provided.append("front end")
        observers = [h for h in info.hooks if h.startswith("edgekit_pipeline") or h.endswith("_pass")]
        if observers:
            provided.append("observes pipeline")
        if DESCRIBE_HOOK in info.hooks:
            provided.append("describes models (inspect)")
        status = f"[red]BROKEN: {info.broken}[/]" if info.broken else "; ".join(provided) or "-"
        table.add_row(name, info.version or "-", info.module, status)
    console.print(table)


def print_passes(registry, console: Console) -> None:
    table = Table()
    for column in ("pass", "plugin", "needs", "tolerance", "description"):
        table.add_column(column)
    for name, p in sorted(registry.passes.items()):
        table.add_row(name, p.plugin, ",".join(sorted(p.needs)) or "-",
                      f"atol={p.tolerance.atol:g} rtol={p.tolerance.rtol:g}", p.description)
    console.print(table)


def print_pass_matches(results: list[dict[str, Any]], console: Console) -> None:
    table = Table(title="what each pass matches (dry run, each pass alone after constant folding)",
                  title_justify="left")
    for column in ("pass", "plugin", "nodes", "params", "MACs", "matches / notes"):
        table.add_column(column)
    for entry in results:
        if "before" not in entry:
            table.add_row(entry["pass"], entry["plugin"], "", "", "", entry.get("skipped") or
                          f"[red]failed: {entry['failed']}[/]")
            continue
        before, after = entry["before"], entry["after"]
        notes = "; ".join(n if isinstance(n, str) else ", ".join(f"{k}={v}" for k, v in n.items())
                          for n in entry["notes"]) or "no match"
        table.add_row(entry["pass"], entry["plugin"], f"{_n(before['nodes'])}→{_n(after['nodes'])}",
                      f"{_n(before['parameters'])}→{_n(after['parameters'])}",
                      f"{_n(before['macs'])}→{_n(after['macs'])}", notes)
    console.print(table)
