/* arch.c — one traits row per Molmo architecture (fact sheet §2.1, §9.3). */
#include "model/arch.h"

#include <assert.h>

#define BLK "model.transformer.blocks.%d."

/* Molmo-7B-D / 7B-O / 72B: HF remote-code names. */
static const molmo_name_table names_hf = {
    .attn_norm = BLK "attn_norm.weight",
    .att_proj = BLK "att_proj.weight",
    .att_proj_bias = BLK "att_proj.bias",
    .q_norm = BLK "q_norm.weight",
    .k_norm = BLK "k_norm.weight",
    .attn_out = BLK "attn_out.weight",
    .ff_norm = BLK "ff_norm.weight",
    .ff_proj = BLK "ff_proj.weight",
    .ff_out = BLK "ff_out.weight",
    .wte = "model.transformer.wte.embedding",
    .wte_new = "model.transformer.wte.new_embedding",
    .ln_f = "model.transformer.ln_f.weight",
    .lm_head = "model.transformer.ff_out.weight",
};

/* MolmoE-1B: modeling_molmoe.py module tree (attention and MLP sub-modules, top-level head). */
static const molmo_name_table names_molmoe = {
    .attn_norm = BLK "attn.attn_norm.weight",
    .att_proj = BLK "attn.att_proj.weight",
    .att_proj_bias = BLK "attn.att_proj.bias",
    .q_norm = BLK "attn.q_norm.weight",
    .k_norm = BLK "attn.k_norm.weight",
    .attn_out = BLK "attn.attn_out.weight",
    .ff_norm = BLK "mlp.ff_norm.weight",
    .router = BLK "mlp.gate.weight",
    .exp_gate = BLK "mlp.experts.%d.gate_proj.weight",
    .exp_up = BLK "mlp.experts.%d.up_proj.weight",
    .exp_down = BLK "mlp.experts.%d.down_proj.weight",
    .wte = "model.transformer.wte.embedding",
    .wte_new = "model.transformer.wte.new_embedding",
    .ln_f = "model.transformer.ln_f.weight",
    .lm_head = "lm_head.weight",
};

static const molmo_arch_traits traits[MOLMO_FAMILY_COUNT] = {
    [MOLMO_FAMILY_MOLMOE] = {.name = "MolmoE-1B-like", .llm = "OLMoE (mixture of experts)",
                             .names = &names_molmoe},
    [MOLMO_FAMILY_OLMO] = {.name = "Molmo-7B-O-like", .llm = "OLMo (norm after, QK-norm)",
                           .names = &names_hf},
    [MOLMO_FAMILY_QWEN2] = {.name = "Molmo-7B-D/72B-like", .llm = "Qwen2 (qkv bias, GQA)",
                            .names = &names_hf},
};
static_assert(sizeof traits / sizeof traits[0] == MOLMO_FAMILY_COUNT, "one row per family");

const molmo_arch_traits *molmo_arch(molmo_family family) {
    if ((unsigned)family >= MOLMO_FAMILY_COUNT) return NULL;
    return &traits[family];
}

const char *molmo_family_name(molmo_family family) {
    const molmo_arch_traits *t = molmo_arch(family);
    return t ? t->name : "unknown";
}
