"""Hypothesis strategies: convolution geometries and per-channel constants in the broadcast forms
exporters emit ([C], [1,C,1,1], [C,1,1], scalars)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st


@dataclass(frozen=True)
class ConvCase:
    rank: int
    cin: int
    cout: int
    groups: int
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads: tuple[int, ...]
    spatial: tuple[int, ...]
    bias: bool

    @property
    def unpadded(self) -> bool:
        return not any(self.pads)

    def attrs(self) -> dict:
        return {"kernel_shape": list(self.kernel), "strides": list(self.strides),
                "dilations": list(self.dilations), "pads": list(self.pads), "group": self.groups}

    def input_shape(self) -> list[int]:
        return [1, self.cin, *self.spatial]

    def weight_shape(self) -> list[int]:
        return [self.cout, self.cin // self.groups, *self.kernel]


@st.composite
def conv_cases(draw, pads=None, groups=(1, 2, 3)) -> ConvCase:
    rank = draw(st.sampled_from([1, 2, 2, 3]))
    group = draw(st.sampled_from(groups))
    cin = group * draw(st.integers(1, 3))
    cout = group * draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    strides = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    dilations = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    pad_values = pads if pads is not None else st.integers(0, 2)
    pad = tuple(draw(pad_values) for _ in range(2 * rank))
    spatial = tuple(draw(st.integers(d * (k - 1) + 1, d * (k - 1) + 5)) for k, d in zip(kernel, dilations))
    return ConvCase(rank, cin, cout, group, kernel, strides, dilations, pad, spatial, draw(st.booleans()))


def channel_shape(draw, channels: int, rank: int, axis: int) -> list[int]:
    """A broadcast shape for a per-channel constant of a rank-``rank`` value along ``axis``."""
    axis %= rank
    trailing = rank - axis  # dims from the channel axis to the end
    forms = [[channels] + [1] * (trailing - 1), [1] * (axis + 1 - 1) + [channels] + [1] * (trailing - 1)]
    if channels == 1 or draw(st.integers(0, 4)) == 0:
        forms.append([])  # a scalar
    return draw(st.sampled_from(forms))
