"""The conv/gemm kernels under -fsanitize=address,undefined: a seeded batch of cases per op
through one driver process (exactly-sized heap buffers), outputs checked against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from . import kernels_support as ks

CASES_PER_OP = 60


@pytest.mark.parametrize("kind", sorted(ks.CASE_MAKERS))
def test_kernels_clean_under_sanitizers(kind):
    exe = ks.build_sanitizer_driver()
    rng = np.random.default_rng(2024)
    cases = [ks.CASE_MAKERS[kind](ks.seeded_pick(rng), rng) for _ in range(CASES_PER_OP)]
    records = [ks.encode_case(c.op, c.params, c.a, c.b, c.c, c.out_size) for c in cases]
    outputs = ks.run_sanitizer_driver(exe, records, [c.out_size for c in cases])
    for case, got in zip(cases, outputs):
        ks.assert_close_to_reference(got, case.ref, case.magnitude, case.desc)


def test_conv_code_paths_clean_under_sanitizers():
    exe = ks.build_sanitizer_driver()
    rng = np.random.default_rng(9)
    cases = [ks.make_conv_case(attrs, rng) for _, attrs in ks.TARGETED_CONVS]
    records = [ks.encode_case(c.op, c.params, c.a, c.b, c.c, c.out_size) for c in cases]
    outputs = ks.run_sanitizer_driver(exe, records, [c.out_size for c in cases])
    for case, got in zip(cases, outputs):
        ks.assert_close_to_reference(got, case.ref, case.magnitude, case.desc)
