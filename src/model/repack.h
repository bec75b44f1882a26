/* repack.h — Q4_0 matrices laid out for the kernels at load (quant.h, Q4_0_X16). */
#ifndef MOLMO_MODEL_REPACK_H
#define MOLMO_MODEL_REPACK_H

#include "model/model.h"

/* In a model whose files were read into the process's memory (molmo_mapfile_to_ram: --no-mmap),
 * lays every Q4_0 matrix with a multiple of 16 rows (molmo_weights_each_matrix) out as
 * Q4_0_X16, in place, and retypes its tensor, where the kernel table reads that layout
 * (molmo_kernels_q4_0_x16); elsewhere nothing changes. The products keep their bits, so this
 * is best effort: a matrix that cannot be laid out (no memory for the 16-row buffer, the
 * kernel refusing to make the copy writable) stays Q4_0, and the log says so. Returns the
 * number of matrices laid out. */
int molmo_model_repack_q4_0(molmo_model *m, molmo_log_fn log, void *log_user);

#endif
