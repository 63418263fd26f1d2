"""The ``edgekit`` command line. Thin: parsing, settings, presentation; the work is in ``edgekit.building``.

Exit codes: 0 ok, 1 build failed, 2 usage or bad input. Every error is one line on stderr.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any

import click

from edgekit import __version__
from edgekit.console import OneLineErrors, silent_stderr
from edgekit.errors import EdgekitError, UsageError, exit_code, one_line
from edgekit.naming import terminal_text

DEBUG_ENV = "EDGEKIT_DEBUG"


def _console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped output (logs, CI) gets wide tables instead of rich's 80-column fallback.
    width = None if stream.isatty() else 200
    return Console(stderr=stderr, highlight=False, width=width)


def handle_errors(command):
    """Turn every failure into one line and the documented exit code (:func:`edgekit.errors.exit_code`)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except EdgekitError as exc:
            click.echo(f"error: {terminal_text(str(exc))}", err=True)
            sys.exit(exit_code(exc))
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (edgekit.interrupts)
            from edgekit.interrupts import exit_status, stop_children

            stop_children()  # no QEMU or compiler outlives the command
            said, code = exit_status(exc)
            click.echo(f"error: {said}", err=True)
            sys.exit(code)
        except Exception as exc:  # a bug in edgekit: still one line, traceback on request
            if os.environ.get(DEBUG_ENV):
                raise
            click.echo(f"error: internal error {type(exc).__name__}: {terminal_text(one_line(exc))} "
                       f"(set {DEBUG_ENV}=1 for the traceback and please report it)", err=True)
            sys.exit(exit_code(exc))

    from edgekit.interrupts import raising_signals

    return raising_signals(wrapper)


@functools.lru_cache(maxsize=1)
def _registry():
    """The process's registry, loaded once; broken plugins are warned about once."""
    from edgekit.registry import default_registry

    registry = default_registry()
    registry.load_all()
    for info in registry.host.broken():
        click.echo(terminal_text(f"warning: plugin '{info.name}' not loaded: {info.broken}"), err=True)
    return registry


@click.group("edgekit", cls=OneLineErrors,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="edgekit")
def main() -> None:
    """edgekit: take a trained model to an edge device.

    \b
    edgekit build model.onnx --target cortex-m4 -o out/ --run
    edgekit inspect model.onnx --target cortex-m4
    edgekit targets | plugins | passes
    """


def _parse_options(values: tuple[str, ...]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--option '{item}': expected key=value")
        lowered = raw.strip().lower()
        value: Any = {"true": True, "false": False}.get(lowered, raw.strip())
        if isinstance(value, str):
            for convert in (int, float):
                try:
                    value = convert(raw)
                    break
                except ValueError:
                    pass
        options[key.strip().replace("-", "_")] = value
    return options


@main.command()
@click.argument("model")
@click.option("-t", "--target", help="Target profile name (see `edgekit targets`) or a profile .toml file.")
@click.option("--backend", help="Use this back end instead of the target's (see `edgekit plugins`).")
@click.option("--kernels", help="Kernel library, for back ends that offer several (mcu-c: edgekit, the default, or tvm).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Output directory (replaced atomically).")
@click.option("--force", is_flag=True, default=None,
              help="Replace OUT even if it is a non-empty directory that edgekit did not write.")
@click.option("--passes", help="Comma-separated pass list, replacing the target's default pipeline.")
@click.option("--input-shape", "input_shape", multiple=True,
              help="Static input shape: 1,3,32,32 or name=1,3,32,32 (repeat per input).")
@click.option("--inputs", "inputs", help="Verification inputs: .npy (single input) or .npz (by input name).")
@click.option("--run", "run_", is_flag=True, default=None, help="Run the result on the target's runner and compare.")
@click.option("--name", help="C/API name prefix of the generated library (default: model).")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of the random verification inputs (default 0).")
@click.option("--samples", "verify_samples", type=click.IntRange(min=1),
              help="Number of random verification inputs (default 1).")
@click.option("--quantize", help="Quantize after the target's passes: int8 (static, calibrated, QDQ) or "
                                 "int4 (weight-only MatMul/Gemm weights).")
@click.option("--group-size", "group_size", type=int, help="int4: weights per scale along K (default 32).")
@click.option("--calibration", help="Calibration data: .npy/.npz, a directory of them, or file.py:function.")
@click.option("--calibration-method", "calibration_method",
              help="Calibration: minmax (default), percentile or entropy.")
@click.option("--validation", help="Data to measure quantization accuracy on (default: the calibration data).")
@click.option("--accuracy-floor", "accuracy_floor",
              help="Mixed precision: keep the most sensitive layers in float until the output SQNR "
                   "reaches this (e.g. 30dB) or the top-1 agreement does (e.g. top1=0.99).")
@click.option("--option", "extra", multiple=True, help="Back-end/plugin option key=value (repeatable).")
@click.option("--config", "config_file", type=click.Path(path_type=Path),
              help="Settings file (default: ./edgekit.toml or [tool.edgekit] in ./pyproject.toml).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary; errors only.")
@handle_errors
def build(model, target, backend, kernels, output, force, passes, input_shape, inputs, run_, name, seed,
          verify_samples, quantize, group_size, calibration, calibration_method, validation, accuracy_floor,
          extra, config_file, quiet):
    """Build MODEL (.onnx, .pt2 or file.py:function) for a target into an output directory."""
    from edgekit.building import build as run_build
    from edgekit.request import build_request

    # the same composition as edgekit.build(): settings file, defaults, checks (edgekit.request)
    request = build_request(model, {
        "target": target, "backend": backend, "kernels": kernels, "output": output, "force": force,
        "passes": passes, "input_shape": input_shape, "inputs": inputs, "run": run_, "name": name, "seed": seed,
        "verify_samples": verify_samples, "quantize": quantize, "group_size": group_size,
        "calibration": calibration, "calibration_method": calibration_method, "validation": validation,
        "accuracy_floor": accuracy_floor, "options": _parse_options(extra), "config": config_file}, cli=True)
    registry = _registry()
    if quiet:
        with silent_stderr():
            report = run_build(request, registry)
    else:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with Progress(SpinnerColumn(), TextColumn("[progress.description]{task.description}"),
                      TimeElapsedColumn(), console=_console(stderr=True), transient=True) as bar:
            task = bar.add_task("starting", total=None)
            report = run_build(request, registry, lambda what: bar.update(task, description=what))
        from edgekit.summary import print_build_summary

        print_build_summary(report, request.output, _console())


@main.command("run")
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--input", "inputs", help="Inputs: .npy (single input) or .npz (arrays named after the inputs).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of random inputs when --input is not given.")
@click.option("--samples", type=click.IntRange(min=1), default=1, show_default=True, help="Number of random inputs.")
@click.option("--save-firmware", "save_firmware", type=click.Path(path_type=Path),
              help="Also write a firmware image (.elf) that runs the model on these inputs by itself and "
                   "prints the outputs (runners that build firmware: qemu).")
@click.option("--option", "extra", multiple=True,
              help="Back-end/runner option key=value for this run, over those the build recorded (repeatable).")
@click.option("--save", type=click.Path(path_type=Path),
              help="Write the device's outputs to this .npz, by output name (several samples: stacked "
                   "along a new first axis).")
@handle_errors
def run_command(output, inputs, seed, samples, save_firmware, extra, save):
    """Run a built OUTPUT directory again on its target's runner and compare with onnxruntime."""
    from edgekit.building import read_report, run
    from edgekit.summary import print_run_summary

    # the runner option save_firmware (edgekit.runners.PER_RUN_OPTIONS): this run's only
    per_run = {"save_firmware": str(save_firmware)} if save_firmware else {}
    if save:  # before the run: a path that cannot be written costs no run
        from edgekit.userfiles import check_save_path

        check_save_path(save, f"--save {save}")
    outputs: list[dict[str, Any]] = []
    section = run(output, _registry(), inputs, seed, samples, options={**_parse_options(extra), **per_run},
                  device_outputs=outputs)
    if save_firmware and not section.get("measurements", {}).get("standalone_firmware"):
        raise UsageError(f"--save-firmware {save_firmware}: runner '{section['runner']}' wrote no firmware image")
    if save:
        from edgekit.results import RunReport

        RunReport(section, outputs).save(save)
    layers = read_report(output).get("backend", {}).get("layers")
    print_run_summary(section, _console(), layers)
    if save:
        click.echo(terminal_text(f"outputs saved to {save}"))


@main.command()
@click.argument("model")
@click.option("-t", "--target", help="Also report which ops the target's back end supports.")
@click.option("--input-shape", "input_shape", multiple=True, help="Static input shape (as for build).")
@handle_errors
def inspect(model, target, input_shape):
    """Show MODEL's ops, parameters and MACs, whether the target's back end supports each op, and the
    structure plugins recognise (e.g. mixture-of-experts layers)."""
    from edgekit.inspection import inspect_model
    from edgekit.summary import print_inspection

    info = inspect_model(model, _registry(), target, list(input_shape))
    for warning in info["warnings"]:
        click.echo(f"warning: {terminal_text(warning)}", err=True)
    print_inspection(info, _console())


@main.command()
@handle_errors
def targets():
    """List the target profiles."""
    from edgekit.summary import print_targets

    print_targets(_registry(), _console())


@main.command()
@handle_errors
def plugins():
    """List every plugin with its version and what it provides."""
    from edgekit.summary import print_plugins

    print_plugins(_registry(), _console())


@main.command()
@click.argument("model", required=False)
@click.option("-t", "--target", help="Target profile (for passes that read it).")
@click.option("--input-shape", "input_shape", multiple=True, help="Static input shape (as for build).")
@handle_errors
def passes(model, target, input_shape):
    """List every registered pass; with MODEL, also what each pass matches on it (a dry run)."""
    from edgekit.summary import print_pass_matches, print_passes

    registry = _registry()
    if model is None:
        print_passes(registry, _console())
        return
    from edgekit.inspection import dry_run_passes

    print_pass_matches(dry_run_passes(model, registry, target, list(input_shape)), _console())


def _add_plugin_commands() -> None:
    """Let plugins add subcommands (``edgekit_register_commands``); a failing plugin is named, not fatal."""
    from edgekit.errors import PluginError

    try:
        registry = _registry()
        registry.host.notify("edgekit_register_commands", cli=main)
    except PluginError as exc:
        click.echo(f"warning: {terminal_text(str(exc))}", err=True)


def run_cli() -> None:
    """The console-script entry point."""
    from edgekit.startup import exit_on_interrupt

    exit_on_interrupt()  # edgekit/__init__ did already when run as `edgekit`; not as python -m edgekit.cli
    _add_plugin_commands()
    main()


if __name__ == "__main__":
    run_cli()
