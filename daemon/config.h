/*
 * config: the INI file -> a validated, typed list of accounts.
 *
 * Every problem is reported as one log_error line "FILE:LINE: [section] key:
 * what is wrong"; loading goes on to find every error, then fails as a whole.
 * Contract: DESIGN.md section 2.
 */
#ifndef MM_CONFIG_H
#define MM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "shard.h"

/* sysexits.h EX_CONFIG: the exit status for any configuration error. */
#define CONFIG_EXIT_STATUS 78

/* Longest duration accepted anywhere (365 days), in seconds. */
#define CONFIG_DURATION_MAX (365u * 86400u)
/* Upper bound of [general] idle_refresh: RFC 2177 lets a server end an IDLE
 * after 30 minutes. */
#define CONFIG_IDLE_REFRESH_MAX (29u * 60u)
/* Upper bound of [general] max_connections. */
#define CONFIG_MAX_CONNECTIONS_MAX 1000
/* Largest config file read (bytes): 10,000 accounts take about 2 MB;
 * the buffer is only touched as far as the file goes. */
#define CONFIG_FILE_MAX (16 * 1024 * 1024)

enum tls_mode { TLS_IMPLICIT, TLS_STARTTLS, TLS_NONE };
enum auth_method { AUTH_AUTO, AUTH_PLAIN, AUTH_LOGIN, AUTH_XOAUTH2,
	AUTH_OAUTHBEARER };
enum secret_source { SECRET_COMMAND, SECRET_FILE, SECRET_INLINE };
enum compress_mode { COMPRESS_AUTO, COMPRESS_YES, COMPRESS_NO };

struct str_list {
	char **v;
	size_t n;
};

struct account {
	char *name;		/* the section name */
	unsigned line;		/* line of the [section] header */
	char *host;		/* an IPv6 address without its brackets */
	uint16_t port;		/* filled in from tls when not set */
	enum tls_mode tls;
	char *ca_file;		/* NULL: the system trust store */
	unsigned ca_file_line;
	bool has_pin;
	uint8_t pin_sha256[32];	/* SHA-256 of the server's SubjectPublicKeyInfo */
	char *user;
	enum secret_source secret_source;
	char *secret;		/* the command, the file path, or the password */
	unsigned secret_line;	/* of the key that set it */
	enum auth_method auth;
	struct str_list mailboxes;	/* default: "*" */
	struct str_list exclude;	/* default: empty */
	char *output;		/* absolute, '~' expanded */
	unsigned interval;	/* seconds; default from [general] */
	bool idle;		/* default: yes */
	bool allow_plaintext;
	enum compress_mode compress;
};

struct config {
	char *path;
	char *state_dir;	/* absolute */
	const char *state_dir_origin;	/* why it is that one, in words */
	unsigned interval;	/* seconds, default 15m */
	unsigned timeout;	/* seconds, default 60s */
	unsigned max_connections;	/* default 16 */
	unsigned retry_min;	/* seconds: first retry after a failure (30s) */
	unsigned retry_max;	/* seconds: longest retry delay (1h) */
	unsigned idle_refresh;	/* seconds between re-issues of IDLE (9m) */
	enum log_level log_level;
	char *metrics_file;	/* absolute; NULL: no metrics written */
	struct shard shard;	/* [general] shard; n == 0: every account */
	bool inline_password_warned;
	struct account *accounts;	/* in file order */
	size_t n_accounts;
};

/*
 * Loads and validates path.  Returns 0 and a config, or -1 after logging
 * every error found, each as one log_error line
 * "path:line: [section] key: what is wrong" (file-level problems such as a
 * missing file have no line).  Warnings (log_warnx, naming the file, its
 * mode and the chmod 600 that fixes it): a config file holding an inline
 * password that is readable by group or others; a config file writable by
 * others (anyone could set a password_command); a password_file readable
 * by others or writable by group or others (as "path:line: [section]
 * password_file: ...", also from config_load_string).
 *
 * Lines longer than inih's line limit are refused (never split).  Leading
 * whitespace is ignored (there are no continuation lines).  "~" and "~/" are
 * expanded in output, state_dir, ca_file and password_file; relative ca_file
 * and password_file paths are taken relative to the config file's directory.
 * The default state_dir, at load time: $STATE_DIRECTORY (set by systemd for
 * the service); else /var/lib/mboxmirror for a config file under /etc
 * (the services' StateDirectory, whoever runs the command); else
 * $XDG_STATE_HOME/mboxmirror or ~/.local/state/mboxmirror.  host is a name
 * or an address, an IPv6 one bare or in brackets; "name:port" is refused
 * (port = is the way).  Two accounts' outputs may not be one directory or
 * nest, compared as config_resolve_path() resolves them (symlinks followed).
 */
int config_load(const char *path, struct config **config_r);
/* The same on a string; name stands for the file name in messages. */
int config_load_string(const char *name, const char *text,
    struct config **config_r);
void config_free(struct config **config);

/*
 * --check-config's look at the files account names (config_check.c): a
 * password_file must be a regular file this process can open for reading,
 * and a ca_file a readable regular file GnuTLS takes at least one PEM
 * certificate from.  Each problem is one log_error line
 * "path:line: [section] key: FILE: what is wrong".  Returns the number of
 * problems found.  Not part of config_load(): a file may appear
 * between a reload and the next sync (a systemd credential, a mounted
 * secret), and a sync names the file itself when it is still missing.
 */
size_t config_check_account_files(const struct config *config,
    const struct account *account);

/*
 * path (absolute) as the kernel would reach it, for comparing directories:
 * every prefix that exists is resolved with realpath(3), so symlinks and
 * ".." after one are followed; past the part that exists, ".", ".." and
 * repeated slashes are resolved lexically.  malloc'ed, NULL when out of
 * memory.
 */
char *config_resolve_path(const char *path);
/* Whether inner is outer or below it; both as config_resolve_path() gives
 * them ("/a/b" is within "/a", "/ab" is not). */
bool config_path_within(const char *outer, const char *inner);

/*
 * The default config path per DESIGN.md 1 (malloc'ed, NULL when out of
 * memory): $MBOXMIRROR_CONFIG if set, else the per-user file
 * ($XDG_CONFIG_HOME or ~/.config, then mboxmirror/config.ini) if it exists,
 * else /etc/mboxmirror/mboxmirror.ini.
 */
char *config_default_path(void);
/* Logs, for a config_default_path() result that does not exist, every path
 * searched and how to make one. */
void config_report_none_found(void);

/*
 * Keeps only the accounts shard takes (shard.h; n == 0: all of them), in
 * file order, freeing the others, and records shard as config's.  Done
 * after loading, so every account of the file is validated whatever the
 * shard (outputs that collide across shards are refused too) and a
 * --shard given on the command line can replace the file's.
 */
void config_keep_shard(struct config *config, const struct shard *shard);

/* Finds an account by name, or NULL. */
const struct account *config_find_account(const struct config *config,
    const char *name);

/*
 * Parses "90", "30s", "15m", "2h", "1d" into seconds; 0 or -1.  Refused: no
 * digits, signs, spaces, other suffixes, zero, more than CONFIG_DURATION_MAX.
 */
int config_parse_duration(const char *text, unsigned *seconds_r);
/* Writes seconds in the largest exact unit ("5m", "90s", "1d") to buf
 * (16 bytes are always enough) and returns buf. */
const char *config_format_duration(unsigned seconds, char *buf, size_t size);

/* The config-file spellings: "implicit", "auto", "auto", ... */
const char *tls_mode_name(enum tls_mode mode);
const char *auth_method_name(enum auth_method method);
const char *compress_mode_name(enum compress_mode mode);

#endif
