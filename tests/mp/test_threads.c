/*
 * test_threads.c - the hot tier's coherence with threads sharing one
 * handle (tests/mp/threads_stress.h has the scheme and the checks). The
 * same stress runs under ThreadSanitizer as tests/tsan/tsan_threads.
 * TC_STRESS_SECONDS (default 2) sets the length of a run.
 */
#include "testutil.h"
#include "threads_stress.h"

static void setup(void)
{
    tu_fx_init("mpthr");
}

static void teardown(void)
{
    tu_fx_fini();
}

TestSuite(mp_threads, .init = setup, .fini = teardown, .timeout = 300);

static double stress_seconds(void)
{
    const char *s = getenv("TC_STRESS_SECONDS");
    double d = s ? atof(s) : 2.0;
    return d > 0 ? d : 2.0;
}

static void run_threads(int shards)
{
    char err[600];
    tc_hot_stats hs;
    uint64_t writes = 0;
    int rc = ts_run(fx.dir, shards, TU_HOT_SIZE, stress_seconds(), &hs, &writes,
                    err, sizeof err);
    cr_log_info("threads: %llu writes; hot: %llu hits, %llu misses, %llu "
                "fills, %llu retries",
                (unsigned long long)writes, (unsigned long long)hs.hits,
                (unsigned long long)hs.misses, (unsigned long long)hs.fills,
                (unsigned long long)hs.retries);
    cr_assert_eq(rc, 0, "%s", err);
}

Test(mp_threads, mp_threads_coherence_cache)
{
    run_threads(TC_SHARDS_PLAIN);
}

Test(mp_threads, mp_threads_coherence_fanout)
{
    run_threads(4);
}
