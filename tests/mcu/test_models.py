"""ResNet-8 and the autoencoder: generated, compiled on the host with -Wall -Wextra -Werror
-std=c99 -fsanitize=address,undefined, run through a small driver, compared with onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgekit.plugins.mcu import hostbuild

from .helpers import AUTOENCODER, RESNET8, generate_model, io_shapes, ort_run


@pytest.mark.parametrize("path,name", [(RESNET8, "resnet8"), (AUTOENCODER, "autoencoder")])
def test_model_matches_onnxruntime_under_sanitizers(tmp_path, path, name):
    model = onnx.load(str(path))
    gen = generate_model(model, tmp_path, name)
    ins, outs = io_shapes(gen)
    exe = hostbuild.build_driver(tmp_path, gen.prefix, gen.sources, len(ins), len(outs),
                                 gen.plan.arena_bytes)
    rng = np.random.default_rng(7)
    for trial in range(2):
        x = rng.standard_normal(ins[0]).astype(np.float32) * (1 + trial)
        got = hostbuild.run_driver(exe, [x], outs)[0]
        ref = ort_run(model, {model.graph.input[0].name: x})[0]
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_resnet8_fuses_and_aliases(tmp_path):
    gen = generate_model(onnx.load(str(RESNET8)), tmp_path, "resnet8")
    ops = [layer.op for layer in gen.schedule.layers]
    # 9 convs (Relu fused into the 4 it follows), 3 residual adds with fused Relu, pool, gemm, softmax;
    # the Transpose of a 1x1 map and the Reshape are views: no kernel.
    assert ops.count("Conv+Relu") == 4 and ops.count("Conv") == 5
    assert ops.count("Add+Relu") == 3
    assert "Transpose" not in ops and "Reshape" not in ops and "Relu" not in ops
    assert len(ops) == 15
    assert gen.schedule.layers[0].macs == 442368
    assert sum(layer.macs for layer in gen.schedule.layers) == 12501632
