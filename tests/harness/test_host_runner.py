"""The host runner: the same library natively under AddressSanitizer and UBSan."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import context_for, fake_reference, make_artifact, random_inputs

import edgekit
from edgekit.plugins.harness.host import HostRunner, sanitizer_report


def test_host_outputs_match(tmp_path):
    feeds = random_inputs(4, seed=3)
    results = HostRunner().run(make_artifact(tmp_path / "out"), feeds, context_for("cortex-m4"))
    for result, feed in zip(results, feeds):
        np.testing.assert_allclose(result.outputs["y"], fake_reference(feed["x"]), rtol=1e-6, atol=1e-6)


def test_out_of_bounds_write_is_caught_by_asan(tmp_path):
    artifact = make_artifact(tmp_path / "out", "oob_model.c")
    with pytest.raises(edgekit.BuildError, match="sanitizer: ERROR: AddressSanitizer: global-buffer-overflow"):
        HostRunner().run(artifact, random_inputs(1), context_for("cortex-m4"))


def test_undefined_behaviour_is_caught_by_ubsan(tmp_path):
    artifact = make_artifact(tmp_path / "out", "ubsan_model.c")
    feeds = [{"x": np.full((1, 8), 5.0, np.float32)}]
    with pytest.raises(edgekit.BuildError, match=r"sanitizer: model.c:\d+:\d+: runtime error: signed integer overflow"):
        HostRunner().run(artifact, feeds, context_for("cortex-m4"))


def test_sanitizer_report_finds_the_first_line():
    text = "noise\n==12==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x1\nmore\n"
    assert sanitizer_report(text) == "ERROR: AddressSanitizer: heap-buffer-overflow on address 0x1"
    assert sanitizer_report("model.c:3:5: runtime error: signed integer overflow") == \
        "model.c:3:5: runtime error: signed integer overflow"
    assert sanitizer_report("all fine") is None
