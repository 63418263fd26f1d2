"""Build-time weight packing (plugins/mcu/weight_layout.py) on small hand-checked examples."""

from __future__ import annotations

import numpy as np

from edgekit.plugins.mcu import weight_layout as wl


def test_conv_weights_packed_in_blocks_of_four_output_channels():
    # out_c 6 = one block of 4 + 2 leftover channels; icg 2, 1x2 kernel: 4 weights per channel.
    w = np.arange(6 * 2 * 1 * 2, dtype=np.float32).reshape(6, 2, 1, 2)
    packed = wl.pack_conv2d_weights(w, {"groups": 1})
    block = packed[:16].reshape(4, 4)            # [icg * k_h * k_w][4 channels]
    np.testing.assert_array_equal(block, w[:4].reshape(4, 4).T)
    np.testing.assert_array_equal(packed[16:], w[4:].ravel())   # leftovers in ONNX order


def test_conv_weights_packed_per_group():
    w = np.arange(2 * 4 * 3 * 1 * 1, dtype=np.float32).reshape(8, 3, 1, 1)  # 2 groups of 4
    packed = wl.pack_conv2d_weights(w, {"groups": 2})
    for g in range(2):
        np.testing.assert_array_equal(packed[g * 12:(g + 1) * 12].reshape(3, 4),
                                      w[g * 4:(g + 1) * 4].reshape(4, 3).T)


def test_depthwise_weights_keep_onnx_order():
    w = np.arange(5 * 1 * 3 * 3, dtype=np.float32).reshape(5, 1, 3, 3)
    np.testing.assert_array_equal(wl.pack_conv2d_weights(w, {"groups": 5}), w.ravel())


def test_conv_transpose_weights_packed_tap_major_in_blocks_of_four():
    w = np.arange(3 * 5 * 2 * 2, dtype=np.float32).reshape(3, 5, 2, 2)  # [in_c][ocg 5][2][2]
    packed = wl.pack_conv_transpose2d_weights(w, {"groups": 1})
    block = packed[:3 * 4 * 4].reshape(4, 3, 4)      # [taps][icg][4 channels]
    for t in range(4):
        np.testing.assert_array_equal(block[t], w[:, :4].reshape(3, 4, 4)[:, :, t])
    np.testing.assert_array_equal(packed[48:].reshape(4, 3), w[:, 4].reshape(3, 4).T)


def test_gemm_weights_packed_in_panels_of_eight_columns():
    b = np.arange(3 * 10, dtype=np.float32).reshape(10, 3)     # transB: B is [n][k]
    packed = wl.pack_gemm_weights(b, {"trans_b": 1})
    bt = b.T                                                    # [k][n]
    np.testing.assert_array_equal(packed[:24].reshape(3, 8), bt[:, :8])
    np.testing.assert_array_equal(packed[24:].reshape(3, 2), bt[:, 8:])


def test_matmul_weights_packed_matrix_by_matrix():
    b = np.arange(2 * 4 * 9, dtype=np.float32).reshape(2, 4, 9)
    packed = wl.pack_matmul_weights(b)
    for i in range(2):
        np.testing.assert_array_equal(packed[i * 36:(i + 1) * 36],
                                      wl.pack_gemm_weights(b[i], {"trans_b": 0}))


def test_conv_scratch_floats_examples():
    resnet_64 = dict(in_c=64, groups=1, k_h=3, k_w=3, stride_w=1, dil_w=1)
    assert wl.conv2d_scratch_floats(resnet_64) == 64 * 3 * 6
    depthwise = dict(in_c=64, out_c=64, groups=64, in_h=25, in_w=5, k_h=3, k_w=3,
                     pad_top=1, pad_bottom=1, pad_left=1, pad_right=1)
    assert wl.conv2d_scratch_floats(depthwise) == 27 * 7
