"""ONNX backend conformance: every applicable node/pytorch case of every claimed op passes
through the generated C (see edgekit.plugins.mcu.conformance for the rules)."""

from __future__ import annotations

import pytest

from edgekit.plugins.mcu import conformance
from edgekit.plugins.mcu.optable import supported_ops_list

# Reasons a case may be inapplicable: each is stated in conformance.classify/bind_constants or is
# the back end's own BuildError ("back end refuses: ..."), which a user would get too.
KNOWN_REASONS = ("uses op(s) the back end does not claim", "dtype is not float32", "back end refuses",
                 "is not a tensor", "empty float32 tensor", "ops outside the default domain",
                 "every input is a build-time constant", "data set holds a non-tensor value")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return conformance.run(work_dir=tmp_path_factory.mktemp("conformance"))


def test_every_applicable_case_passes(results):
    failures = [f"{r.case}: {r.reason}" for r in results if r.status == "fail"]
    assert not failures, "\n".join(failures)


def test_every_claimed_op_has_applicable_cases(results):
    table = conformance.summarize(results)
    print("\n" + conformance.format_table(table))
    untested = [op for op in supported_ops_list()
                if table[op]["applicable"] == 0 and op not in conformance.TESTED_ELSEWHERE]
    assert not untested, f"claimed ops without an applicable conformance case: {untested}"
    assert sum(row["passed"] for row in table.values()) >= 550


def test_inapplicable_reasons_are_stated(results):
    unexplained = [f"{r.case}: {r.reason}" for r in results if r.status == "inapplicable"
                   and not any(k in r.reason for k in KNOWN_REASONS)]
    assert not unexplained, "\n".join(unexplained)


# Resize forms outside the claim in optable.LIMITS (cubic, crop-and-resize, half_pixel_symmetric,
# antialias, aspect-ratio policies, scales whose align_corners length is fractional).
RESIZE_LIMITS = ("mode 'cubic'", "'tf_crop_and_resize'", "'half_pixel_symmetric'", "antialias=1",
                 "keep_aspect_ratio_policy", "gives a fractional length")


def test_back_end_refusals_are_for_documented_limits(results):
    # 3-D conv/pool, training-mode BatchNorm and the Resize forms above are the documented limits;
    # anything else the back end refuses in the conformance suite is a bug to fix, not a case to skip.
    refusals = [f"{r.case}: {r.reason}" for r in results if "back end refuses" in r.reason
                and not ("3-D" in r.reason or "training mode" in r.reason or
                         ("(op Resize)" in r.reason and any(k in r.reason for k in RESIZE_LIMITS)))]
    assert not refusals, "\n".join(refusals)
