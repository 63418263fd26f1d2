"""The TVM back end (``edgekit.compiler``): kernels compiled and tuned by Apache TVM 0.27 for ARM
CPUs, x86-64 and phone GPUs. TVM is imported lazily, only inside builds, runs and tuning.

Modules: ``importer`` (ONNX → Relax, unsupported-op check), ``lower`` (Relax pipeline → flat
kernel-call plan + kernel object), ``driver_c`` (runtime-free C driver, header, loaders),
``export`` (cross-compiled shared library and loader program), ``gpu`` (OpenCL builds),
``runners`` (``qemu-user``, ``tvm-host``), ``tuning`` + ``tune_command`` (MetaSchedule, ``edgekit
tune``), ``backend`` (the ``tvm`` back end), ``plugin`` (registration).
"""
