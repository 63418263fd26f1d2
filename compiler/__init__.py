"""The TVM back end (``edgekit.compiler``): kernels compiled and tuned by Apache TVM for ARM CPUs,
phone GPUs and Cortex-M. Built in the TVM issue; TVM is imported lazily and only here."""
