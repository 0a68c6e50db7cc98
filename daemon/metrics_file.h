/*
 * metrics_file: the shell around metrics.h that --once and the daemon
 * share.  It reads an account's figures from its state file, and writes
 * [general] metrics_file: when its owner says a sync ended (at most one
 * write per metrics_write_gap() seconds; a sync ending sooner is in the
 * next write) and every METRICS_FILE_PERIOD seconds whatever happens.
 *
 * The file is replaced atomically: written to a temporary file in the
 * same directory (".NAME.XXXXXX", which the textfile collector, reading
 * only *.prom, passes over), made mode 0644 (node_exporter runs as another
 * user; the file holds account names and times, no secret), then renamed
 * over the file.  Not fsynced: a crash loses at most a minute of figures
 * that the next write restores.  A failure to write is logged once until
 * it changes or writing works again.
 */
#ifndef MM_METRICS_FILE_H
#define MM_METRICS_FILE_H

#include <stddef.h>

#include <ev.h>

#include "metrics.h"

/* Seconds between two writes when nothing else causes one. */
#define METRICS_FILE_PERIOD 60

struct metrics_file;

/*
 * The owner's figures for one write: *p (all but p->config, which the
 * writer sets), and in *a_r a malloc'ed array of *n_r pointers to its
 * accounts' figures, which the writer frees (not what they point to).  -1
 * when out of memory (nothing is written).
 */
typedef int metrics_collect_fn(void *arg, struct metrics_process *p,
    const struct metrics_account ***a_r, size_t *n_r);

/* A writer of path on loop, its periodic timer started; collect gives the
 * figures, labelled with the name of the configuration file config_path
 * (metrics_config_name()).  NULL when out of memory. */
struct metrics_file *metrics_file_new(struct ev_loop *loop, const char *path,
    const char *config_path, metrics_collect_fn *collect, void *arg);
/* Stops its timers and frees it (NULL: nothing); sets *mf NULL. */
void metrics_file_free(struct metrics_file **mf);
/* A sync ended or something else changed: write now, or once the gap
 * since the last write has passed. */
void metrics_file_changed(struct metrics_file *mf);
/* Writes now (at the end of --once). */
void metrics_file_write(struct metrics_file *mf);
const char *metrics_file_path(const struct metrics_file *mf);

/*
 * Fills a's state figures (metrics_from_state()) from the account's state
 * file under state_dir, read without its lock (the state is replaced by
 * rename, so it is whole).  A missing file leaves zeros; one that cannot
 * be read leaves a as it was (logged at debug: the next sync reports it).
 */
void metrics_file_load_state(struct metrics_account *a,
    const char *state_dir);

#endif
