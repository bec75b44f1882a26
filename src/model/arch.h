/* arch.h — the traits table: what differs between the Molmo architectures, as data.
 * Numbers come from config.json; naming and identity come from the traits row (STYLE.md §6). */
#ifndef MOLMO_MODEL_ARCH_H
#define MOLMO_MODEL_ARCH_H

#include "molmo.h"

/* printf patterns of the LLM tensor names ("%d" = block index, then "%d" = expert index). */
typedef struct molmo_name_table {
    const char *attn_norm, *att_proj, *att_proj_bias, *q_norm, *k_norm, *attn_out, *ff_norm;
    const char *ff_proj, *ff_out;                    /* dense */
    const char *router, *exp_gate, *exp_up, *exp_down; /* MoE */
    const char *wte, *wte_new, *ln_f, *lm_head;
} molmo_name_table;

typedef struct molmo_arch_traits {
    const char *name;            /* "MolmoE-1B-like" ... */
    const char *llm;             /* base LLM, for `molmo info` */
    const molmo_name_table *names;
} molmo_arch_traits;

const molmo_arch_traits *molmo_arch(molmo_family family);

#endif
