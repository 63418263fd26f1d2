/* insn_count.c: a QEMU TCG plugin that counts executed guest instructions exactly.
 *
 * Technique: every translated block (TB) gets an inline "add n_insns" on entry, so the counter is the
 * number of instructions of all blocks entered. An instruction that is a marker (a function entry
 * whose address is given in `marks=`) also gets an execution callback; when it fires, the counter
 * already includes its whole block, so the count of instructions executed BEFORE the marker is
 * counter - n_insns + position_in_block. Each marker hit is written as "mark <index> <count>";
 * "total <count>" is written when QEMU exits.
 *
 * Arguments: out=<file> (default: stderr), marks=<addr>:<addr>:... (hex or decimal, up to 64).
 *
 * QEMU's qemu-plugin.h is GPL and not shipped by Debian, so the few declarations used here are our
 * own, written from the documented plugin API (version 1, QEMU 7.x). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- minimal declarations of the QEMU plugin API v1 ---- */
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
typedef struct {
    const char *target_name;
    struct { int min; int cur; } version;
    bool system_emulation;
    union { struct { int smp_vcpus; int max_vcpus; } system; };
} qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op,
                                              void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn, qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_outs(const char *string);

#define PLUGIN_EXPORT __attribute__((visibility("default")))
PLUGIN_EXPORT int qemu_plugin_version = 1;

/* ---- the counter ---- */
#define MAX_MARKS 64

struct mark_site {          /* one translation of one marker instruction */
    unsigned mark;          /* index into marks= */
    uint64_t before_in_tb;  /* n_insns of the block minus the marker's position in it */
};

static uint64_t executed;   /* single vCPU boards: no atomics needed */
static uint64_t marks[MAX_MARKS];
static unsigned n_marks;
static FILE *out;

static void on_mark(unsigned int vcpu_index, void *userdata)
{
    const struct mark_site *site = userdata;
    (void)vcpu_index;
    fprintf(out, "mark %u %llu\n", site->mark, (unsigned long long)(executed - site->before_in_tb));
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed, n);
    if (n_marks == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t vaddr = qemu_plugin_insn_vaddr(insn);
        for (unsigned m = 0; m < n_marks; m++) {
            if (marks[m] != vaddr)
                continue;
            /* Retranslations allocate again; the few bytes per marker site are never freed. */
            struct mark_site *site = malloc(sizeof *site);
            if (!site)
                return;
            site->mark = m;
            site->before_in_tb = (uint64_t)(n - i);
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS, site);
        }
    }
}

static void on_qemu_exit(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    fprintf(out, "total %llu\n", (unsigned long long)executed);
    fflush(out);
    if (out != stderr)
        fclose(out);
}

static int parse_marks(const char *list)
{
    const char *p = list;
    while (*p) {
        char *end;
        if (n_marks == MAX_MARKS)
            return -1;
        /* Thumb function symbols carry bit 0; the instruction address does not. */
        marks[n_marks++] = strtoull(p, &end, 0) & ~(uint64_t)1;
        if (end == p)
            return -1;
        p = (*end == ':') ? end + 1 : end;
        if (*end && *end != ':')
            return -1;
    }
    return 0;
}

PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    const char *path = NULL;
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            path = argv[i] + 4;
        } else if (strncmp(argv[i], "marks=", 6) == 0) {
            if (parse_marks(argv[i] + 6) != 0) {
                qemu_plugin_outs("insn_count: bad marks= list (hex addresses separated by ':')\n");
                return -1;
            }
        } else {
            qemu_plugin_outs("insn_count: unknown argument (expected out=FILE or marks=A:B:...)\n");
            return -1;
        }
    }
    out = path ? fopen(path, "w") : stderr;
    if (!out) {
        qemu_plugin_outs("insn_count: cannot open the out= file\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_qemu_exit, NULL);
    return 0;
}
