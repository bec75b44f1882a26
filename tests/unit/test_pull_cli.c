/* test_pull_cli.c — `molmo pull` and `molmo run --pull` through the real binary, against the
 * fake hub of tests/support/hubserver.c running in this process (HF_ENDPOINT points the child
 * at it). Checks the exit statuses, that stdout carries only the snapshot path, the plain
 * progress lines (stderr is not a terminal here), and that a missing model's error says
 * exactly which `molmo pull` command to run. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hubserver.h"
#include "testutil.h"

#define REPO "test-org/tiny-molmoe"
#define COMMIT_A "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"

static tu_hub *hub;
static char tmpdir[512], out_path[600], err_path[600];
static int case_no;

static int setup(void **state) {
    char fixture[1024];
    snprintf(tmpdir, sizeof tmpdir, "%s/tmp-pull-cli-XXXXXX", MOLMO_BINARY_DIR);
    if (!mkdtemp(tmpdir)) return -1;
    snprintf(out_path, sizeof out_path, "%s/stdout", tmpdir);
    snprintf(err_path, sizeof err_path, "%s/stderr", tmpdir);
    hub = tu_hub_start();
    tu_hub_add_commit(hub, REPO, COMMIT_A, "main", tu_data_path(fixture, sizeof fixture,
                                                                "models/olmoe"));
    tu_hub_add_commit(hub, "test-org/gated", "c3d4e5f60718293a4b5c6d7e8f9012345678a1b2", "main",
                      fixture);
    tu_hub_require_token(hub, "test-org/gated", "hf_secret");
    setenv("HF_TOKEN_PATH", "/nonexistent/molmo-test-token", 1);
    setenv("HF_ENDPOINT", tu_hub_url(hub), 1);
    unsetenv("HF_TOKEN");
    unsetenv("HUGGING_FACE_HUB_TOKEN");
    unsetenv("HF_HUB_OFFLINE");
    return 0;
}

static int teardown(void **state) {
    tu_hub_stop(hub);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void fresh_cache(void) {
    char root[700];
    snprintf(root, sizeof root, "%s/hub%d", tmpdir, ++case_no);
    setenv("HF_HUB_CACHE", root, 1);
}

static void slurp(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = '\0';
}

/* Runs `molmo ARGS`; returns the exit status, stdout and stderr in out/err. */
static int molmo(const char *args, char *out, char *err, size_t cap) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s/molmo' %s > '%s' 2> '%s' < /dev/null", MOLMO_BINARY_DIR, args,
             out_path, err_path);
    int st = system(cmd);
    slurp(out_path, out, cap);
    slurp(err_path, err, cap);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void expect(const char *text, const char *needle, const char *what) {
    if (!strstr(text, needle)) fail_msg("%s lacks \"%s\":\n%s", what, needle, text);
}

static void test_pull_cli(void **state) {
    static char out[65536], err[65536];
    char want[1024];
    fresh_cache();
    assert_int_equal(molmo("pull " REPO, out, err, sizeof out), 0);
    snprintf(want, sizeof want, "%s/models--test-org--tiny-molmoe/snapshots/%s\n",
             getenv("HF_HUB_CACHE"), COMMIT_A);
    assert_string_equal(out, want); /* stdout: the snapshot directory only */
    expect(err, "commit " COMMIT_A ", 10 files, 10 to download", "stderr");
    expect(err, "  verified  model.safetensors (4.27 MB)", "stderr");
    expect(err, "done: ", "stderr");
    assert_null(strchr(err, '\r')); /* no bar: not a terminal */
    /* again: nothing to download; offline: no network at all */
    assert_int_equal(molmo("pull " REPO, out, err, sizeof out), 0);
    assert_string_equal(out, want);
    expect(err, "0 to download (0 B)", "stderr");
    expect(err, "  cached    config.json", "stderr");
    assert_int_equal(molmo("pull --offline --endpoint http://127.0.0.1:9 " REPO, out, err,
                           sizeof out), 0);
    assert_string_equal(out, want);
    /* --include */
    fresh_cache();
    assert_int_equal(molmo("pull -q --include '*.json' --include 'tokenizer*' " REPO, out, err,
                           sizeof out), 0);
    assert_string_equal(err, "");
    snprintf(want, sizeof want, "test -L '%smodel.safetensors'", out);
    want[strcspn(want, "\n")] = '/';
    assert_int_not_equal(system(want), 0);
}

static void test_pull_cli_errors(void **state) {
    static char out[65536], err[65536];
    fresh_cache();
    assert_int_equal(molmo("pull test-org/gated", out, err, sizeof out), 1);
    expect(err, "molmo: test-org/gated is gated", "stderr");
    expect(err, "HF_TOKEN", "stderr");
    assert_string_equal(out, "");
    assert_int_equal(molmo("pull test-org/nope", out, err, sizeof out), 1);
    expect(err, "repository test-org/nope not found", "stderr");
    assert_int_equal(molmo("pull --offline " REPO, out, err, sizeof out), 1);
    expect(err, "offline mode", "stderr");
    assert_int_equal(molmo("pull", out, err, sizeof out), 2);
    assert_int_equal(molmo("pull a/b c/d", out, err, sizeof out), 2);
    assert_int_equal(molmo("pull --retries x " REPO, out, err, sizeof out), 2);
    assert_int_equal(molmo("pull not-a-repo-id", out, err, sizeof out), 1);
    expect(err, "is not a Hugging Face repo id", "stderr");
    assert_int_equal(molmo("pull --help", out, err, sizeof out), 0);
    expect(out, "--include GLOB", "help");
    assert_int_equal(molmo("--help", out, err, sizeof out), 0);
    expect(out, "pull", "molmo --help");
}

/* run -m REPO: missing -> the exact pull command; --pull fetches it, then it runs. */
static void test_run_pull(void **state) {
    static char out[65536], err[65536], out2[65536];
    fresh_cache();
    assert_int_equal(molmo("run -m " REPO " -p Hi -n 4", out, err, sizeof out), 1);
    expect(err, "download it with `molmo pull " REPO "`", "stderr");
    assert_int_equal(molmo("run -m " REPO "@v2 -p Hi -n 4", out, err, sizeof out), 1);
    expect(err, "`molmo pull " REPO " --revision v2`", "stderr");
    assert_int_equal(molmo("run --pull -m " REPO " -p Hi -n 4", out, err, sizeof out), 0);
    expect(err, "pulling it (--pull)", "stderr");
    expect(err, "verified  model.safetensors", "stderr");
    assert_null(strstr(out, "snapshots/")); /* stdout: the answer only */
    assert_int_equal(molmo("run --pull -m " REPO " -p Hi -n 4", out2, err, sizeof out2), 0);
    assert_string_equal(out, out2);
    assert_null(strstr(err, "pulling")); /* cached now: no pull */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pull_cli),
        cmocka_unit_test(test_pull_cli_errors),
        cmocka_unit_test(test_run_pull),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
