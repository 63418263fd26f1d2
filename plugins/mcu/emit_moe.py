"""C for mixture-of-experts layers (see :mod:`.ops_moe`): one sub-library per expert, the expert
tables and load hook in the model's source, a linker-script fragment placing the experts'
sections, and the placement map the report shows.

An expert sub-library ``<p>`` is three files: ``<p>.h`` (its weights struct type, sizes and
``<p>_run``), ``<p>.c`` (one kernel call per layer, constants read through the ``weights``
pointer so the same code runs on weights in flash or in a RAM slot) and ``<p>_weights.c`` (the
struct, in section ``.rodata.edgekit_expert.<p>``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit.naming import c_comment
from edgekit.plugins.mcu.schedule import Schedule

if TYPE_CHECKING:
    from edgekit.plugins.mcu.emit_c import Names
    from edgekit.plugins.mcu.ops_moe import ExpertPart, LoweredMoe

SECTION_PREFIX = ".rodata.edgekit_expert."


def expert_prefix(prefix: str, moe: LoweredMoe, part: ExpertPart) -> str:
    return f"{prefix}_{moe.layer.name}_e{part.index}"


def section_name(expert: str) -> str:
    return f"{SECTION_PREFIX}{expert}"


def expert_tables(names: Names, sched: Schedule) -> list[str]:
    """The model source's expert tables (one per MoE layer) and the weak load hook."""
    if not sched.moe:
        return []
    p = names.prefix
    lines = ["", "/* Mixture-of-experts layers: each expert is a sub-library of its own. */"]
    for moe in sched.moe:
        lines += [f'#include "{expert_prefix(p, moe, part)}.h"' for part in moe.experts]
    for moe in sched.moe:
        entries = []
        for part in moe.experts:
            e = expert_prefix(p, moe, part)
            entries.append(f"    {{{e}_run, &{e}_weights, (uint32_t)sizeof({e}_weights_t)}},")
            if moe.scratch["slots"]:
                # C99 compile-time check: the RAM slot the generator sized holds this expert
                lines.append(f"typedef char {e}_fits_slot[(sizeof({e}_weights_t) <= "
                             f"{moe.scratch['slot_bytes']}u) ? 1 : -1];")
        lines += [f"/* MoE layer '{moe.layer.name}': {moe.layer.count} experts, top-{moe.layer.k}. */",
                  f"static const ek_moe_expert {p}_{moe.layer.name}_experts[{moe.layer.count}] = {{",
                  *entries, "};"]
    if any(moe.scratch["slots"] for moe in sched.moe):
        lines += ["", "/* Copies an expert's weights into a RAM slot before it runs (option expert_memory=ram).",
                  " * The default copies from memory the core can read; define your own (same signature)",
                  " * to fetch from external flash (QSPI, SPI) or to use a DMA engine. */",
                  f"__attribute__((weak)) void {p}_expert_load(uint32_t layer, uint32_t expert, void *slot,",
                  "                                             const void *stored, uint32_t bytes)",
                  "{", "    /* both are 8-byte aligned and `bytes` a multiple of 8 (the weights struct) */",
                  "    const uint32_t *src = (const uint32_t *)stored;", "    uint32_t *dst = (uint32_t *)slot;",
                  "    uint32_t i;", "    (void)layer;", "    (void)expert;",
                  "    for (i = 0; i < bytes / 4u; ++i) {", "        dst[i] = src[i];", "    }", "}"]
    return lines


def header_declarations(names: Names, sched: Schedule) -> list[str]:
    """The model header's part for MoE layers: the load hook firmware may override."""
    if not any(moe.scratch["slots"] for moe in sched.moe):
        return []
    return ["/* Mixture-of-experts (option expert_memory=ram): called to copy an expert's weights into a",
            " * RAM slot before it runs; a weak default copies them. Override it to read external flash. */",
            f"void {names.prefix}_expert_load(uint32_t layer, uint32_t expert, void *slot, const void *stored,",
            "                                 uint32_t bytes);", ""]


def expert_run_opening(prefix: str, weights_type: str) -> list[str]:
    return ["", f"int {prefix}_run(const void *input, void *output, const void *weights, uint8_t *arena)", "{",
            "    const void *const inputs[1] = {input};", "    void *const outputs[1] = {output};",
            f"    const {weights_type} *const W = (const {weights_type} *)weights;"]


def expert_header(names: Names, sched: Schedule, arena_bytes: int, what: str) -> str:
    from edgekit.plugins.mcu.emit_c import const_ctype, header_opening

    p, P = names.prefix, names.upper
    lines = [*header_opening(p, "back end mcu-c, mixture-of-experts expert", "layer"),
             f"/* {c_comment(what)} */", f'#include "kernels/ek_common.h"', "",
             "/* Where the expert's weights go: define it empty to leave them in .rodata. */",
             f"#ifndef {P}_SECTION",
             f'#define {P}_SECTION __attribute__((section("{section_name(p)}")))', "#endif", "",
             f"#define {P}_ARENA_SIZE {arena_bytes}u", "",
             "/* The expert's weights, in the layout its kernels read. */", "typedef struct {"]
    for c in sched.consts.values():
        lines.append(f"    {const_ctype(c.array)} {c.c_name}[{max(c.array.size, 1)}] EK_ALIGNED(8); "
                     f"/* node '{c_comment(c.node)}' */")
    lines += [f"}} {p}_weights_t;", "", f"extern const {p}_weights_t {p}_weights;", "",
              "/* One token's row: input row -> output row, reading the weights through `weights` (where",
              f" * they are stored or a RAM copy). `arena`: {P}_ARENA_SIZE bytes, 4-byte aligned. */",
              f"int {p}_run(const void *input, void *output, const void *weights, uint8_t *arena);",
              "", "#ifdef __cplusplus", "}", "#endif", "", f"#endif /* {P}_H */", ""]
    return "\n".join(lines)


def expert_weights(names: Names, sched: Schedule) -> str:
    from edgekit.plugins.mcu.emit_c import array_values

    p, P = names.prefix, names.upper
    out = [f"/* {p}_weights.c: generated by edgekit (back end mcu-c). Do not edit.",
           " * One expert's weights, in its own section for the linker script to place. */",
           "#include <math.h>", "#include <stdint.h>", "", f'#include "{p}.h"', "",
           f"const {p}_weights_t {p}_weights {P}_SECTION = {{"]
    for c in sched.consts.values():
        out += [f"    /* node '{c_comment(c.node)}' {list(c.array.shape)} */", f"    .{c.c_name} = {{",
                *array_values(c.array, "        "), "    },"]
    out += ["};", ""]
    return "\n".join(out)


def linker_fragment(prefix: str, sched: Schedule, region: str) -> str:
    """A GNU ld fragment collecting every expert's section into one output section."""
    lines = [f"/* {prefix}_experts.ld: generated by edgekit. Place the experts' weights of {prefix}.",
             " * INCLUDE this file inside the SECTIONS command of your linker script, and define the",
             f" * memory region {region} (internal flash, or external QSPI flash mapped for reading). */",
             f".{prefix}_experts : ALIGN(16)", "{"]
    for moe in sched.moe:
        for part in moe.experts:
            e = expert_prefix(prefix, moe, part)
            lines.append(f"    KEEP(*({section_name(e)}))  /* {moe.layer.name} expert {part.index} */")
    lines += [f"}} > {region}", ""]
    return "\n".join(lines)


def placement(prefix: str, sched: Schedule) -> list[dict]:
    """The placement map: per MoE layer, each expert's section, region and bytes."""
    result = []
    for moe in sched.moe:
        freq = moe.layer.frequency or [None] * moe.layer.count
        result.append({
            "layer": moe.layer.name, "experts": moe.layer.count, "k": moe.layer.k,
            "conditional": moe.options.conditional, "expert_memory": moe.options.expert_memory,
            **moe.scratch,
            "placement": [{"expert": part.index, "library": expert_prefix(prefix, moe, part),
                           "section": section_name(expert_prefix(prefix, moe, part)),
                           "region": moe.options.expert_region, "weights_bytes": part.weight_bytes,
                           "arena_bytes": part.plan.arena_bytes, "routing_frequency": freq[part.index],
                           "precision": moe.layer.experts[part.index].precision}
                          for part in moe.experts]})
    return result
