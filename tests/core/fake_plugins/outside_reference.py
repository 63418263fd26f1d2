"""A plugin with an outside reference for runs (edgekit_compare_run), its behaviour chosen by the
EDGEKIT_FAKE_REFERENCE variable: agree (rebuilds the model with ``rerun`` and compares the two
runs), judge-disagree, raise, malformed."""

import os

import numpy as np

import edgekit


@edgekit.hookimpl
def edgekit_compare_run(source, model, context, outputs, rerun):
    mode = os.environ.get("EDGEKIT_FAKE_REFERENCE", "agree")
    if mode == "raise":
        raise RuntimeError("reference oracle crashed")
    if mode == "malformed":
        return {"reference": "fake", "agrees": "yes"}
    if mode == "judge-disagree":
        return {"reference": "Fake Oracle", "agrees": False, "judges": True,
                "summary": "output y differs at index 3"}
    again = rerun(model)
    same = all(np.array_equal(a[k], b[k]) for a, b in zip(outputs, again) for k in a)
    return {"reference": "a second build", "agrees": same, "summary": f"{len(again)} run(s) again, same={same}",
            "source_suffix": source.suffix}
