/*
 * settings.c - python-diskcache's settings: names, defaults, validation.
 *
 * The Settings table holds these rows with diskcache's names and defaults
 * (plus the metadata rows count/size/hits/misses). A bad value is refused
 * where it is given, naming the setting, before anything is written.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

const struct tc_setting_def tc__settings[TC_SETTING_COUNT] = {
    {"statistics", TC_INT, 0, NULL},
    {"tag_index", TC_INT, 0, NULL},
    {"eviction_policy", TC_TEXT, 0, "least-recently-stored"},
    {"size_limit", TC_INT, 1073741824, NULL},
    {"cull_limit", TC_INT, 10, NULL},
    {"sqlite_auto_vacuum", TC_INT, 1, NULL},
    {"sqlite_cache_size", TC_INT, 8192, NULL},
    {"sqlite_journal_mode", TC_TEXT, 0, "wal"},
    {"sqlite_mmap_size", TC_INT, 67108864, NULL},
    {"sqlite_synchronous", TC_INT, 1, NULL},
    {"disk_min_file_size", TC_INT, 32768, NULL},
    {"disk_pickle_protocol", TC_INT, 5, NULL},
};

static const char *const policy_names[] = {
    "none",
    "least-recently-stored",
    "least-recently-used",
    "least-frequently-used",
};

int tc__policy_from_name(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, policy_names[i]) == 0)
            return i;
    return -1;
}

const char *tc__policy_name(int policy)
{
    return policy >= 0 && policy < 4 ? policy_names[policy] : "?";
}

int tc__setting_index(const char *name)
{
    for (int i = 0; i < TC_SETTING_COUNT; i++)
        if (name && strcmp(name, tc__settings[i].name) == 0)
            return i;
    return -1;
}

/* Read a number from a datum (INT, or REAL when @allow_real). */
static int number(const tc_data *v, const char *name, bool allow_real,
                  double *out)
{
    if (v->type == TC_INT && v->ptr && v->len == 8) {
        *out = (double)*(const int64_t *)v->ptr;
        return TC_OK;
    }
    if (v->type == TC_REAL && v->ptr && v->len == 8 && allow_real) {
        double d = *(const double *)v->ptr;
        if (!isfinite(d))
            return tc__err(TC_EINVAL, "setting %s: %g is not a finite number",
                           name, d);
        *out = d;
        return TC_OK;
    }
    return tc__err(TC_EINVAL, "setting %s: needs %s", name,
                   allow_real ? "a number" : "an integer");
}

static int int_range(const tc_data *v, const char *name, double lo, double hi,
                     tc_value *norm)
{
    double d = 0;
    int rc = number(v, name, false, &d);

    if (rc)
        return rc;
    if (d < lo || d > hi)
        return tc__err(TC_EINVAL,
                       "setting %s: %.0f is out of range [%.0f, %.0f]", name, d,
                       lo, hi);
    tc__value_set_int(norm, *(const int64_t *)v->ptr);
    return TC_OK;
}

int tc__setting_validate(int idx, const tc_data *v, tc_value *norm)
{
    const char *name = tc__settings[idx].name;
    double d = 0;
    int rc;

    if (!v)
        return tc__err(TC_EINVAL, "setting %s: value is NULL", name);
    switch (idx) {
    case 0: /* statistics */
    case 1: /* tag_index */
        return int_range(v, name, 0, 1, norm);
    case 2: { /* eviction_policy */
        char buf[64];
        if (v->type != TC_TEXT || v->len >= sizeof buf)
            return tc__err(TC_EINVAL,
                           "setting eviction_policy: needs one of none, "
                           "least-recently-stored, least-recently-used, "
                           "least-frequently-used");
        memcpy(buf, v->ptr, v->len);
        buf[v->len] = 0;
        if (tc__policy_from_name(buf) < 0)
            return tc__err(TC_EINVAL,
                           "setting eviction_policy: unknown policy '%s' "
                           "(none, least-recently-stored, "
                           "least-recently-used, least-frequently-used)",
                           buf);
        return tc__value_set_bytes(norm, TC_TEXT, buf, v->len);
    }
    case 3: /* size_limit */
        if ((rc = number(v, name, true, &d)))
            return rc;
        if (d < 0)
            return tc__err(TC_EINVAL, "setting size_limit: %g is negative", d);
        if (v->type == TC_INT)
            tc__value_set_int(norm, *(const int64_t *)v->ptr);
        else
            tc__value_set_real(norm, d);
        return TC_OK;
    case 4:  /* cull_limit */
    case 8:  /* sqlite_mmap_size */
    case 10: /* disk_min_file_size */
        return int_range(v, name, 0, 9.2e18, norm);
    case 5: /* sqlite_auto_vacuum */
        return int_range(v, name, 0, 2, norm);
    case 6: /* sqlite_cache_size */
        return int_range(v, name, -2e9, 2e9, norm);
    case 7: { /* sqlite_journal_mode */
        static const char *modes[] = {"delete", "truncate", "persist",
                                      "memory", "wal",      "off"};
        if (v->type == TC_TEXT && v->len < 16) {
            char buf[16];
            memcpy(buf, v->ptr, v->len);
            buf[v->len] = 0;
            for (int i = 0; i < 6; i++)
                if (strcasecmp(buf, modes[i]) == 0)
                    return tc__value_set_bytes(norm, TC_TEXT, modes[i],
                                               strlen(modes[i]));
        }
        return tc__err(TC_EINVAL,
                       "setting sqlite_journal_mode: needs one of delete, "
                       "truncate, persist, memory, wal, off");
    }
    case 9: /* sqlite_synchronous */
        return int_range(v, name, 0, 3, norm);
    case 11: /* disk_pickle_protocol */
        return int_range(v, name, 0, 5, norm);
    }
    return tc__err(TC_EINVAL, "unknown setting index %d", idx);
}
