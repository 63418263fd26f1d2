/* ek_names.h: the kernels' external symbol names, included first by ek_common.h.
 *
 * edgekit writes its own copy of this file into every generated library's kernels/ directory,
 * renaming each external kernel symbol under the library's prefix (--name):
 *     #define ek_conv2d_f32 model_ek_conv2d_f32
 * so that several libraries, each with its own copy of the kernels, link into one firmware
 * image. Sources keep the plain ek_ names. This copy, used when the kernels are compiled from
 * the source tree (kernel tests, benchmarks), renames nothing. */
#ifndef EK_NAMES_H
#define EK_NAMES_H

#endif /* EK_NAMES_H */
