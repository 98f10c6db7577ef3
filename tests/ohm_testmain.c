/* The main of the integration suites: their tests start many processes each,
 * so they run one at a time (Criterion's parallel runner also leaks a little
 * memory inside itself when such tests overlap, which fails sanitized builds). */
#include <criterion/criterion.h>

int main(int argc, char *argv[])
{
    struct criterion_test_set *tests = criterion_initialize();
    criterion_options.jobs = 1;
    int result = 0;
    if (criterion_handle_args(argc, argv, true)) result = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    return result;
}
