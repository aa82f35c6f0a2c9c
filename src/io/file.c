/* Opening files for reading and writing, one way for every file (what is
 * done with each kind of path is described in file.h). */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>
#include <sys/file.h> /* flock: a temporary being written is locked */
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "file.h"

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/* The temporary beside <name> is <name> TMP_TAG followed by TMP_RANDOM
 * letters or digits. */
#define TMP_TAG ".nabla-tmp-"
#define TMP_RANDOM 6
/* Symbolic links followed before giving up (as the kernel's ELOOP). */
#define MAX_LINKS 40

/* A path as sentences show it: whole up to SHOWN_MAX bytes, otherwise
 * "..." and its last bytes (the file's name), cut at a character. */
#define SHOWN_MAX 80
#define SHOWN(p) shown((p), (char[SHOWN_MAX + 1]){0})
static const char *shown(const char *path, char *buf)
{
    size_t len = strlen(path);
    if (len <= SHOWN_MAX)
        return path;
    const char *tail = path + len - (SHOWN_MAX - 3);
    while ((unsigned char)*tail >= 0x80 && (unsigned char)*tail < 0xC0)
        tail++; /* not inside a UTF-8 character */
    memcpy(buf, "...", 3);
    memcpy(buf + 3, tail, strlen(tail) + 1);
    return buf;
}

/* What a file that is not a regular one is, for "PATH is ...". */
static const char *kind_of(mode_t m)
{
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISSOCK(m))
        return "a socket";
    return "a special file";
}

/* --------------------------------------------------------------- reading */

FILE *nbio_open_read(const char *path, uint64_t *size, char *why, size_t n)
{
    /* O_NONBLOCK: opening a FIFO with no writer returns at once */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, n, "cannot open %s: %s", SHOWN(path), strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        snprintf(why, n, "cannot open %s: %s", SHOWN(path), strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(sb.st_mode)) {
        snprintf(why, n, "%s is %s, not a regular file", SHOWN(path), kind_of(sb.st_mode));
        close(fd);
        return NULL;
    }
    int flags = fcntl(fd, F_GETFL);
    FILE *f = NULL;
    if (flags != -1 && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0)
        f = fdopen(fd, "rb");
    if (!f) {
        snprintf(why, n, "cannot open %s: %s", SHOWN(path), strerror(errno));
        close(fd);
        return NULL;
    }
    if (size)
        *size = (uint64_t)sb.st_size;
    return f;
}

nb_status nbio_read_all(const char *path, nb_alloc_fn alloc, void *ud, void **buf, size_t *len,
                        char *why, size_t n)
{
    *buf = NULL;
    *len = 0;
    if (!alloc) {
        alloc = nb_default_alloc;
        ud = NULL;
    }
    uint64_t size;
    FILE *f = nbio_open_read(path, &size, why, n);
    if (!f)
        return NB_ERR_IO;
    if (size > (uint64_t)(SIZE_MAX / 2)) {
        fclose(f);
        snprintf(why, n, "%s is too large to read (%llu bytes)", SHOWN(path),
                 (unsigned long long)size);
        return NB_ERR_NOMEM;
    }
    unsigned char *b = size > 0 ? alloc(ud, NULL, 0, (size_t)size) : NULL;
    if (size > 0 && !b) {
        fclose(f);
        snprintf(why, n, "out of memory for the %llu bytes of %s", (unsigned long long)size,
                 SHOWN(path));
        return NB_ERR_NOMEM;
    }
    errno = 0;
    size_t got = size > 0 ? fread(b, 1, (size_t)size, f) : 0;
    int extra = fgetc(f); /* the file grew since fstat: not a stable file */
    int e = errno;
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed || got != size || extra != EOF) {
        if (b)
            alloc(ud, b, (size_t)size, 0);
        if (failed)
            snprintf(why, n, "reading %s failed: %s", SHOWN(path), strerror(e ? e : EIO));
        else
            snprintf(why, n, "%s changed size while it was read", SHOWN(path));
        return NB_ERR_IO;
    }
    *buf = b;
    *len = (size_t)size;
    return NB_OK;
}

/* --------------------------------------------------------------- writing */

struct nbio_out {
    FILE *f;
    nb_alloc_fn alloc;
    void *ud;
    const char *path;      /* as the caller gave it */
    bool in_place;         /* a device or FIFO written directly */
    int lock_fd;           /* holds the temporary's lock until the rename, or -1 */
    struct timespec began; /* the temporary's creation: older ones are stale */
    size_t dir_len;        /* target[0..dir_len) is its directory, '/' included */
    char target[PATH_MAX]; /* path with every symbolic link followed */
    char tmp[PATH_MAX];    /* the temporary beside target */
};

/* Follow the symbolic links of o->path into o->target, without requiring
 * the last one to point at an existing file. Returns 0 or an errno value. */
static int resolve(nbio_out *o)
{
    size_t n = strlen(o->path);
    if (n >= sizeof o->target)
        return ENAMETOOLONG;
    memcpy(o->target, o->path, n + 1);
    for (int hops = 0;; hops++) {
        struct stat sb;
        if (lstat(o->target, &sb) != 0)
            return errno == ENOENT ? 0 : errno; /* a new file */
        if (!S_ISLNK(sb.st_mode))
            return 0;
        if (hops == MAX_LINKS)
            return ELOOP;
        char link[PATH_MAX];
        ssize_t k = readlink(o->target, link, sizeof link);
        if (k < 0)
            return errno;
        if ((size_t)k >= sizeof link)
            return ENAMETOOLONG;
        /* a relative link is relative to the directory holding it */
        const char *slash = strrchr(o->target, '/');
        size_t keep = link[0] == '/' || !slash ? 0 : (size_t)(slash - o->target) + 1;
        if (keep + (size_t)k >= sizeof o->target)
            return ENAMETOOLONG;
        memcpy(o->target + keep, link, (size_t)k);
        o->target[keep + (size_t)k] = '\0';
    }
}

/* Create the temporary file beside o->target, with a name no other file
 * has (O_EXCL) and mode 0666 less the umask. Returns the descriptor, or -1
 * with errno set. */
static int create_tmp(nbio_out *o)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t n = strlen(o->target);
    if (n + strlen(TMP_TAG) + TMP_RANDOM >= sizeof o->tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(o->tmp, o->target, n);
    memcpy(o->tmp + n, TMP_TAG, strlen(TMP_TAG));
    char *r = o->tmp + n + strlen(TMP_TAG);
    r[TMP_RANDOM] = '\0';
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t x = (uint64_t)now.tv_nsec ^ ((uint64_t)now.tv_sec << 30) ^ ((uint64_t)getpid() << 16) ^
                 (uint64_t)(uintptr_t)o;
    for (int attempt = 0; attempt < 100; attempt++) {
        /* splitmix64: a new name on every attempt */
        x += 0x9e3779b97f4a7c15u;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        z ^= z >> 31;
        for (int i = 0; i < TMP_RANDOM; i++, z /= sizeof digits - 1)
            r[i] = digits[z % (sizeof digits - 1)];
        int fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOCTTY | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1; /* errno is EEXIST */
}

/* Open a character device or a FIFO to write in place. Returns the
 * descriptor or -1 with a sentence in why. */
static int open_in_place(const char *path, const struct stat *sb, char *why, size_t n)
{
    /* a FIFO opened without O_NONBLOCK would wait for a reader */
    int fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC | (S_ISFIFO(sb->st_mode) ? O_NONBLOCK : 0));
    if (fd < 0) {
        if (errno == ENXIO && S_ISFIFO(sb->st_mode))
            snprintf(why, n, "%s is a FIFO with no reader (nothing was written)", SHOWN(path));
        else
            snprintf(why, n, "cannot open %s: %s", SHOWN(path), strerror(errno));
        return -1;
    }
    struct stat now; /* the file stat'ed, not one put in its place since */
    if (fstat(fd, &now) != 0 || now.st_dev != sb->st_dev || now.st_ino != sb->st_ino ||
        (now.st_mode & S_IFMT) != (sb->st_mode & S_IFMT)) {
        snprintf(why, n, "%s changed while it was being opened (nothing was written)", SHOWN(path));
        close(fd);
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags == -1 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        snprintf(why, n, "cannot open %s: %s", SHOWN(path), strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Open the temporary that will replace the regular file (@p sb: its
 * status, NULL when there is none yet) o->path names, links followed.
 * Returns the descriptor or -1 with a sentence in why. */
static int open_tmp(nbio_out *o, const struct stat *sb, char *why, size_t n)
{
    int e = resolve(o);
    struct stat tb;
    if (!e && sb &&
        (lstat(o->target, &tb) != 0 || tb.st_dev != sb->st_dev || tb.st_ino != sb->st_ino))
        e = ENOENT; /* a link whose text does not name its file (/proc's) */
    if (e) {
        snprintf(why, n, "cannot follow %s to the file it names: %s", SHOWN(o->path), strerror(e));
        return -1;
    }
    const char *slash = strrchr(o->target, '/');
    o->dir_len = slash ? (size_t)(slash - o->target) + 1 : 0;
    int fd = create_tmp(o);
    if (fd < 0) {
        snprintf(why, n, "cannot create the temporary file %s: %s",
                 SHOWN(o->tmp[0] ? o->tmp : o->target), strerror(errno));
        return -1;
    }
    /* locked while it is written and renamed: a stale temporary is one
     * nobody holds (remove_stale); the lock lives on in lock_fd after the
     * stream is closed */
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        o->lock_fd = dup(fd);
    if (sb) { /* keep the file's owner and group (when allowed) and mode */
        if (fchown(fd, sb->st_uid, sb->st_gid) != 0 && fchown(fd, (uid_t)-1, sb->st_gid) != 0) {
            /* not allowed: the new file is ours, with the old mode */
        }
        if (fchmod(fd, sb->st_mode & 07777) != 0) {
            /* cannot happen on a file of ours; the mode stays 0666 & ~umask */
        }
    }
    struct stat now;
    if (fstat(fd, &now) == 0)
        o->began = now.st_mtim;
    return fd;
}

/* Release o's lock (its temporary is renamed or removed by now) and o. */
static void out_free(nbio_out *o)
{
    if (o->lock_fd >= 0)
        close(o->lock_fd);
    o->alloc(o->ud, o, sizeof *o, 0);
}

nb_status nbio_out_open(const char *path, nb_alloc_fn alloc, void *ud, nbio_out **out, char *why,
                        size_t n)
{
    *out = NULL;
    if (!alloc) {
        alloc = nb_default_alloc;
        ud = NULL;
    }
    if (!*path) {
        snprintf(why, n, "cannot write a file whose path is empty");
        return NB_ERR_IO;
    }
    struct stat sb;
    bool exists = stat(path, &sb) == 0;
    if (!exists && errno != ENOENT) {
        snprintf(why, n, "cannot write %s: %s", SHOWN(path), strerror(errno));
        return NB_ERR_IO;
    }
    if (exists && (S_ISDIR(sb.st_mode) || S_ISBLK(sb.st_mode) || S_ISSOCK(sb.st_mode))) {
        snprintf(why, n,
                 "%s is %s, which nabla does not write (it writes regular files, character "
                 "devices such as /dev/null, and FIFOs with a reader)",
                 SHOWN(path), kind_of(sb.st_mode));
        return NB_ERR_IO;
    }
    nbio_out *o = alloc(ud, NULL, 0, sizeof *o);
    if (!o) {
        snprintf(why, n, "out of memory to write %s", SHOWN(path));
        return NB_ERR_NOMEM;
    }
    memset(o, 0, sizeof *o);
    o->lock_fd = -1;
    o->alloc = alloc;
    o->ud = ud;
    o->path = path;
    int fd = -1;
    if (exists && !S_ISREG(sb.st_mode)) { /* a character device or a FIFO */
        o->in_place = true;
        fd = open_in_place(path, &sb, why, n);
    } else {
        fd = open_tmp(o, exists ? &sb : NULL, why, n);
    }
    if (fd >= 0) {
        o->f = fdopen(fd, "wb");
        if (!o->f) {
            snprintf(why, n, "cannot write %s: %s", SHOWN(path), strerror(errno));
            close(fd);
        }
    }
    if (!o->f) {
        if (fd >= 0 && !o->in_place)
            unlink(o->tmp);
        out_free(o);
        return NB_ERR_IO;
    }
    *out = o;
    return NB_OK;
}

FILE *nbio_out_file(const nbio_out *o)
{
    return o->f;
}

/* The directory holding o->target into dir (PATH_MAX bytes). */
static void dir_of(const nbio_out *o, char *dir)
{
    if (o->dir_len == 0) {
        strcpy(dir, ".");
    } else {
        memcpy(dir, o->target, o->dir_len);
        dir[o->dir_len] = '\0';
    }
}

/* Best effort: fsync the directory of o->target, so the rename is durable. */
static void sync_dir(const nbio_out *o)
{
    char dir[PATH_MAX];
    dir_of(o, dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* True when @p name is <base> TMP_TAG and TMP_RANDOM letters or digits. */
static bool is_tmp_of(const char *name, const char *base, size_t base_len)
{
    size_t tag = strlen(TMP_TAG);
    if (strncmp(name, base, base_len) != 0 || strncmp(name + base_len, TMP_TAG, tag) != 0)
        return false;
    const char *r = name + base_len + tag;
    for (int i = 0; i < TMP_RANDOM; i++) {
        char c = r[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return false;
    }
    return r[TMP_RANDOM] == '\0';
}

static bool not_after(struct timespec a, struct timespec b)
{
    return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec <= b.tv_nsec);
}

/* Remove what a killed save of the same target left: regular files named
 * as its temporaries that no save holds locked and that were last modified
 * no later than this save began (a save still writing its own, or one that
 * has just created it, is left alone). Best effort. */
static void remove_stale(const nbio_out *o)
{
    char dir[PATH_MAX];
    dir_of(o, dir);
    DIR *d = opendir(dir);
    if (!d)
        return;
    const char *base = o->target + o->dir_len;
    size_t base_len = strlen(base);
    for (struct dirent *e = readdir(d); e; e = readdir(d)) {
        if (!is_tmp_of(e->d_name, base, base_len))
            continue;
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        struct stat sb;
        if (fd < 0)
            continue;
        if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && not_after(sb.st_mtim, o->began) &&
            flock(fd, LOCK_EX | LOCK_NB) == 0)
            (void)unlinkat(dirfd(d), e->d_name, 0);
        close(fd);
    }
    closedir(d);
}

nb_status nbio_out_commit(nbio_out *o, int write_errno, char *why, size_t n)
{
    if (!o)
        return NB_OK;
    int e = write_errno;
    if (!e && fflush(o->f) != 0)
        e = errno ? errno : EIO;
    if (!e && !o->in_place && fsync(fileno(o->f)) != 0)
        e = errno ? errno : EIO;
    if (fclose(o->f) != 0 && !e)
        e = errno ? errno : EIO;
    if (!e && !o->in_place && rename(o->tmp, o->target) != 0)
        e = errno ? errno : EIO;
    if (o->in_place) {
        if (e)
            snprintf(why, n, "writing %s failed: %s", SHOWN(o->path), strerror(e));
    } else if (e) {
        unlink(o->tmp);
        snprintf(why, n, "writing %s failed: %s; %s is unchanged", SHOWN(o->tmp), strerror(e),
                 SHOWN(o->path));
    } else {
        sync_dir(o);
        remove_stale(o);
    }
    out_free(o);
    return e ? NB_ERR_IO : NB_OK;
}

nb_status nbio_out_check(const char *path, char *why, size_t n)
{
    struct stat sb;
    if (*path && stat(path, &sb) == 0 && (S_ISCHR(sb.st_mode) || S_ISFIFO(sb.st_mode)))
        return NB_OK; /* opened only when written: a FIFO's reader may come later */
    nbio_out *o = NULL;
    nb_status st = nbio_out_open(path, NULL, NULL, &o, why, n);
    if (st != NB_OK)
        return st;
    nbio_out_commit(o, ECANCELED, NULL, 0); /* the temporary goes, the file is as it was */
    return NB_OK;
}
