/* test_docs.c - what the docs show is what the code does.
 *
 * README.md's library example ("Using the library"), taken from README.md as
 * it stands, compiled against the static library and run: on the demo
 * teacher (ResNet-101, layer4) and student (MobileNetV1, model.13) it prints
 * the layer's shape; asked for a layer the student does not have, it must
 * exit non-zero with one line on stderr naming the layer. (The only test
 * that reads weights/demo/: teacher-resnet101 and mobilenetv1-ickd.)
 *
 * docs/cli.md's help blocks are the tool's real --help
 * (tools/gen_cli_doc.sh --check), and the check fails when they are not: a
 * changed line, and a command without a block, are both caught. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[64];

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Runs a shell command; returns its exit status. */
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void test_readme_example(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/kdc_test_readme_XXXXXX");
    assert_non_null(mkdtemp(dir));
    /* the first ```c block after the "## Using the library" heading */
    char *text = slurp("README.md");
    assert_non_null(text);
    char *sec = strstr(text, "\n## Using the library");
    assert_non_null(sec);
    char *start = strstr(sec, "\n```c\n");
    assert_non_null(start);
    start += 6;
    char *end = strstr(start, "\n```\n");
    assert_non_null(end);
    char src[128];
    snprintf(src, sizeof src, "%s/example.c", dir);
    FILE *f = fopen(src, "w");
    assert_non_null(f);
    fwrite(start, 1, (size_t)(end - start) + 1, f);
    fclose(f);

    /* linked as a user would, with the library's own link flags; a SAN=1
     * build's library needs the sanitizer runtime */
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
    const char *san = strstr(build, "san") ? "-fsanitize=address,undefined,float-cast-overflow" : "";
    int rc = sh("%s -std=c11 -Wall -Wextra -Werror -Iinclude %s %s -o %s/example "
                "%s/libkdcam.a -lm -lpthread -ljpeg 2> %s/cc.txt",
                cc, san, src, dir, build, dir);
    if (rc) /* a JPEG=stb build has no libjpeg */
        rc = sh("%s -std=c11 -Wall -Wextra -Werror -Iinclude %s %s -o %s/example "
                "%s/libkdcam.a -lm -lpthread 2> %s/cc.txt", cc, san, src, dir, build, dir);
    if (rc)
        fail_msg("the README example does not compile: %s", slurp(strcat(strcpy(src, dir),
                                                                         "/cc.txt")));
    static const struct {
        const char *weights, *layer, *want; /* want: the layer name printed */
    } ok[] = {
        {"weights/demo/teacher-resnet101.safetensors", "", "layer4"},
        {"weights/demo/mobilenetv1-ickd.safetensors", "model.13", "model.13"},
    };
    for (size_t i = 0; i < 2; i++) {
        rc = sh("%s/example %s examples/images/chelsea.png %s > %s/out.txt 2> %s/err.txt", dir,
                ok[i].weights, ok[i].layer, dir, dir);
        char path[128];
        snprintf(path, sizeof path, "%s/out.txt", dir);
        const char *out = slurp(path);
        printf("  %s", out);
        assert_int_equal(rc, 0);
        /* "LAYER: 1 x C x H x W" (the demo models' widths may change) */
        char got[64], tail[8] = "";
        int nchw[4] = {0};
        assert_int_equal(sscanf(out, "%63[^:]: %d x %d x %d x %d%7s", got, &nchw[0], &nchw[1],
                                &nchw[2], &nchw[3], tail), 5);
        assert_string_equal(got, ok[i].want);
        assert_int_equal(nchw[0], 1);
        assert_true(nchw[1] > 0 && nchw[2] > 0 && nchw[3] > 0);
    }
    /* the student has no layer4: a clean failure */
    rc = sh("%s/example weights/demo/mobilenetv1-ickd.safetensors examples/images/chelsea.png "
            "layer4 > %s/out.txt 2> %s/err.txt", dir, dir, dir);
    char path[128];
    snprintf(path, sizeof path, "%s/err.txt", dir);
    const char *err = slurp(path);
    printf("  wrong layer: exit %d, %s", rc, err);
    assert_int_not_equal(rc, 0);
    assert_true(rc < 128); /* exited, did not crash */
    assert_non_null(strstr(err, "layer4"));
    assert_non_null(strchr(err, '\n'));
    assert_true(strchr(err, '\n')[1] == '\0'); /* one line */
    snprintf(path, sizeof path, "%s/out.txt", dir);
    assert_true(slurp(path)[0] == '\0'); /* and no uninitialised shape */
    sh("rm -rf %s", dir);
}

static const char *kdcam(void)
{
    const char *k = getenv("KDCAM");
    return k && *k ? k : "build/kdcam";
}

static void test_doc_matches_help(void **state)
{
    (void)state;
    int rc = sh("sh tools/gen_cli_doc.sh --check %s", kdcam());
    if (rc)
        fail_msg("docs/cli.md disagrees with kdcam's --help: run tools/gen_cli_doc.sh");
}

static void test_check_catches_drift(void **state)
{
    (void)state;
    char tdir[64] = "/tmp/kdc_test_clidoc_XXXXXX";
    assert_non_null(mkdtemp(tdir));
    /* one help line changed (the cam block's -o line), as a hand edit would */
    assert_int_equal(sh("awk 'BEGIN{n=0} /^<!-- kdcam-help: cam -->$/ {inb=1} "
                        "inb && /--out DIR/ && !n {sub(/output directory/, \"output folder\"); n=1} "
                        "{print}' docs/cli.md > %s/a.md", tdir), 0);
    assert_int_not_equal(sh("cmp -s docs/cli.md %s/a.md", tdir), 0); /* it did change */
    assert_int_equal(sh("DOC=%s/a.md sh tools/gen_cli_doc.sh --check %s 2> %s/err.txt", tdir,
                        kdcam(), tdir), 1);
    assert_int_equal(sh("grep -q 'disagrees' %s/err.txt", tdir), 0);
    /* a command without its block */
    assert_int_equal(sh("grep -v '^<!-- kdcam-help: merge -->$' docs/cli.md > %s/b.md", tdir), 0);
    assert_int_equal(sh("DOC=%s/b.md sh tools/gen_cli_doc.sh --check %s 2> %s/err.txt", tdir,
                        kdcam(), tdir), 1);
    assert_int_equal(sh("grep -q 'no help block.*merge' %s/err.txt", tdir), 0);
    sh("rm -rf %s", tdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readme_example),
        cmocka_unit_test(test_doc_matches_help),
        cmocka_unit_test(test_check_catches_drift),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
