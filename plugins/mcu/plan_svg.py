"""The memory plan drawn as SVG: one rectangle per buffer, x = schedule step, y = arena offset.
Hand-written SVG text with fixed number formatting, so the file is byte-identical per model."""

from __future__ import annotations


from edgekit.naming import xml_text
from edgekit.plugins.mcu.planner import MemoryPlan
from edgekit.plugins.mcu.schedule import Schedule

_W, _H, _LEFT, _TOP, _BOTTOM = 900, 480, 70, 40, 40
_COLORS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")


def render(plan: MemoryPlan, sched: Schedule, title: str) -> str:
    steps = max(plan.steps, 1)
    arena = max(plan.arena_bytes, 1)
    plot_w, plot_h = _W - _LEFT - 20, _H - _TOP - _BOTTOM
    sx, sy = plot_w / steps, plot_h / arena
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
           f'viewBox="0 0 {_W} {_H}" font-family="sans-serif" font-size="10">',
           f'<title>{xml_text(title)}</title>',
           f'<text x="{_LEFT}" y="20" font-size="13">{xml_text(title)}: arena {plan.arena_bytes} B, '
           f'lower bound {plan.lower_bound_bytes} B, ratio {plan.ratio:.3f}'
           + (f'; {plan.borrowed_bytes} B more in output buffers before they are written'
              if plan.borrowed else '') + '</text>',
           f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w:.1f}" height="{plot_h:.1f}" '
           f'fill="none" stroke="#333"/>']
    for b in sorted((b for b in plan.buffers if not b.region), key=lambda b: b.id):
        x = _LEFT + b.start * sx
        w = (b.end - b.start + 1) * sx
        y = _TOP + b.offset * sy
        h = max(b.size * sy, 0.5)
        names = [sched.tensors[t].c_name or t for t in b.tensors] or [f"scratch of layer {b.scratch_of}"]
        label = xml_text(", ".join(names))
        color = _COLORS[b.id % len(_COLORS)]
        out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{color}" '
                   f'fill-opacity="0.7" stroke="#222" stroke-width="0.5"><title>{label}: offset '
                   f'{b.offset}, {b.size} B, steps {b.start}-{b.end}</title></rect>')
        if h > 12 and w > 40:
            out.append(f'<text x="{x + 2:.1f}" y="{y + 11:.1f}" font-size="9">{label[:int(w / 5)]}</text>')
    for step in range(0, steps + 1, max(1, steps // 10)):
        x = _LEFT + step * sx
        out.append(f'<text x="{x:.1f}" y="{_H - _BOTTOM + 14}" text-anchor="middle">{step}</text>')
    out.append(f'<text x="{_LEFT + plot_w / 2:.1f}" y="{_H - 8}" text-anchor="middle">schedule step '
               f'(layer)</text>')
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = _TOP + frac * plot_h
        out.append(f'<text x="{_LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">{int(frac * arena)}</text>')
    out.append(f'<text x="12" y="{_TOP + plot_h / 2:.1f}" transform="rotate(-90 12 '
               f'{_TOP + plot_h / 2:.1f})" text-anchor="middle">arena offset (bytes)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
