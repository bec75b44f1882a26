/* repack.h — Q8_0 / Q4_0 matrices laid out for the kernels at load (quant.h, the X16 layouts). */
#ifndef MOLMO_MODEL_REPACK_H
#define MOLMO_MODEL_REPACK_H

#include "model/model.h"

/* In a model whose files were read into the process's memory (molmo_mapfile_to_ram: --no-mmap),
 * lays every Q8_0 and Q4_0 matrix with a multiple of 16 rows (molmo_weights_each_matrix) out
 * as Q8_0_X16 / Q4_0_X16, in place, and retypes its tensor, where the kernel table reads those
 * layouts (molmo_kernels_x16); elsewhere nothing changes. The products keep their bits, so
 * this is best effort: a matrix that cannot be laid out (no memory for the 16-row buffer, the
 * kernel refusing to make the copy writable) keeps the file's layout, and the log says so.
 * Returns the number of matrices laid out. */
int molmo_model_repack(molmo_model *m, molmo_log_fn log, void *log_user);

#endif
