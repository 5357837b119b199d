/* test_cli_doc.c - docs/cli.md's help blocks are the tool's real --help
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

static const char *kdcam(void)
{
    const char *k = getenv("KDCAM");
    return k && *k ? k : "build/kdcam";
}

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
    char dir[64] = "/tmp/kdc_test_clidoc_XXXXXX";
    assert_non_null(mkdtemp(dir));
    /* one help line changed (the cam block's -o line), as a hand edit would */
    assert_int_equal(sh("awk 'BEGIN{n=0} /^<!-- kdcam-help: cam -->$/ {inb=1} "
                        "inb && /--out DIR/ && !n {sub(/output directory/, \"output folder\"); n=1} "
                        "{print}' docs/cli.md > %s/a.md", dir), 0);
    assert_int_not_equal(sh("cmp -s docs/cli.md %s/a.md", dir), 0); /* it did change */
    assert_int_equal(sh("DOC=%s/a.md sh tools/gen_cli_doc.sh --check %s 2> %s/err.txt", dir,
                        kdcam(), dir), 1);
    assert_int_equal(sh("grep -q 'disagrees' %s/err.txt", dir), 0);
    /* a command without its block */
    assert_int_equal(sh("grep -v '^<!-- kdcam-help: merge -->$' docs/cli.md > %s/b.md", dir), 0);
    assert_int_equal(sh("DOC=%s/b.md sh tools/gen_cli_doc.sh --check %s 2> %s/err.txt", dir,
                        kdcam(), dir), 1);
    assert_int_equal(sh("grep -q 'no help block.*merge' %s/err.txt", dir), 0);
    sh("rm -rf %s", dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doc_matches_help),
        cmocka_unit_test(test_check_catches_drift),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
