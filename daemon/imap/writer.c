/*
 * imap/writer: tagged commands, argument quoting, modified UTF-7 and
 * sequence sets.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "imap/writer.h"
#include "util/utf8.h"

static int	 cmd_reserve(struct imap_cmd *, size_t);
static void	 cmd_append(struct imap_cmd *, const void *, size_t);
static void	 cmd_add_split(struct imap_cmd *);
static bool	 is_astring_char(unsigned char);
static bool	 is_line_safe(const char *, size_t);


/* Growth doubles, so building a command stays linear in its size. */
static int
cmd_reserve(struct imap_cmd *cmd, size_t more)
{
	size_t	 need, ncap;
	char	*p;

	if (cmd->failed)
		return -1;
	if (more > IMAP_CMD_MAX || cmd->len > IMAP_CMD_MAX - more)
		goto fail;
	need = cmd->len + more + 1;
	if (need <= cmd->cap)
		return 0;
	ncap = cmd->cap ? cmd->cap : 64;
	while (ncap < need)
		ncap *= 2;
	/* Not realloc: the old block may hold a password, and is wiped. */
	if ((p = malloc(ncap)) == NULL)
		goto fail;
	if (cmd->data != NULL) {
		memcpy(p, cmd->data, cmd->len);
		explicit_bzero(cmd->data, cmd->cap);
		free(cmd->data);
	}
	cmd->data = p;
	cmd->cap = ncap;
	return 0;
fail:
	cmd->failed = true;
	return -1;
}

static void
cmd_append(struct imap_cmd *cmd, const void *buf, size_t len)
{
	if (cmd_reserve(cmd, len) == -1)
		return;
	memcpy(cmd->data + cmd->len, buf, len);
	cmd->len += len;
	cmd->data[cmd->len] = '\0';
}

static void
cmd_add_split(struct imap_cmd *cmd)
{
	size_t	*p;

	if (cmd->failed)
		return;
	p = reallocarray(cmd->splits, cmd->nsplits + 1, sizeof(*p));
	if (p == NULL) {
		cmd->failed = true;
		return;
	}
	cmd->splits = p;
	cmd->splits[cmd->nsplits++] = cmd->len;
}

/* ASTRING-CHAR: ATOM-CHAR or ']' (resp-specials). */
static bool
is_astring_char(unsigned char c)
{
	if (c <= 0x20 || c >= 0x7f)
		return false;
	return strchr("(){%*\"\\", c) == NULL;
}

/* Nothing that could end or corrupt the command line. */
static bool
is_line_safe(const char *s, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++) {
		unsigned char c = s[i];
		if (c < 0x20 || c >= 0x7f)
			return false;
	}
	return true;
}

void
imap_cmd_init(struct imap_cmd *cmd, struct imap_tagger *tagger,
    const char *verb)
{
	memset(cmd, 0, sizeof(*cmd));
	if (tagger->next == 0)
		tagger->next = 1;
	snprintf(cmd->tag, sizeof(cmd->tag), "A%u", tagger->next++);
	cmd_append(cmd, cmd->tag, strlen(cmd->tag));
	if (verb == NULL || *verb == '\0' || !is_line_safe(verb, strlen(verb))) {
		cmd->failed = true;
		return;
	}
	cmd_append(cmd, " ", 1);
	cmd_append(cmd, verb, strlen(verb));
}

void
imap_cmd_free(struct imap_cmd *cmd)
{
	/* A LOGIN or AUTHENTICATE carries a secret: leave no copy behind. */
	if (cmd->data != NULL)
		explicit_bzero(cmd->data, cmd->cap);
	free(cmd->data);
	free(cmd->splits);
	memset(cmd, 0, sizeof(*cmd));
}

void
imap_cmd_add_atom(struct imap_cmd *cmd, const char *atom)
{
	size_t	 len;

	len = strlen(atom);
	if (len == 0 || !is_line_safe(atom, len)) {
		cmd->failed = true;
		return;
	}
	cmd_append(cmd, " ", 1);
	cmd_append(cmd, atom, len);
}

void
imap_cmd_add_raw(struct imap_cmd *cmd, const char *fmt, ...)
{
	va_list	 ap;
	char	 small[256], *buf = small;
	int	 n;

	if (cmd->failed)
		return;
	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		goto fail;
	if ((size_t)n >= sizeof(small)) {
		if ((size_t)n > IMAP_CMD_MAX || (buf = malloc(n + 1)) == NULL)
			goto fail;
		va_start(ap, fmt);
		vsnprintf(buf, n + 1, fmt, ap);
		va_end(ap);
	}
	/* strlen() shorter than n means a NUL came out of a %c. */
	if (strlen(buf) != (size_t)n || memchr(buf, '\r', n) != NULL ||
	    memchr(buf, '\n', n) != NULL)
		goto fail;
	cmd_append(cmd, " ", 1);
	cmd_append(cmd, buf, n);
	goto out;
fail:
	cmd->failed = true;
out:
	if (buf != small)
		free(buf);
}

void
imap_cmd_add_string(struct imap_cmd *cmd, const char *value, size_t len,
    enum imap_literal_mode mode)
{
	char	 hdr[32];
	size_t	 i, start;
	bool	 atom = true, literal = len > IMAP_QUOTED_MAX, plus;

	if (cmd->failed)
		return;
	if (value == NULL && len > 0)
		goto fail;
	for (i = 0; i < len; i++) {
		unsigned char c = value[i];
		if (c == '\0')
			goto fail;
		if (c == '\r' || c == '\n' || c >= 0x80)
			literal = true;
		if (!is_astring_char(c))
			atom = false;
	}
	cmd_append(cmd, " ", 1);
	if (len == 0) {
		cmd_append(cmd, "\"\"", 2);
	} else if (literal) {
		plus = mode == IMAP_LITERAL_PLUS ||
		    (mode == IMAP_LITERAL_MINUS && len <= IMAP_LITERAL_MINUS_MAX);
		snprintf(hdr, sizeof(hdr), "{%zu%s}\r\n", len, plus ? "+" : "");
		cmd_append(cmd, hdr, strlen(hdr));
		if (!plus)
			cmd_add_split(cmd);
		cmd_append(cmd, value, len);
	} else if (atom) {
		cmd_append(cmd, value, len);
	} else {
		cmd_append(cmd, "\"", 1);
		for (start = i = 0; i < len; i++) {
			if (value[i] != '"' && value[i] != '\\')
				continue;
			cmd_append(cmd, value + start, i - start);
			cmd_append(cmd, "\\", 1);
			start = i;
		}
		cmd_append(cmd, value + start, len - start);
		cmd_append(cmd, "\"", 1);
	}
	return;
fail:
	cmd->failed = true;
}

void
imap_cmd_add_mailbox(struct imap_cmd *cmd, const char *utf8_name,
    bool utf8, enum imap_literal_mode mode)
{
	char	*enc;

	if (cmd->failed)
		return;
	if (strcasecmp(utf8_name, "INBOX") == 0) {
		cmd_append(cmd, " INBOX", 6);
		return;
	}
	if (utf8) {
		/* Validate: the server must never see broken UTF-8. */
		size_t len = strlen(utf8_name);

		if (!utf8_valid(utf8_name, len)) {
			cmd->failed = true;
			return;
		}
		imap_cmd_add_string(cmd, utf8_name, len, mode);
		return;
	}
	if ((enc = imap_utf7_encode(utf8_name, strlen(utf8_name))) == NULL) {
		cmd->failed = true;
		return;
	}
	imap_cmd_add_string(cmd, enc, strlen(enc), mode);
	free(enc);
}

int
imap_cmd_finish(struct imap_cmd *cmd)
{
	cmd_append(cmd, "\r\n", 2);
	return cmd->failed ? -1 : 0;
}

size_t
imap_cmd_nparts(const struct imap_cmd *cmd)
{
	return cmd->nsplits + 1;
}

const char *
imap_cmd_part(const struct imap_cmd *cmd, size_t i, size_t *len_r)
{
	size_t	 start, end;

	if (i > cmd->nsplits || cmd->data == NULL) {
		*len_r = 0;
		return NULL;
	}
	start = i == 0 ? 0 : cmd->splits[i - 1];
	end = i == cmd->nsplits ? cmd->len : cmd->splits[i];
	*len_r = end - start;
	return cmd->data + start;
}

char *
imap_utf7_encode(const char *utf8, size_t len)
{
	const unsigned char *s = (const unsigned char *)utf8;
	char	*out, *o;
	size_t	 pos = 0, n;
	uint32_t cp, bits = 0;
	unsigned nbits = 0;
	bool	 shifted = false;

	/*
	 * Worst case per input byte: a 1-byte control becomes 16 bits
	 * (<= 3 base64 chars) plus "&-" when alone; 4-byte sequences become
	 * 32 bits.  5 bytes out per byte in covers every case.
	 */
	if (len > (SIZE_MAX - 1) / 5 || (out = malloc(len * 5 + 1)) == NULL)
		return NULL;
	o = out;
	while (pos < len) {
		if ((n = utf8_decode(s + pos, len - pos, &cp)) == 0 || cp == 0)
			goto fail;
		pos += n;
		if (cp >= 0x20 && cp <= 0x7e) {
			if (shifted) {
				if (nbits > 0)
					*o++ = base64_imap[(bits << (6 - nbits)) & 0x3f];
				*o++ = '-';
				shifted = false;
				nbits = 0;
				bits = 0;
			}
			*o++ = cp;
			if (cp == '&')
				*o++ = '-';
			continue;
		}
		if (!shifted) {
			*o++ = '&';
			shifted = true;
		}
		if (cp >= 0x10000) {
			uint32_t v = cp - 0x10000;
			uint32_t units[2] = { 0xd800 | (v >> 10),
			    0xdc00 | (v & 0x3ff) };
			for (int u = 0; u < 2; u++) {
				bits = (bits << 16) | units[u];
				nbits += 16;
				while (nbits >= 6) {
					nbits -= 6;
					*o++ = base64_imap[(bits >> nbits) & 0x3f];
				}
			}
		} else {
			bits = (bits << 16) | cp;
			nbits += 16;
			while (nbits >= 6) {
				nbits -= 6;
				*o++ = base64_imap[(bits >> nbits) & 0x3f];
			}
		}
		bits &= (1u << nbits) - 1;
	}
	if (shifted) {
		if (nbits > 0)
			*o++ = base64_imap[(bits << (6 - nbits)) & 0x3f];
		*o++ = '-';
	}
	*o = '\0';
	return out;
fail:
	free(out);
	return NULL;
}

char *
imap_utf7_decode(const char *mutf7, size_t len)
{
	const unsigned char *s = (const unsigned char *)mutf7;
	char	*out, *o;
	size_t	 i = 0;
	uint32_t bits, high, cp;
	unsigned nbits;
	int	 v;
	bool	 after_shift = false;

	/*
	 * A shift can decode to more bytes than it has: 16 bits of base64
	 * (8/3 characters) give one UTF-16 unit, up to 3 bytes of UTF-8, so
	 * 8 characters give up to 9 bytes (a surrogate pair is 32 bits for
	 * 4 bytes, less).  Outside a shift a byte gives at most one.  So the
	 * output is at most len * 9 / 8 bytes, plus the NUL.
	 */
	if (len > (SIZE_MAX - 1) / 9 * 8 ||
	    (out = malloc(len + len / 8 + 1)) == NULL)
		return NULL;
	o = out;
	while (i < len) {
		if (s[i] < 0x20 || s[i] > 0x7e)
			goto fail;
		if (s[i] != '&') {
			*o++ = s[i++];
			after_shift = false;
			continue;
		}
		i++;
		if (i < len && s[i] == '-') {
			*o++ = '&';
			i++;
			after_shift = false;
			continue;
		}
		/* Two shifts in a row should have been one. */
		if (after_shift)
			goto fail;
		bits = 0;
		nbits = 0;
		high = 0;
		for (; i < len && s[i] != '-'; i++) {
			if ((v = base64_value(base64_imap, (unsigned char)s[i])) == -1)
				goto fail;
			bits = ((bits << 6) | (uint32_t)v) & 0xffffff;
			nbits += 6;
			if (nbits < 16)
				continue;
			nbits -= 16;
			cp = (bits >> nbits) & 0xffff;
			if (high != 0) {
				if (cp < 0xdc00 || cp > 0xdfff)
					goto fail;
				cp = 0x10000 + ((high - 0xd800) << 10) +
				    (cp - 0xdc00);
				high = 0;
			} else if (cp >= 0xd800 && cp <= 0xdbff) {
				high = cp;
				continue;
			} else if (cp >= 0xdc00 && cp <= 0xdfff)
				goto fail;
			/* Printable ASCII must stand for itself; NUL never. */
			if (cp == 0 || (cp >= 0x20 && cp <= 0x7e))
				goto fail;
			o += utf8_encode(cp, o);
		}
		/* Unterminated, empty, dangling high surrogate, a whole
		 * surplus base64 char, or non-zero padding bits. */
		if (i == len || high != 0 || nbits >= 6 ||
		    (bits & ((1u << nbits) - 1)) != 0)
			goto fail;
		i++;
		after_shift = true;
	}
	*o = '\0';
	return out;
fail:
	free(out);
	return NULL;
}

char *
imap_sasl_gs2_header(const char *authzid)
{
	size_t	 len = strlen(authzid);
	char	*out, *o;
	const char *p;

	/* Each byte is at most 3; "n,a=" and "," around it. */
	if (len > (SIZE_MAX - 6) / 3 || (out = malloc(len * 3 + 6)) == NULL)
		return NULL;
	o = stpcpy(out, "n,a=");
	for (p = authzid; *p != '\0'; p++) {
		if (*p == ',')
			o = stpcpy(o, "=2C");
		else if (*p == '=')
			o = stpcpy(o, "=3D");
		else
			*o++ = *p;
	}
	strcpy(o, ",");
	return out;
}

size_t
imap_seqset_format(char *buf, size_t size, const uint32_t *uids, size_t n)
{
	char	 item[32], a[12], b[12];
	size_t	 i, j, total = 0, k;

	if (size > 0)
		buf[0] = '\0';
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && uids[j - 1] != UINT32_MAX &&
		    uids[j] == uids[j - 1] + 1; j++)
			;
		if (uids[i] == UINT32_MAX)
			snprintf(a, sizeof(a), "*");
		else
			snprintf(a, sizeof(a), "%u", (unsigned)uids[i]);
		if (uids[j - 1] == UINT32_MAX)
			snprintf(b, sizeof(b), "*");
		else
			snprintf(b, sizeof(b), "%u", (unsigned)uids[j - 1]);
		snprintf(item, sizeof(item), "%s%s%s%s", i > 0 ? "," : "", a,
		    j - i > 1 ? ":" : "", j - i > 1 ? b : "");
		for (k = 0; item[k] != '\0'; k++, total++)
			if (total + 1 < size) {
				buf[total] = item[k];
				buf[total + 1] = '\0';
			}
	}
	return total;
}
