/*
 * test_fork.c - a handle survives fork(): the child may keep using the
 * handle its parent opened (it notices the fork and opens fresh
 * connections, never touching the parent's), and the parent carries on
 * unharmed (tiercache.h header comment; DESIGN-BRIEF 9.6).
 */
#include "testutil.h"

static void setup(void)
{
    tu_fx_init("mpfork");
}

static void teardown(void)
{
    tu_fx_fini();
}

TestSuite(mp_fork, .init = setup, .fini = teardown, .timeout = 120);

struct child_arg {
    int close_handle; /* 1: tc_close the inherited handle before exiting */
    const char *key;  /* the child's own key */
};

/* inherited_child - uses fx.c, the handle the parent opened. */
static int inherited_child(void *argp, int msgfd)
{
    struct child_arg *a = argp;
    tc_item it = TC_ITEM_INIT;
    int rc = tc_get(fx.c, TU_TEXT("parent"), &it, 0);
    if (rc != TC_OK || it.value.type != TC_INT || it.value.i != 1)
        return tu_child_msg(msgfd, "get parent's key: %s: %s", tc_errname(rc),
                            tc_errmsg());
    tc_item_clear(&it);
    rc = tc_set(fx.c, TU_TEXT(a->key), TU_INT(2), TC_NO_EXPIRE, NULL, 0);
    if (rc != TC_OK)
        return tu_child_msg(msgfd, "set: %s: %s", tc_errname(rc), tc_errmsg());
    rc = tc_get(fx.c, TU_TEXT(a->key), &it, 0);
    if (rc != TC_OK || it.value.i != 2)
        return tu_child_msg(msgfd, "get own write: %s", tc_errname(rc));
    tc_item_clear(&it);
    rc = tc_incr(fx.c, TU_TEXT("counter"), TU_INT(1), TU_INT(0), NULL, 0);
    if (rc != TC_OK)
        return tu_child_msg(msgfd, "incr: %s", tc_errname(rc));
    char *v = tu_pattern(40000, 3);
    rc = tc_set(fx.c, TU_TEXT("childbig"), TU_BYTES(v, 40000), TC_NO_EXPIRE,
                NULL, 0);
    free(v);
    if (rc != TC_OK)
        return tu_child_msg(msgfd, "set big: %s", tc_errname(rc));
    if (a->close_handle)
        tc_close(fx.c);
    return 0;
}

static void parent_prepare(int shards)
{
    fx.c = tu_open_ex(fx.dir, shards, NULL, NULL);
    tu_set(fx.c, TU_TEXT("parent"), TU_INT(1));
    TU_OK(tc_incr(fx.c, TU_TEXT("counter"), TU_INT(1), TU_INT(0), NULL, 0));
    tu_expect_int(fx.c, TU_TEXT("parent"), 1); /* connections are open */
}

static void parent_after(const char *child_key)
{
    uint64_t w = 99;
    tu_expect_int(fx.c, TU_TEXT(child_key), 2);
    tu_expect_int(fx.c, TU_TEXT("counter"), 2);
    tu_set(fx.c, TU_TEXT("parent2"), TU_INT(3));
    tu_expect_int(fx.c, TU_TEXT("parent2"), 3);
    TU_OK(tc_begin(fx.c, 0));
    tu_set(fx.c, TU_TEXT("in-txn"), TU_INT(4));
    TU_OK(tc_commit(fx.c));
    TU_OK(tc_check(fx.c, 0, NULL, NULL, &w, 0));
    cr_assert_eq(w, 0);

    /* A fresh handle (another "process" view) sees everything. */
    tc_cache *other = tu_open_ex(fx.dir, TC_SHARDS_AUTO, NULL, NULL);
    tu_expect_int(other, TU_TEXT("parent2"), 3);
    tu_expect_int(other, TU_TEXT("in-txn"), 4);
    tu_expect_int(other, TU_TEXT(child_key), 2);
    tc_close(other);
}

Test(mp_fork, mp_fork_child_uses_parent_handle)
{
    char msg[1024];
    struct child_arg a = {0, "child"};
    parent_prepare(TC_SHARDS_PLAIN);
    int code = tu_run_child(inherited_child, &a, msg, sizeof msg);
    cr_assert_eq(code, 0, "child: exit %d: %s", code, msg);
    parent_after("child");
}

/* The child closing the inherited handle must not close (or checkpoint
 * and delete the WAL under) the parent's connections. */
Test(mp_fork, mp_fork_child_closes_inherited_handle)
{
    char msg[1024];
    struct child_arg a = {1, "child"};
    parent_prepare(TC_SHARDS_PLAIN);
    int code = tu_run_child(inherited_child, &a, msg, sizeof msg);
    cr_assert_eq(code, 0, "child: exit %d: %s", code, msg);
    parent_after("child");
}

Test(mp_fork, mp_fork_fanout_child_uses_parent_handle)
{
    char msg[1024];
    struct child_arg a = {1, "child"};
    parent_prepare(TC_SHARDS_AUTO);
    int code = tu_run_child(inherited_child, &a, msg, sizeof msg);
    cr_assert_eq(code, 0, "child: exit %d: %s", code, msg);
    parent_after("child");
}

/* A grandchild of a child works too (the fork generation is per process,
 * not a one-shot flag). */
static int child_forks_again(void *argp, int msgfd)
{
    struct child_arg ca = {0, "child"};
    struct child_arg ga = {1, "grandchild"};
    (void)argp;
    int rc = inherited_child(&ca, msgfd);
    if (rc)
        return rc;
    pid_t pid = fork();
    if (pid < 0)
        return tu_child_msg(msgfd, "fork");
    if (pid == 0)
        _exit(inherited_child(&ga, msgfd));
    int code = tu_wait_exit(pid);
    if (code != 0)
        return tu_child_msg(msgfd, "grandchild exit %d", code);
    tc_item it = TC_ITEM_INIT;
    rc = tc_get(fx.c, TU_TEXT("grandchild"), &it, 0);
    if (rc != TC_OK)
        return tu_child_msg(msgfd, "child reads grandchild's key: %s",
                            tc_errname(rc));
    tc_item_clear(&it);
    return 0;
}

Test(mp_fork, mp_fork_grandchild_uses_inherited_handle)
{
    char msg[1024];
    parent_prepare(TC_SHARDS_PLAIN);
    int code = tu_run_child(child_forks_again, NULL, msg, sizeof msg);
    cr_assert_eq(code, 0, "child: exit %d: %s", code, msg);
    tu_expect_int(fx.c, TU_TEXT("child"), 2);
    tu_expect_int(fx.c, TU_TEXT("grandchild"), 2);
    tu_expect_int(fx.c, TU_TEXT("counter"), 3);
}

/* Several children share the inherited handle with the parent at once;
 * the counter adds up. */
static int counting_child(void *argp, int msgfd)
{
    (void)argp;
    for (int i = 0; i < 100; i++) {
        int rc = tc_incr(fx.c, TU_TEXT("counter"), TU_INT(1), TU_INT(0), NULL,
                         TC_RETRY);
        if (rc != TC_OK)
            return tu_child_msg(msgfd, "incr %d: %s: %s", i, tc_errname(rc),
                                tc_errmsg());
    }
    return 0;
}

Test(mp_fork, mp_fork_children_share_inherited_handle)
{
    enum { NCHILD = 6 };
    pid_t pids[NCHILD];
    parent_prepare(TC_SHARDS_PLAIN);
    fflush(NULL);
    for (int i = 0; i < NCHILD; i++) {
        pids[i] = fork();
        cr_assert_geq(pids[i], 0);
        if (pids[i] == 0)
            _exit(counting_child(NULL, 2));
    }
    for (int i = 0; i < 100; i++)
        TU_OK(tc_incr(fx.c, TU_TEXT("counter"), TU_INT(1), TU_INT(0), NULL,
                      TC_RETRY));
    for (int i = 0; i < NCHILD; i++) {
        int code = tu_wait_exit(pids[i]);
        cr_assert_eq(code, 0, "child %d: exit %d", i, code);
    }
    tu_expect_int(fx.c, TU_TEXT("counter"), 1 + 100 + NCHILD * 100);
}

/* The parent forks inside its own write transaction: the child is not in
 * that transaction (its thread id may equal the parent's), sees only
 * committed data, and its reads do not disturb the parent's transaction. */
static int outside_txn_child(void *argp, int msgfd)
{
    (void)argp;
    tc_item it = TC_ITEM_INIT;
    int rc = tc_get(fx.c, TU_TEXT("uncommitted"), &it, 0);
    if (rc != TC_NOTFOUND)
        return tu_child_msg(msgfd,
                            "child sees the parent's uncommitted "
                            "write: %s",
                            tc_errname(rc));
    rc = tc_get(fx.c, TU_TEXT("parent"), &it, 0);
    if (rc != TC_OK)
        return tu_child_msg(msgfd, "child get committed: %s: %s",
                            tc_errname(rc), tc_errmsg());
    tc_item_clear(&it);
    return 0;
}

Test(mp_fork, mp_fork_during_parent_transaction)
{
    char msg[1024];
    parent_prepare(TC_SHARDS_PLAIN);
    TU_OK(tc_begin(fx.c, 0));
    tu_set(fx.c, TU_TEXT("uncommitted"), TU_INT(5));
    int code = tu_run_child(outside_txn_child, NULL, msg, sizeof msg);
    cr_assert_eq(code, 0, "child: exit %d: %s", code, msg);
    tu_expect_int(fx.c, TU_TEXT("uncommitted"), 5);
    TU_OK(tc_commit(fx.c));
    tc_cache *other = tu_open(fx.dir, NULL);
    tu_expect_int(other, TU_TEXT("uncommitted"), 5);
    tc_close(other);
}
