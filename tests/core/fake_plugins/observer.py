"""A plugin observing the pipeline: it records hook calls into a file named by an env variable."""

import os

import edgekit


def _log(line):
    with open(os.environ["EDGEKIT_OBSERVER_LOG"], "a", encoding="utf-8") as f:
        f.write(line + "\n")


@edgekit.hookimpl
def edgekit_pipeline_started(model, context):
    _log(f"started {len(model.graph.node)}")


@edgekit.hookimpl
def edgekit_before_pass(pass_, model, context):
    _log(f"before {pass_.name}")


@edgekit.hookimpl
def edgekit_after_pass(pass_, model, context, record):
    _log(f"after {pass_.name} {record.max_abs_error}")


@edgekit.hookimpl
def edgekit_pipeline_finished(model, context):
    _log("finished")
