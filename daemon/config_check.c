/*
 * config_check: what --check-config adds to loading: the files an account
 * names must be there and usable, since a sync would certainly fail
 * without them.  Apart from config.c because it reads those files and
 * needs GnuTLS to parse a CA file the way the transport will.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Larger than any CA bundle a system ships (about 200 KB). */
#define CA_FILE_MAX (16 * 1024 * 1024)

/*
 * Opens path for reading as the sync will, and checks it is a regular
 * file.  Returns the descriptor and its size, or -1 with a static or
 * strerror text in *why_r.
 */
static int
open_regular(const char *path, off_t *size_r, const char **why_r)
{
	struct stat st;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY |
	    O_NONBLOCK)) == -1) {
		*why_r = strerror(errno);
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		*why_r = strerror(errno);
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		*why_r = S_ISDIR(st.st_mode) ? "is a directory" :
		    "not a regular file";
		close(fd);
		return -1;
	}
	*size_r = st.st_size;
	return fd;
}

static size_t
check_password_file(const struct config *c, const struct account *a)
{
	const char *why;
	off_t size;
	int fd;

	if ((fd = open_regular(a->secret, &size, &why)) == -1) {
		log_error("%s:%u: [%s] password_file: %s: %s", c->path,
		    a->secret_line, a->name, a->secret, why);
		return 1;
	}
	close(fd);
	return 0;
}

/* Reads all of fd (size bytes expected) into a malloc'ed buffer. */
static int
read_all(int fd, off_t size, gnutls_datum_t *data, const char **why_r)
{
	size_t len = 0;
	ssize_t n;

	if (size > CA_FILE_MAX) {
		*why_r = "larger than 16 MB";
		return -1;
	}
	if ((data->data = malloc((size_t)size + 1)) == NULL) {
		*why_r = "out of memory";
		return -1;
	}
	while (len < (size_t)size) {
		n = read(fd, data->data + len, (size_t)size - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			*why_r = n == 0 ? "shorter than its size" :
			    strerror(errno);
			free(data->data);
			data->data = NULL;
			return -1;
		}
		len += (size_t)n;
	}
	data->size = (unsigned)len;
	return 0;
}

/*
 * The transport hands ca_file to gnutls_certificate_set_x509_trust_file(),
 * which fails on an unreadable file and on one without a certificate: the
 * same parse here, on the same bytes.
 */
static size_t
check_ca_file(const struct config *c, const struct account *a)
{
	gnutls_x509_trust_list_t list = NULL;
	gnutls_datum_t data = { NULL, 0 };
	const char *why = NULL;
	off_t size;
	int fd, ret;

	if ((fd = open_regular(a->ca_file, &size, &why)) == -1)
		goto fail;
	ret = read_all(fd, size, &data, &why);
	close(fd);
	if (ret == -1)
		goto fail;
	if ((ret = gnutls_x509_trust_list_init(&list, 0)) < 0)
		why = gnutls_strerror(ret);
	else if ((ret = gnutls_x509_trust_list_add_trust_mem(list, &data,
	    NULL, GNUTLS_X509_FMT_PEM, 0, 0)) < 0)
		why = ret == GNUTLS_E_NO_CERTIFICATE_FOUND ? "no PEM "
		    "certificate in it" : gnutls_strerror(ret);
	else if (ret == 0)
		why = "no certificate in it";
	if (list != NULL)
		gnutls_x509_trust_list_deinit(list, 1);
	free(data.data);
	if (why == NULL)
		return 0;
 fail:
	log_error("%s:%u: [%s] ca_file: %s: %s", c->path, a->ca_file_line,
	    a->name, a->ca_file, why);
	return 1;
}

size_t
config_check_account_files(const struct config *config,
    const struct account *account)
{
	size_t problems = 0;

	if (account->secret_source == SECRET_FILE)
		problems += check_password_file(config, account);
	if (account->ca_file != NULL)
		problems += check_ca_file(config, account);
	return problems;
}
