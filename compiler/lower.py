"""Relax → a flat kernel-call plan over statically planned storage, plus the compiled kernels.

Technique: run Relax's "zero" pipeline (legalize, fold constants, fuse ops, fuse TIR; a MetaSchedule
database in scope is applied here), then ``ToNonDataflow``, ``RemovePurityChecking``,
``CallTIRRewrite`` and ``StaticPlanBlockMemory``. ``main`` is then a straight list of
``alloc_storage`` / ``alloc_tensor`` / kernel calls, which :func:`walk_main` turns into a
:class:`Plan`: the C driver emitted from it replaces TVM's Relax VM, so the device needs no TVM
runtime. The kernels are TIR PrimFuncs built by LLVM into one object with packed-ABI entry points
``__tvm_ffi_<kernel>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import edgekit

# relax.memory ops that only end lifetimes: nothing to emit for them.
_LIFETIME_OPS = {"relax.memory.kill_storage", "relax.memory.kill_tensor"}


@dataclass
class Slot:
    """One tensor of the plan: a graph input, a constant, a view into a planned storage, or an
    output the caller provides."""

    name: str
    kind: str  # "input" | "const" | "storage" | "output"
    shape: list[int]
    dtype: str
    index: int = 0  # input/output position, constant index, or storage index
    offset: int = 0  # byte offset inside the storage

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass
class Call:
    kernel: str
    args: list[str]  # slot names


@dataclass
class Plan:
    """What the driver does: call ``calls`` in order over ``slots``; storages are static buffers."""

    storages: list[int] = field(default_factory=list)  # bytes per planned storage
    slots: dict[str, Slot] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    constants: list[np.ndarray] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)  # slot names, in graph order
    outputs: list[str] = field(default_factory=list)

    def kernels(self) -> list[str]:
        return sorted({c.kernel for c in self.calls})

    def memory(self) -> dict[str, Any]:
        return {"storages_bytes": list(self.storages), "activation_bytes": sum(self.storages),
                "constant_bytes": int(sum(c.nbytes for c in self.constants)),
                "kernel_calls": len(self.calls), "kernels": len(self.kernels())}


def tvm_target(spec: dict[str, Any]):
    import tvm

    try:
        return tvm.target.Target(dict(spec))
    except Exception as exc:
        raise edgekit.UsageError(f"invalid [tvm_target] {spec}: {exc}") from None


def optimize(mod, target, database=None, default_schedules=None):
    """Run the Relax "zero" pipeline (with ``database`` applied when given), then
    ``default_schedules(mod)`` for the kernels still unscheduled, and plan memory."""
    import tvm
    from tvm import relax

    from edgekit.compiler import legalize

    legalize.register()

    def pipeline(m):
        with target:
            m = relax.get_pipeline("zero")(m)
            if default_schedules is not None:
                m = default_schedules(m)
        return tvm.transform.Sequential([
            relax.transform.ToNonDataflow(), relax.transform.RemovePurityChecking(),
            relax.transform.CallTIRRewrite(), relax.transform.StaticPlanBlockMemory(),
            relax.transform.AttachGlobalSymbol()])(m)

    if database is None:
        return pipeline(mod)
    with database:
        return pipeline(mod)


def walk_main(mod, function: str = "main") -> Plan:
    """Turn the planned Relax function ``function`` into a :class:`Plan`; anything but allocations
    and kernel calls is a BuildError naming the Relax op (it would need the Relax VM)."""
    import tvm
    from tvm import relax
    from tvm.ir.expr import Call as CallExpr, GenericConst, Var

    func = mod[function]
    plan = Plan()
    names: dict[Any, str] = {}  # relax Var -> slot name
    storage_of: dict[Any, int] = {}
    tuples: dict[Any, list[str]] = {}  # relax Var bound to a Tuple -> its fields' slot names
    for i, param in enumerate(func.params):
        shape, dtype = _tensor_type(param)
        plan.slots[param.name] = Slot(param.name, "input", shape, dtype, index=i)
        plan.inputs.append(param.name)
        names[param] = param.name

    def arg_slot(arg) -> str:
        if isinstance(arg, GenericConst):
            array = arg.value.numpy()
            name = _fresh(plan, f"const{len(plan.constants)}")
            plan.slots[name] = Slot(name, "const", list(array.shape), str(array.dtype), index=len(plan.constants))
            plan.constants.append(np.ascontiguousarray(array))
            return name
        if arg in names:
            return names[arg]
        raise edgekit.BuildError(f"TVM lowering: kernel argument {arg} is neither a tensor nor a constant")

    for block in func.body.blocks:
        for binding in block.bindings:
            var, value = binding.var, binding.value
            if isinstance(value, Var):
                names[var] = names[value]
                if value in tuples:
                    tuples[var] = tuples[value]
                continue
            if isinstance(value, relax.Tuple):  # a multi-output kernel's results, read by index below
                tuples[var] = [arg_slot(field) for field in value.fields]
                continue
            if isinstance(value, relax.TupleGetItem) and value.tuple_value in tuples:
                names[var] = tuples[value.tuple_value][int(value.index)]
                continue
            if not isinstance(value, CallExpr):
                raise edgekit.BuildError(f"TVM lowering: unexpected binding {type(value).__name__} in {function}")
            if isinstance(value.op, tvm.ir.GlobalVar):
                plan.calls.append(Call(value.op.name_hint, [arg_slot(a) for a in value.args]))
                continue
            op = value.op.name
            if op == "relax.memory.alloc_storage":
                storage_of[var] = len(plan.storages)
                plan.storages.append(int(value.args[0].values[0]))
            elif op == "relax.memory.alloc_tensor":
                shape, dtype = _tensor_type(var)
                slot = Slot(_fresh(plan, var.name), "storage", shape, dtype, index=storage_of[value.args[0]],
                            offset=int(value.args[1].value))
                plan.slots[slot.name] = slot
                names[var] = slot.name
            elif op == "relax.builtin.alloc_tensor":
                shape, dtype = _tensor_type(var)
                slot = Slot(_fresh(plan, var.name), "output", shape, dtype, index=-1)
                plan.slots[slot.name] = slot
                names[var] = slot.name
            elif op not in _LIFETIME_OPS:
                raise edgekit.BuildError(f"TVM lowering: Relax op {op} in {function} needs the Relax VM; "
                                         "edgekit's driver runs kernel calls only")
    results = func.body.body
    if isinstance(results, relax.Tuple):
        results = [names[field] for field in results.fields]
    else:
        results = tuples.get(results) or [names[results]]
    for position, result in enumerate(results):
        slot = plan.slots[result]
        if slot.kind != "output":
            raise edgekit.BuildError(f"TVM lowering: output {position} is a {slot.kind} tensor, not a result buffer")
        slot.index = position
        plan.outputs.append(slot.name)
    return plan


def _fresh(plan: Plan, name: str) -> str:
    """``name``, suffixed if a slot already has it (Relax names are hints, not unique keys)."""
    candidate, n = name, 1
    while candidate in plan.slots:
        candidate, n = f"{name}_{n}", n + 1
    return candidate


def kernel_module(mod):
    """The TIR PrimFuncs of ``mod`` as their own IRModule."""
    import tvm

    return tvm.IRModule({gv: f for gv, f in mod.functions.items() if isinstance(f, tvm.tirx.PrimFunc)})


def build_kernels(mod, target, obj: Path) -> None:
    """Compile the kernels of ``mod`` for a CPU ``target`` into one relocatable object ``obj``.
    Argument checks are dropped (``tirx.disable_assert``): the driver passes fixed, known tensors."""
    import tvm

    with tvm.transform.PassContext(opt_level=3, config={"tirx.disable_assert": True}):
        executable = tvm.compile(kernel_module(mod), target=target)
    executable.mod.write_to_file(str(obj))


def kernel_c_source(mod, target) -> str:
    """The kernels of ``mod`` as C from TVM's ``c`` target (packed ABI, argument checks dropped)."""
    import tvm

    with tvm.transform.PassContext(opt_level=3, config={"tirx.disable_assert": True}):
        executable = tvm.compile(kernel_module(mod), target=target)
    return executable.mod.inspect_source()


_WORKSPACE_ALLOC = re.compile(r"TVMBackendAllocWorkspace\(\s*\d+,\s*\w+,\s*T\.uint64\((\d+)\)")


def workspace_allocations(mod, target) -> dict[str, list[int]]:
    """Bytes of every workspace allocation each kernel makes per call, in order.

    Technique: the kernels are lowered exactly as ``build_kernels`` compiles them (the target's
    TIR pipeline, then the host finalization that turns buffers of ``kMaxStackAlloca`` bytes or
    more into ``TVMBackendAllocWorkspace`` calls) and those calls are read from the lowered TIR.
    The kernels allocate and free them last in, first out, so the sum bounds what one call needs
    at once. A size that is not a constant is a BuildError: the arena must be planned statically."""
    import importlib

    import tvm

    build_module = importlib.import_module("tvm.tirx.build")  # the module, not tvm.tirx.build()
    with tvm.transform.PassContext(opt_level=3, config={"tirx.disable_assert": True}):
        lowered = tvm.tirx.transform.BindTarget(target.with_host(target))(kernel_module(mod))
        pipeline, finalize_host, _ = tvm.tirx.get_default_tir_pipeline(target)
        host, _ = build_module.split_host_device_mods(pipeline(lowered))
        host = finalize_host()(host)
    sizes: dict[str, list[int]] = {}
    for gv, func in host.functions.items():
        text = func.script()
        calls = text.count("TVMBackendAllocWorkspace(")
        found = [int(n) for n in _WORKSPACE_ALLOC.findall(text)]
        if len(found) != calls:
            raise edgekit.BuildError(f"TVM kernel '{gv.name_hint}' allocates workspace of a size known only "
                                     "at run time; the static arena cannot hold it")
        name = gv.name_hint.removeprefix("__tvm_ffi_").removesuffix("_compute_")
        if found:
            sizes.setdefault(name, []).extend(found)
    return sizes


def _tensor_type(var) -> tuple[list[int], str]:
    ty = var.ty  # TVM 0.27: a relax.TensorType carrying shape and dtype
    values = getattr(getattr(ty, "shape", None), "values", None)
    if values is None:
        raise edgekit.BuildError(f"TVM lowering: '{var.name}' has no static shape")
    return [int(v) for v in values], str(ty.dtype)
